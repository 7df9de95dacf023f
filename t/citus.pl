# snowlink on a Citus cluster: a coordinator and two workers, each with a snowflake node range of
# its own. CREATE EXTENSION on the coordinator reaches every node; one query on the coordinator
# checks the ranges for overlaps; clients on every node at once insert into a distributed table
# keyed by DEFAULT snowflake_next(), and no ID may repeat. Then shortlinks_distribute() and its
# refusals, clients on every node at once shortening and resolving (every link found and every
# visit counted from every node), each function on a node other than the one that made the link,
# every call that names a link a router query, the visit writer's limits on waiting for another
# node's locks, tenants, a third worker and shard moves under load, DROP EXTENSION, and a cluster
# distributed at 0.2.0 updated. Needs Citus, which the test command builds for PostgreSQL 15
# (scripts/tools.sh, ensure_citus).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

chomp(my $pkglibdir = `pg_config --pkglibdir`);
plan skip_all => "Citus is not installed for this PostgreSQL ($pkglibdir)" unless -e "$pkglibdir/citus.so";

my $clients_per_node = 2;
my $seconds_of_load = 5;
my $earlier_links = 5000;
my $work = PostgreSQL::Test::Utils::tempdir();

# citus_node(NAME, NODE_MIN, NODE_MAX): a new server with Citus, listening on 127.0.0.1 (where the
# nodes reach each other) with its snowflake node range.
sub citus_node
{
	my ($name, $node_min, $node_max) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(extra => [ '--encoding=UTF8', '--locale=C.UTF-8' ]);
	# Citus first among the preloaded libraries; two-phase commit for multi-shard writes.
	$node->append_conf('postgresql.conf', "listen_addresses = '127.0.0.1'
shared_preload_libraries = 'citus'
max_prepared_transactions = 100
snowlink.node_min = $node_min
snowlink.node_max = $node_max
");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION citus');
	return $node;
}

my %node = (
	coordinator => citus_node('coordinator', 0, 255),
	worker1 => citus_node('worker1', 256, 511),
	worker2 => citus_node('worker2', 512, 767));
my @names = qw(coordinator worker1 worker2);
my %name_of_port = map { $node{$_}->port => $_ } @names;
my $coordinator_port = $node{coordinator}->port;
$node{coordinator}->safe_psql('postgres', "
	SELECT citus_set_coordinator_host('127.0.0.1', $coordinator_port);
	SELECT citus_add_node('127.0.0.1', ${\ $node{worker1}->port });
	SELECT citus_add_node('127.0.0.1', ${\ $node{worker2}->port });
	CREATE EXTENSION snowlink;");

sub sql { my ($name, $query) = @_; return $node{$name}->safe_psql('postgres', $query) }
# What psql prints for QUERY on NAME, errors with their SQLSTATE, whether it failed or not.
sub output_of { my ($name, $query) = @_; return query_output($node{$name}, 'postgres', $query) }
# QUERY's result on every node, one line each.
sub sql_all { my ($query) = @_; return map { sql($_, $query) } @names }
# The sum of QUERY's (numeric) results on every node.
sub nodes_sum { my $sum = 0; $sum += $_ for sql_all(@_); return $sum }
# wait_for(NAME, QUERY, VALUE): waits up to 10 s for QUERY on NAME to give VALUE (visit writers
# write about once a second), and returns what it gave last.
sub wait_for
{
	my ($name, $query, $value) = @_;
	my $got;
	for (1 .. 100)
	{
		$got = sql($name, $query);
		last if $got eq $value;
		Time::HiRes::sleep(0.1);
	}
	return $got;
}
# pgbench_on(NAME, SCRIPT, OPTION...): starts pgbench against NAME; pgbench_rounds(RUNS) waits for
# them and returns how many failed and how many transactions succeeded.
sub pgbench_on
{
	my ($name, $script, @options) = @_;
	my $run = { output => '' };
	$run->{handle} = IPC::Run::start([ 'pgbench', '-n', @options, '-f', $script, $node{$name}->connstr('postgres') ],
		'>', \$run->{output}, '2>&1');
	return $run;
}
sub pgbench_rounds
{
	my ($failed, $rounds) = (0, 0);
	for my $run (@_)
	{
		$run->{handle}->finish or $failed++, diag("pgbench: $run->{output}");
		$rounds += $1 if $run->{output} =~ /^number of transactions actually processed: ([0-9]+)/m;
	}
	return ($failed, $rounds);
}

is(sql('coordinator', 'SELECT count(*) FROM citus_get_active_worker_nodes()'), 2, 'the coordinator sees two workers');
is(sql('coordinator', "SELECT string_agg(DISTINCT result, ',') FROM run_command_on_all_nodes(
		\$\$SELECT extversion FROM pg_extension WHERE extname = 'snowlink'\$\$)"),
	sql('coordinator', "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'"),
	'CREATE EXTENSION on the coordinator installs snowlink on every node');
# The check of docs/ids.md: every node's range, and the pairs that share a node (none).
is(sql('coordinator', "WITH ranges AS (
		SELECT nodeid, result::int4range AS node_range
		FROM run_command_on_all_nodes('SELECT snowflake_node_range()'))
	SELECT count(*) FROM ranges AS a JOIN ranges AS b ON a.nodeid < b.nodeid
	WHERE a.node_range && b.node_range"), 0, "no two nodes' snowflake ranges overlap (one query on the coordinator)");

# A user's distributed table keyed by snowflake IDs, written by clients of every node at once.
sql('coordinator', "CREATE TABLE events (tenant int NOT NULL, id bigint NOT NULL DEFAULT snowflake_next(),
                        PRIMARY KEY (tenant, id));
                    SELECT create_distributed_table('events', 'tenant')");
append_to_file("$work/insert.sql", "\\set tenant random(1, 1000)\nINSERT INTO events (tenant) VALUES (:tenant);\n");
my ($failed) = pgbench_rounds(map { pgbench_on($_, "$work/insert.sql", '-c', $clients_per_node, '-T', $seconds_of_load) } @names);
is($failed, 0, 'clients on the coordinator and both workers insert without an error');
note sql('coordinator', 'SELECT count(*) FROM events') . ' rows';
is(sql('coordinator', 'SELECT count(*) - count(DISTINCT id) FROM events'), 0, 'no snowflake ID repeats across the cluster');
is(sql('coordinator', 'SELECT count(*) FROM events WHERE snowflake_node(id) > 767'), 0,
	"each ID's node lies in the range of a node of the cluster");

# Links made before the tables are distributed, each visited once, are carried over.
sql('coordinator', "SELECT count(shorten('https://example.com/before/' || i, code => 'before-' || i))
                    FROM generate_series(1, $earlier_links) AS i");
sql('coordinator', "SELECT count(resolve('before-' || i)) FROM generate_series(1, $earlier_links) AS i");
wait_for('coordinator', 'SELECT sum(visits) FROM shortlink_visits', $earlier_links);

like(output_of('worker1', 'SELECT shortlinks_distribute()'), qr/must be called on the coordinator/,
	'shortlinks_distribute() on a worker says it belongs on the coordinator');
# A shortlinks that Citus manages in another way (made a reference table by hand, in a
# transaction that is then rolled back) is refused.
like(output_of('coordinator', "BEGIN; SELECT create_reference_table('shortlinks'); SELECT shortlinks_distribute(); ROLLBACK"),
	qr/already a Citus table, but not one distributed by code/,
	'shortlinks_distribute() refuses a shortlinks that is a Citus table of another kind');
sql('worker1', "SELECT shorten('https://example.com/made-on-a-worker', code => 'made-on-a-worker')");
like(output_of('coordinator', 'SELECT shortlinks_distribute()'),
	qr/which distribution would hide: 127\.0\.0\.1:${\ $node{worker1}->port } has 1$/m,
	'shortlinks_distribute() refuses while a worker holds links of its own, and names it');
sql('worker1', 'DELETE FROM shortlinks');
sql('coordinator', 'CREATE TABLE link_notes (link_id bigint REFERENCES shortlinks (id), note text)');
like(output_of('coordinator', 'SELECT shortlinks_distribute()'),
	qr/while foreign keys reference it: public\.link_notes \(link_notes_link_id_fkey\)$/m,
	'shortlinks_distribute() refuses while a foreign key references shortlinks, and names it');
sql('coordinator', 'DROP TABLE link_notes');
# A node that cannot tell its range (here, stopped) is named, not skipped.
$node{worker2}->stop;
like(output_of('coordinator', 'SELECT shortlinks_distribute()'), qr/could not read the snowflake node range of every node: node 3:/,
	'shortlinks_distribute() refuses while a node cannot tell its snowflake range, and names it');
$node{worker2}->adjust_conf('postgresql.conf', 'snowlink.node_min', 500);
$node{worker2}->start;
like(output_of('coordinator', 'SELECT shortlinks_distribute()'), qr/ranges of the cluster overlap: nodes 2 and 3 share \[500,512\)$/m,
	'shortlinks_distribute() refuses nodes whose snowflake ranges overlap');
$node{worker2}->adjust_conf('postgresql.conf', 'snowlink.node_min', 512);
$node{worker2}->restart;
# The distribution, with a session on a worker open across it (through dblink, from one session
# on the coordinator): before, the worker's own table has none of the coordinator's links; after,
# the same session finds them through Citus.
(my $worker1 = $node{worker1}->connstr('postgres')) =~ s/'/''/g;
is(sql('coordinator', "
	CREATE EXTENSION dblink;
	SELECT dblink_connect('worker1', '$worker1') \\g /dev/null
	SELECT coalesce(r, 'NULL') FROM dblink('worker1', \$\$SELECT resolve('before-$earlier_links')\$\$) AS t (r text);
	SELECT shortlinks_distribute(shard_count => 8) \\g /dev/null
	SELECT coalesce(r, 'NULL') FROM dblink('worker1', \$\$SELECT resolve('before-$earlier_links')\$\$) AS t (r text);"),
	"NULL\nhttps://example.com/before/$earlier_links",
	"a worker's session open across shortlinks_distribute() finds the links after it, not before");
# Each earlier link was visited once, and the last one once more just now (outside the sample that
# the next checks count).
my $earlier_visits = $earlier_links + 1;
sql('coordinator', 'SELECT shortlinks_distribute()');
is(sql('coordinator', "SELECT string_agg(format('%s:%s:%s:%s', logicalrelid, partmethod,
		                       column_to_column_name(logicalrelid, partkey),
		                       (SELECT count(*) FROM pg_dist_shard AS s WHERE s.logicalrelid = p.logicalrelid)),
		                ' ' ORDER BY logicalrelid::text)
		FROM pg_dist_partition AS p WHERE logicalrelid::text LIKE 'shortlink%'"),
	'shortlink_key:n::1 shortlink_reserved_codes:n::1 shortlink_url_links:h:bucket:8 shortlink_url_locks:h:bucket:8 shortlink_visits:h:code:8 shortlinks:h:code:8',
	'shortlinks_distribute() distributes shortlinks and the visits by code, the URL locks and lists by bucket; a second call changes nothing');
is(sql('coordinator', "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
                       WHERE logicalrelid IN ('shortlinks'::regclass, 'shortlink_visits'::regclass)"),
	1, 'the visits share the shards of their links');
is(sql('coordinator', "SELECT count(DISTINCT colocationid) FROM pg_dist_partition
                       WHERE logicalrelid IN ('shortlink_url_locks'::regclass, 'shortlink_url_links'::regclass)")
	  . '/' . sql('coordinator', 'SELECT count(*) FROM shortlink_url_links'),
	"1/$earlier_links", 'the list of each URL\'s links shares the shards of the URL locks, and lists the links made before');
for my $name (@names)
{
	is(sql($name, "SELECT count(*) FROM generate_series(1, 100) AS i WHERE (shortlink_stats('before-' || i)).visits = 1"),
		100, "the $name finds the links and visits made before distribution (a sample of 100)");
}

# Clients on every node at once shorten URLs of one pool, so that nodes ask for the same URL, and
# resolve the code they get and one of the earlier links; a wrong URL fails the client (division
# by zero). A link with max_visits takes visits from every node, which each node notes in a table
# of its own.
sql('coordinator', "SELECT shorten('https://example.com/limited', code => 'limited', max_visits => 50)");
sql_all('CREATE TABLE limited_served (n int)');
sub code_counters { nodes_sum('SELECT CASE WHEN is_called THEN last_value + 1 ELSE 0 END FROM shortlink_code_seq') }
my $counters_before = code_counters();
append_to_file("$work/links.sql", <<SQL);
\\set n random(1, 3000)
\\set earlier random(1, $earlier_links)
SELECT 1 / (resolve(code) IS NOT DISTINCT FROM url)::int
FROM shorten('https://example.com/pool/' || :n);
SELECT 1 / (resolve('before-' || :earlier) IS NOT DISTINCT FROM 'https://example.com/before/' || :earlier)::int;
INSERT INTO limited_served SELECT 1 WHERE resolve('limited') IS NOT NULL;
SQL
my $rounds;
($failed, $rounds) = pgbench_rounds(map { pgbench_on($_, "$work/links.sql", '-c', $clients_per_node, '-T', $seconds_of_load) } @names);
is($failed, 0, 'clients on every node shorten and resolve without an error or a wrong URL');
my $pool_links = sql('coordinator', "SELECT count(*) FROM shortlinks WHERE url LIKE 'https://example.com/pool/%'");
note "$rounds rounds of shorten() and two resolve(); $pool_links new links";
is(sql('coordinator', "SELECT count(*) - count(DISTINCT url) FROM shortlinks WHERE url LIKE 'https://example.com/pool/%'"),
	0, 'a URL asked for on several nodes has one link');
is(code_counters() - $counters_before, $pool_links, 'every generated code came from its node\'s counter without a retry');
is(nodes_sum('SELECT count(*) FROM limited_served'), 50, 'a link with max_visits 50 served exactly 50 visits across the nodes');
# with_links(QUERY): QUERY, run where a temporary table links holds the code and URL of every link
# made by the clients or before distribution. (A query that both reads shortlinks and calls a
# function of the extension for each row would run that function on the shards, where it cannot
# reach other shards.)
sub with_links
{
	return "CREATE TEMP TABLE links AS SELECT code, url FROM shortlinks WHERE url ~ '^https://example.com/(pool|before|moving)/'; $_[0]";
}
is(wait_for('worker2', with_links("SELECT sum((shortlink_stats(code)).visits) FROM links
                                   WHERE url LIKE 'https://example.com/pool/%'"), $rounds),
	$rounds, "shortlink_stats() counts each client's visit of its new link, from every node");
# Set-based use: the statistics of many links at once, in one query that each shard answers for
# its own links and their visits (docs/citus.md).
is(sql('coordinator', "SELECT sum(visits) FROM shortlinks_stats((
                           SELECT array_agg(code) FROM shortlinks WHERE url LIKE 'https://example.com/pool/%'))"),
	$rounds, "shortlinks_stats() of every new link's code counts each client's visit, in one query");
my $dashboard = "SELECT sum(s.visits + coalesce(v.visits, 0))
                 FROM shortlinks AS s LEFT JOIN shortlink_visits AS v ON v.code = s.code AND v.link_id = s.id
                 WHERE s.url LIKE 'https://example.com/pool/%'";
my $plan = sql('coordinator', "EXPLAIN (COSTS OFF) $dashboard");
is((() = $plan =~ /Distributed Subplan|Repartition/g) . '/' . sql('coordinator', $dashboard), "0/$rounds",
	'a join of the links with their visits runs on the shards, without a subplan, and agrees');
my $expected = $earlier_visits + 2 * $rounds;
is(wait_for('coordinator', 'SELECT sum(visits) FROM shortlink_visits', $expected), $expected,
	'the visits table holds every visit of every node');

# Every node finds every link (resolve() of a Citus table goes to the link's shard), and its
# visits are counted.
for my $name (@names)
{
	is(sql($name, with_links('SELECT count(*) FROM links WHERE resolve(code) IS DISTINCT FROM url')), 0,
		"resolve() on the $name finds every one of the " . ($earlier_links + $pool_links) . ' links');
}
$expected = $earlier_visits + 2 * $rounds + 3 * ($earlier_links + $pool_links);
is(wait_for('coordinator', 'SELECT sum(visits) FROM shortlink_visits', $expected), $expected,
	'the visits of those three rounds are counted too');

# The other functions, each from a node other than the one that made the link.
sql('worker1', "SELECT shorten('https://example.com/everywhere', code => 'everywhere')");
is(sql('worker2', "SELECT code FROM shorten('https://example.com/everywhere')"), 'everywhere',
	'shorten() on another node gives back the same link');
is(sql('coordinator', "SELECT string_agg(code, ',') FROM shortlink_url_links
                       WHERE bucket = snowlink_internal._shortlink_url_bucket('https://example.com/everywhere')
                         AND url = 'https://example.com/everywhere'"), 'everywhere',
	'the URL lists the link, in the shard of its lock');
is(sql('worker2', "SELECT concat_ws(' ', url, status, cache_control) FROM shortlink_target('everywhere')"),
	'https://example.com/everywhere 302 no-store', 'shortlink_target() on a worker');
is(sql('coordinator', "SELECT shortlink_redirect('everywhere') || ' ' || current_setting('response.status')"),
	'https://example.com/everywhere 302', 'shortlink_redirect() on the coordinator');
is(sql('worker1', "SELECT shortlink_disable('everywhere')") . join('', sql_all("SELECT resolve('everywhere') IS NULL")),
	'tttt', 'shortlink_disable() on a worker stops the link on every node');
is(sql('worker2', "SELECT shortlink_enable('everywhere')") . sql('coordinator', "SELECT resolve('everywhere')"),
	'thttps://example.com/everywhere', 'shortlink_enable() on another node lets it resolve again');
sql('worker1', "SELECT shorten('https://example.com/s-everywhere', code => 'everywhere', domain => 'S.Example.com')");
my %resolved = map { $_ => 1 } sql_all("SELECT resolve('everywhere', 's.example.com')");
is(join(',', sort keys %resolved) . sql('coordinator', "SELECT count(*) FROM shortlinks WHERE code = 'everywhere'"),
	'https://example.com/s-everywhere2', 'the same code in another domain, made on a worker, resolves in its domain from every node');
# resolve() reads a code's links without a test of the domain first: a code of several domains
# still resolves to the default domain's link (whichever row its shard hands back first), and a
# code of another domain alone to nothing.
sql('worker2', "SELECT shorten('https://example.com/other-first', code => 'other-first', domain => 's.example.com')");
sql('coordinator', "SELECT shorten('https://example.com/default-second', code => 'other-first')");
sql('worker1', "SELECT shorten('https://example.com/default-first', code => 'default-first')");
sql('worker2', "SELECT shorten('https://example.com/other-second', code => 'default-first', domain => 's.example.com')");
sql('worker1', "SELECT shorten('https://example.com/other-only', code => 'other-only', domain => 's.example.com')");
is(join(' ', sql_all("SELECT concat_ws(',', resolve('other-first'), resolve('default-first'),
                                       resolve('other-only') IS NULL, resolve('other-first', 's.example.com'))")),
	join(' ', ('https://example.com/default-second,https://example.com/default-first,t,https://example.com/other-first') x @names),
	'a code of several domains resolves in the default domain to its link there from every node, a code of another domain alone to nothing');
is(sql('coordinator', "SELECT c.relreplident::text || ' ' || i.indexrelid::regclass::text FROM pg_class AS c
                       JOIN pg_index AS i ON i.indrelid = c.oid AND i.indisreplident
                       WHERE c.oid = 'shortlinks'::regclass"), 'i shortlinks_id',
	'the distributed shortlinks has a replica identity: its unique index on (id, code)');
is(wait_for('worker1', "SELECT visits FROM shortlink_daily_visits('everywhere', current_date)", 3), 3,
	'shortlink_daily_visits() on a worker');
sql('worker2', "SELECT shorten('https://example.com/short-lived', code => 'short-lived', expires_at => now() + interval '1 second')");
Time::HiRes::sleep(1.1);
is(sql('worker2', 'SELECT shortlinks_purge_expired()')
	  . sql('coordinator', "SELECT count(*) FROM shortlinks WHERE code IN ('short-lived', 'limited')"),
	'20', 'shortlinks_purge_expired() on a worker deletes the expired link and the used-up one');
sql('worker1', "CREATE TABLE exported (code text, url text);
	INSERT INTO exported VALUES ('imported-1', 'https://example.com/imported'), ('imported-2', 'ftp://example.com/'),
	                            ('everywhere', 'https://example.com/taken')");
is(sql('worker1', "SELECT string_agg(code || ': ' || error, ', ' ORDER BY code) FROM shortlinks_import('exported')")
	  . sql('worker2', "SELECT ' ' || resolve('imported-1')"),
	'everywhere: code is taken, imported-2: URL scheme "ftp" is not allowed https://example.com/imported',
	'shortlinks_import() on a worker imports one row and reports the other two');

# Every call that names a link touches one shard (or the shards of one row each, co-located):
# with citus.multi_task_query_log_level = error, Citus refuses any query of theirs that would
# touch more, on every node.
sql('coordinator', "SELECT shorten('https://example.com/routed', code => 'routed');
                    SELECT shorten('https://example.com/routed-gone', code => 'routed-gone')");
my @routed_calls = (
	"SELECT resolve('routed')",
	"SELECT resolve('routed', 'routed.example.com')",
	"SELECT url FROM shortlink_target('routed')",
	"SELECT shortlink_redirect('routed')",
	"SELECT shortlink_is_live('routed')",
	"SELECT visits FROM shortlink_stats('routed')",
	"SELECT count(*) FROM shortlink_daily_visits('routed')",
	"SELECT shortlink_update('routed', title => 'Routed') IS NOT NULL",
	"SELECT shortlink_disable('routed')",
	"SELECT shortlink_enable('routed')",
	"SELECT code FROM shorten('https://example.com/routed/' || random(), force_new => true)",
	"SELECT code FROM shorten('https://example.com/routed')",
	"SELECT code FROM shorten('https://example.com/routed/' || random())",
	"SELECT shortlink_update('routed', url => 'https://example.com/routed/' || random()) IS NOT NULL",
	"SELECT count(*) FROM shortlinks_stats(ARRAY['routed'])",
	"SELECT shortlink_delete('routed-gone')");
my @not_routed;
for my $name (@names)
{
	for my $call (@routed_calls)
	{
		my $ran = $node{$name}->psql('postgres', "SET citus.multi_task_query_log_level = error; $call",
			on_error_stop => 1, stderr => \my $errors);
		push @not_routed, "$call on the $name: $errors" if $ran != 0;
	}
}
is(join('; ', @not_routed), '', 'every call that names a link is a router query, on every node');

# In the cached plan of a query by key, Citus keeps a plan for the node's own shard and never finds
# it again (sql/src/citus.sql): a worker's backend grew by about 21 kB a call of resolve().
is((split /\n/, sql('worker1', "SELECT count(resolve('before-' || i)) FROM generate_series(1, 3000) AS i;
	SELECT count(*) FROM generate_series(1, 3000) AS i, LATERAL shortlink_stats('before-' || i) AS s;
	SELECT sum(total_bytes) < 32 * 1024 * 1024 FROM pg_backend_memory_contexts"))[-1],
	't', "a worker's backend does not grow with its calls: 3,000 resolve() and shortlink_stats() leave it under 32 MB");

# A link listed under its URL (shortlink_url_links, in the shard of the URL's lock) reaches the
# shard of its code in the same two-phase commit, possibly a moment after the lock is free: then
# shorten() waits for it rather than make a second link. A transaction prepared on the code's
# worker holds such a link back here.
my $pending_url = 'https://example.com/pending';
my $pending_id = sql('coordinator', 'SELECT snowflake_next()');
my $pending_shard = sql('coordinator', "SELECT get_shard_id_for_distribution_column('shortlinks', 'pending')");
my $pending_node = $name_of_port{ sql('coordinator', "SELECT n.nodeport FROM pg_dist_placement AS p
                                                      JOIN pg_dist_node AS n USING (groupid) WHERE p.shardid = $pending_shard") };
sql($pending_node, "BEGIN;
	INSERT INTO shortlinks_$pending_shard (id, code, url) VALUES ($pending_id, 'pending', '$pending_url');
	PREPARE TRANSACTION 'pending link'");
sql('coordinator', "INSERT INTO shortlink_url_links (bucket, url, code, link_id)
	VALUES (snowlink_internal._shortlink_url_bucket('$pending_url'), '$pending_url', 'pending', $pending_id)");
my $waiting = psql_start($node{coordinator}, 'postgres', "SELECT code FROM shorten('$pending_url')");
sleep 1;
$waiting->{handle}->pump_nb;
ok($waiting->{handle}->pumpable && $waiting->{output} eq '',
	'shorten() of a URL whose listed link is not committed on its shard yet waits for it');
sql($pending_node, "COMMIT PREPARED 'pending link'");
is(join('', psql_finish($waiting)), 'pending', 'and then hands that link back');
# A listed link deleted behind the extension's back holds nothing up: shorten() makes a new link,
# makes no link of the gone code, and the gone code's row goes.
sql('coordinator', "DELETE FROM shortlinks WHERE code = 'pending'");
is(sql('coordinator', "SELECT code <> 'pending' FROM shorten('$pending_url')")
	  . sql('coordinator', "SELECT count(*) FROM shortlinks WHERE code = 'pending'")
	  . sql('coordinator', "SELECT count(*) FILTER (WHERE code <> 'pending') || '/' || count(*) FROM shortlink_url_links
	                        WHERE url = '$pending_url'"),
	't01/1', 'a listed link that is gone: a new link, and the URL lists it alone');

# A visit writer whose write waits for a lock on another node, where Citus's detection of
# distributed deadlocks does not see the writer, gives the write up after 30 s (and so whatever
# waits for the writer's own locks, a DROP EXTENSION say), and writes the visit at a later
# interval. The visit waits for the lock under an interval of an hour.
my $visited = sql('coordinator', 'SELECT code FROM shortlinks ORDER BY id LIMIT 1');
my $visited_shard = sql('coordinator', "SELECT get_shard_id_for_distribution_column('shortlinks', '$visited')");
my $shard_node = $name_of_port{ sql('coordinator', "SELECT n.nodeport FROM pg_dist_placement AS p
                                                    JOIN pg_dist_node AS n USING (groupid) WHERE p.shardid = $visited_shard") };
my ($writer_node) = grep { $_ ne $shard_node } @names;
my $visited_visits = "SELECT visits FROM shortlink_stats('$visited')";
my $visited_before = sql('coordinator', $visited_visits);
sql($writer_node, "LOAD 'snowlink'; ALTER SYSTEM SET snowlink.visit_flush_interval_ms = '1h'; SELECT pg_reload_conf()");
# Once a new backend sees the interval the postmaster has taken the reload; a running writer takes
# it at its next pass.
$node{$writer_node}->poll_query_until('postgres', "SELECT current_setting('snowlink.visit_flush_interval_ms', true) = '1h'")
  or die 'the reload did not take';
sleep 1;
sql($writer_node, "SELECT resolve('$visited')");
my $writer_log = -s $node{$writer_node}->logfile;
my $shard_lock = "SELECT pid FROM pg_locks
                  WHERE relation = 'shortlinks_$visited_shard'::regclass AND mode = 'AccessExclusiveLock' AND granted";
my $locker = psql_start($node{$shard_node}, 'postgres',
	"SET citus.enable_manual_changes_to_shards = on;
	BEGIN; LOCK TABLE shortlinks_$visited_shard IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT");
$node{$shard_node}->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($shard_lock) AS l") or die 'the lock was not taken';
sql($writer_node, "LOAD 'snowlink'; ALTER SYSTEM RESET snowlink.visit_flush_interval_ms; SELECT pg_reload_conf()");
ok($node{$writer_node}->wait_for_log(qr/counted visits are written later: canceling statement due to statement timeout/, $writer_log),
	"a visit writer waiting for a lock on another node gives its write up");
sql($shard_node, "SELECT pg_terminate_backend(pid) FROM ($shard_lock) AS l");
psql_finish($locker);
is(wait_for('coordinator', $visited_visits, $visited_before + 1), $visited_before + 1, '... and writes the visit once the lock is gone');

# A link with max_visits whose row a transaction of the coordinator holds: the count's lock_timeout
# does not reach the worker where it waits, and the writer's own limit refuses the visit with 55P03
# rather than the writer waiting, every other visit of the database behind it, for that transaction.
sql('coordinator', "SELECT shorten('https://example.com/held', code => 'held', max_visits => 10)");
# The holder, once it sleeps (having taken the row).
my $holder_query = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%AS holds_held%'";
my $holder = psql_start($node{coordinator}, 'postgres',
	"BEGIN; SELECT 1 FROM shortlinks WHERE code = 'held' FOR UPDATE; SELECT pg_sleep(120) AS holds_held; COMMIT");
$node{coordinator}->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($holder_query) AS h") or die 'the row was not taken';
my $written_before = sql('coordinator', "SELECT visits FROM shortlink_stats('before-2')");
like(output_of('coordinator', "SELECT resolve('held')"),
	qr/ERROR:  55P03: could not count a visit of link "held": another transaction locks its row or the table/,
	'a visit of a limited link whose row a transaction holds on its worker is refused with 55P03');
sql('coordinator', "SELECT resolve('before-2')");
is(wait_for('coordinator', "SELECT visits FROM shortlink_stats('before-2')", $written_before + 1), $written_before + 1,
	'... and the visit writer goes on writing the visits of other links while the row is held');
sql('coordinator', "SELECT pg_terminate_backend(pid) FROM ($holder_query) AS h");
psql_finish($holder);
is(sql('coordinator', "SELECT resolve('held'); SELECT visits FROM shortlink_stats('held')"), "https://example.com/held\n1",
	'... and counts its visit once the row is free');

# Citus reaches the shards as the session's role, which must therefore be able to log in. (The
# visit rows of a link are not yet readable by such a role on Citus: docs/links.md, "Owners".)
note 'owners on Citus: a role per tenant';
sql('coordinator', 'CREATE ROLE citus_tenant_a LOGIN IN ROLE snowlink_user; CREATE ROLE citus_tenant_b LOGIN IN ROLE snowlink_user');
is(sql('worker1', "SET ROLE citus_tenant_a; SELECT owner_role FROM shorten('https://example.com/tenant-a', code => 'tenant-a')"),
	'citus_tenant_a', "a tenant's link, made on a worker, is its own");
is(join(' ', map {
			my $name = $_;
			map { sql($name, "SET ROLE citus_tenant_b; $_") } "SELECT count(*) FROM shortlinks WHERE code = 'tenant-a'",
			  "SELECT shortlink_disable('tenant-a') OR shortlink_delete('tenant-a')", "SELECT resolve('tenant-a')"
		} @names),
	join(' ', ('0 f https://example.com/tenant-a') x @names),
	'another tenant sees none of it on any node, and cannot change it, but follows it');
# The visits of the link, one per node above, as its tenant and only its tenant reads them: Citus
# runs shortlink_stats() and shortlink_daily_visits() on the code's shard, where the policy on the
# visit rows may ask for their link.
wait_for('coordinator', "SELECT visits FROM shortlink_stats('tenant-a')", scalar @names);
my %seen = map { $_ => 1 } map {
	(sql($_, "SET ROLE citus_tenant_a; SELECT visits FROM shortlink_stats('tenant-a')"),
	 sql($_, "SET ROLE citus_tenant_a; SELECT sum(visits) FROM shortlink_daily_visits('tenant-a')"))
} @names;
is(join(' ', sort keys %seen), scalar @names, "the tenant reads its link's statistics and daily visits from every node");
%seen = map { $_ => 1 } map {
	(sql($_, "SET ROLE citus_tenant_b; SELECT coalesce(visits, -1) FROM shortlink_stats('tenant-a')"),
	 sql($_, "SET ROLE citus_tenant_b; SELECT count(*) FROM shortlink_daily_visits('tenant-a')"))
} @names;
is(join(' ', sort keys %seen), '-1 0', 'another tenant reads neither, from any node');
is(sql('worker2', "SET ROLE citus_tenant_a; SELECT shortlink_delete('tenant-a')"), 't', 'the tenant deletes its link on another node');
sql('coordinator', 'DROP ROLE citus_tenant_a, citus_tenant_b');

# Rebalancing: a third worker joins, citus_rebalance_start() spreads the shards over the three,
# and citus_move_shard_placement() moves a shard of shortlinks (with the shards that share its
# place: visits, and for the URL locks' shards their lists) back, while clients on the coordinator
# and a worker resolve earlier links and shorten URLs of a pool. Moves block writes to the shards
# they copy (shard_transfer_mode block_writes: no logical replication needed), so clients wait
# rather than fail, and nothing may be lost or doubled.
note 'rebalancing under load';
$node{worker3} = citus_node('worker3', 768, 1023);
push @names, 'worker3';
my $worker3_port = $node{worker3}->port;
$name_of_port{$worker3_port} = 'worker3';
sql('coordinator', "SELECT citus_add_node('127.0.0.1', $worker3_port)");
is(sql('worker3', "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'"),
	sql('coordinator', "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'"),
	'the third worker has snowlink, added with it');
# What the writers wrote of the visits above, once two reads 1.5 s apart agree.
my $visits_before = sql('coordinator', 'SELECT sum(visits) FROM shortlink_visits');
for (1 .. 20)
{
	Time::HiRes::sleep(1.5);
	my $visits_now = sql('coordinator', 'SELECT sum(visits) FROM shortlink_visits');
	last if $visits_now == $visits_before;
	$visits_before = $visits_now;
}
my $links_before = sql('coordinator', 'SELECT count(*) FROM shortlinks');
append_to_file("$work/moving.sql", <<SQL);
\\set n random(1, 500)
\\set earlier random(1, $earlier_links)
SELECT 1 / (resolve(code) IS NOT DISTINCT FROM url)::int FROM shorten('https://example.com/moving/' || :n);
SELECT 1 / (resolve('before-' || :earlier) IS NOT DISTINCT FROM 'https://example.com/before/' || :earlier)::int;
SQL
my @moving = map { pgbench_on($_, "$work/moving.sql", '-c', 1, '-T', 30) } qw(coordinator worker1);
sleep 1;
sql('coordinator', "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')");
sql('coordinator', 'SELECT citus_rebalance_wait()');
is(sql('coordinator', "SELECT string_agg(DISTINCT s.logicalrelid::text, ' ' ORDER BY s.logicalrelid::text)
                       FROM pg_dist_shard AS s JOIN pg_dist_placement AS p USING (shardid)
                       JOIN pg_dist_node AS n USING (groupid)
                       WHERE n.nodeport = $worker3_port AND s.logicalrelid::text LIKE 'shortlink%'"),
	'shortlink_key shortlink_reserved_codes shortlink_url_links shortlink_url_locks shortlink_visits shortlinks',
	'citus_rebalance_start() under load gives the third worker shards of every table');
my $moved_shard = sql('coordinator', "SELECT s.shardid FROM pg_dist_shard AS s JOIN pg_dist_placement AS p USING (shardid)
                                      JOIN pg_dist_node AS n USING (groupid)
                                      WHERE s.logicalrelid = 'shortlinks'::regclass AND n.nodeport = $worker3_port
                                      ORDER BY s.shardid LIMIT 1");
sql('coordinator', "SELECT citus_move_shard_placement($moved_shard, '127.0.0.1', $worker3_port,
                                                      '127.0.0.1', ${\ $node{worker1}->port }, shard_transfer_mode => 'block_writes')");
my @places = split /\|/, sql('coordinator', "
	SELECT count(DISTINCT n.nodeport), min(n.nodeport)
	FROM pg_dist_placement AS p JOIN pg_dist_node AS n USING (groupid)
	WHERE p.shardid IN (SELECT shardid FROM pg_dist_shard
	                    WHERE logicalrelid IN ('shortlinks'::regclass, 'shortlink_visits'::regclass)
	                      AND shardminvalue = (SELECT shardminvalue FROM pg_dist_shard WHERE shardid = $moved_shard))");
is("$places[0] $name_of_port{$places[1]}", '1 worker1', 'citus_move_shard_placement() under load moves a shard of shortlinks with its visits');
my $moving_rounds;
($failed, $moving_rounds) = pgbench_rounds(@moving);
is($failed, 0, 'the clients resolve and shorten through the moves without an error or a wrong URL');
my $moving_links = sql('coordinator', "SELECT count(*) FROM shortlinks WHERE url LIKE 'https://example.com/moving/%'");
note "$moving_rounds rounds of shorten() and two resolve(); $moving_links new links";
is(sql('coordinator', "SELECT count(*) - count(DISTINCT url) FROM shortlinks WHERE url LIKE 'https://example.com/moving/%'")
	  . '/' . sql('coordinator', 'SELECT count(*) FROM shortlinks'),
	'0/' . ($links_before + $moving_links), 'through the moves, a URL of the pool has one link, and no link is lost');
$expected = $visits_before + 2 * $moving_rounds;
is(wait_for('coordinator', 'SELECT sum(visits) FROM shortlink_visits', $expected), $expected, 'every visit of the clients is counted once');
for my $name (@names)
{
	is(sql($name, with_links('SELECT count(*) FROM links WHERE resolve(code) IS DISTINCT FROM url')), 0,
		"after the moves, the $name finds every link of the pool and of before");
}

# resolve() keeps the plan of its query on a node that holds no shard of shortlinks (here the
# coordinator), and plans it at each call on one that does, where a kept plan would grow with
# every call (sql/src/citus.sql); a session of the coordinator switches when a shard moves there.
my $kept_plans = "SELECT count(*) FROM pg_backend_memory_contexts
                  WHERE name = 'CachedPlan' AND ident LIKE '%s.code = _shortlink_by_code.code%'";
my $kept_after_ten = "SELECT count(resolve('before-' || i)) FROM generate_series(1, 10) AS i; $kept_plans";
is(join(' ', map { (split /\n/, sql($_, $kept_after_ten))[-1] } qw(coordinator worker1)), '1 0',
	"resolve()'s plan is kept on the coordinator, which holds no shard, and not on a worker");
my $coordinator_port = $node{coordinator}->port;
my $held_shard = sql('coordinator', "SELECT get_shard_id_for_distribution_column('shortlinks', 'before-1')");
my $held_shard_port = sql('coordinator', "SELECT n.nodeport FROM pg_dist_placement AS p JOIN pg_dist_node AS n USING (groupid)
                                          WHERE p.shardid = $held_shard");
my $coordinator_session = session_start($node{coordinator}, 'postgres');
session_send($coordinator_session, "$kept_after_ten;");
session_wait_for($coordinator_session, qr/^10\n1\n/);
sql('coordinator', "SELECT citus_set_node_property('127.0.0.1', $coordinator_port, 'shouldhaveshards', true);
	SELECT citus_move_shard_placement($held_shard, '127.0.0.1', $held_shard_port, '127.0.0.1', $coordinator_port,
	                                  shard_transfer_mode => 'block_writes')");
session_send($coordinator_session, "SELECT count(resolve('before-1')) FROM generate_series(1, 3000); $kept_plans;
	SELECT sum(total_bytes) < 32 * 1024 * 1024 FROM pg_backend_memory_contexts;");
session_wait_for($coordinator_session, qr/^3000\n\d+\n[tf]\n/m);
my @after_move = (split /\n/, session_end($coordinator_session))[-2, -1];
is("@after_move", '0 t', 'once a shard of shortlinks moves to the coordinator, its sessions plan at each call:'
	  . ' 3,000 resolve() of a code of that shard leave a backend under 32 MB');
sql('coordinator', "SELECT citus_move_shard_placement($held_shard, '127.0.0.1', $coordinator_port, '127.0.0.1', $held_shard_port,
	                                                  shard_transfer_mode => 'block_writes');
	SELECT citus_set_node_property('127.0.0.1', $coordinator_port, 'shouldhaveshards', false)");

# Whatever made, changed and deleted links above (shorten() from every node under load, updates,
# deletes, the purge, the import), each link is listed once under its URL, and nothing else is.
is(sql('coordinator', "CREATE TEMP TABLE links AS SELECT id, code, url, domain FROM shortlinks;
	CREATE TEMP TABLE listed AS SELECT link_id, code, url, domain, bucket FROM shortlink_url_links;
	SELECT (SELECT count(*) FROM links)
	       || ' ' || (SELECT count(*) FROM listed)
	       || ' ' || (SELECT count(*) FROM links AS l JOIN listed AS u
	                  ON u.link_id = l.id AND u.code = l.code AND u.url = l.url
	                 AND u.domain IS NOT DISTINCT FROM l.domain
	                 AND u.bucket = snowlink_internal._shortlink_url_bucket(l.url))"),
	sql('coordinator', "SELECT count(*) || ' ' || count(*) || ' ' || count(*) FROM shortlinks"),
	'shortlink_url_links lists every link under its URL and bucket, and nothing else');

# A cluster distributed at 0.2.0, updated: ALTER EXTENSION UPDATE takes the tables back to the
# coordinator, shortlinks_distribute() lays them out anew, and the cluster is then the one a fresh
# install distributes (the same objects, the same layout), with every link and visit it had.
# (Each in a transaction of its own: shortlinks_distribute() asks the workers for links of their
# own, which they cannot tell while the transaction that made the extension there is open.)
my $layout_query = "SELECT string_agg(format('%s by %s with %s', p.logicalrelid,
	                      coalesce(column_to_column_name(p.logicalrelid, p.partkey), 'nothing'),
	                      (SELECT string_agg(o.logicalrelid::text, ' ' ORDER BY o.logicalrelid::text)
	                       FROM pg_dist_partition AS o
	                       WHERE o.colocationid = p.colocationid AND o.logicalrelid <> p.logicalrelid)),
	               ', ' ORDER BY p.logicalrelid::text)
	FROM pg_dist_partition AS p WHERE p.logicalrelid::text LIKE 'shortlink%'";
my $fresh_layout = sql('coordinator', $layout_query);
sub catalog { return join "\n", sort split /\n/, sql('coordinator', "\\i $FindBin::RealBin/data/extension_catalog.sql") }
my $fresh_catalog = catalog();
# DROP EXTENSION leaves the shards on the nodes (Citus drops their metadata only): docs/citus.md's
# statements drop them.
my $drop_shards = sql('coordinator', "SELECT 'DROP TABLE IF EXISTS ' || string_agg(shard_name(logicalrelid, shardid), ', ')
                                      FROM pg_dist_shard WHERE logicalrelid::text LIKE 'shortlink%'");
# While the visit writers write, Citus may cancel the drop as a distributed deadlock (40P01):
# nothing is dropped then, and docs/citus.md says to run it again. (Or the drop waits for a
# writer that waits for the drop on another node, which Citus does not see, until the writer
# gives its write up.)
my $dropped;
for (1 .. 5)
{
	$dropped = output_of('coordinator', 'DROP EXTENSION snowlink CASCADE');
	last unless $dropped =~ /distributed deadlock/;
}
unlike($dropped, qr/ERROR/, 'DROP EXTENSION snowlink CASCADE on the coordinator, again after a distributed deadlock');
is(sql('coordinator', "SELECT string_agg(result, ', ') FROM run_command_on_all_nodes(\$\$$drop_shards\$\$) WHERE NOT success")
	  . ' ' . join(' ', grep { $_ ne '' } sql_all("SELECT string_agg(relname, ' ') FROM pg_class WHERE relname LIKE 'shortlink%' AND relkind = 'r'")),
	' ', 'after DROP EXTENSION and the DROP TABLE of docs/citus.md of its shards, no node keeps a table of snowlink');
sql('coordinator', "CREATE EXTENSION snowlink VERSION '0.2.0'");
sql('coordinator', "SELECT count(shorten('https://example.com/old/' || i, code => 'old-' || i)) FROM generate_series(1, 100) AS i");
sql('coordinator', 'SELECT shortlinks_distribute()');
sql('worker1', "SELECT count(shorten('https://example.com/old/' || i, code => 'old-' || i)) FROM generate_series(101, 150) AS i");
sql('worker2', "SELECT count(resolve('old-' || i)) FROM generate_series(1, 150, 3) AS i");
sql('coordinator', "SELECT count(resolve('old-' || i)) FROM generate_series(1, 150, 5) AS i");
my $links_query = "SELECT count(*) || ' ' || md5(string_agg(id || ' ' || code || ' ' || url, ',' ORDER BY id)) FROM shortlinks";
my $visits_query = "SELECT sum(visits) || ' ' || md5(string_agg(link_id || ' ' || day || ' ' || visits, ',' ORDER BY link_id, day))
                    FROM shortlink_visits";
my $expected_visits = int((150 + 2) / 3) + int((150 + 4) / 5);
wait_for('coordinator', 'SELECT sum(visits) FROM shortlink_visits', $expected_visits);
$links_before = sql('coordinator', $links_query);
$visits_before = sql('coordinator', $visits_query);
is((split / /, $links_before)[0] . ' ' . (split / /, $visits_before)[0], "150 $expected_visits",
	"a cluster distributed at 0.2.0 holds 150 links and $expected_visits visits");

# A table of the user's beside the links, with a foreign key to them: the update would lose the
# key on the shards, and refuses.
sql('coordinator', "CREATE TABLE campaign_links (code text COLLATE \"C\" NOT NULL REFERENCES shortlinks (code));
                    SELECT create_distributed_table('campaign_links', 'code', colocate_with => 'shortlinks')");
like(output_of('coordinator', 'ALTER EXTENSION snowlink UPDATE'),
	qr/while foreign keys reference them: campaign_links \(campaign_links_code_fkey\)$/m,
	'its ALTER EXTENSION UPDATE refuses while a foreign key references shortlinks, and names it');
sql('coordinator', 'DROP TABLE campaign_links');
like(output_of('coordinator', 'ALTER EXTENSION snowlink UPDATE'), qr/local to the coordinator until SELECT shortlinks_distribute\(\)/,
	'without it, ALTER EXTENSION UPDATE takes the tables back to the coordinator, and says so');
my %versions = map { $_ => 1 } sql_all("SELECT extversion FROM pg_extension WHERE extname = 'snowlink'");
is(join(',', keys %versions) . ' '
	  . sql('coordinator', "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'shortlink%'") . ' '
	  . sql('coordinator', "SELECT string_agg(DISTINCT result, ',') FROM run_command_on_workers('SELECT count(*) FROM shortlinks')"),
	sql('coordinator', "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'") . ' 0 0',
	'... updates every node, and leaves no table distributed and no link on a worker');
is(sql('coordinator', $links_query) . ' ' . sql('coordinator', $visits_query), "$links_before $visits_before",
	'... and keeps every link and every visit');

sql('coordinator', 'SELECT shortlinks_distribute()');
is(sql('coordinator', $layout_query), $fresh_layout, 'shortlinks_distribute() then lays the tables out as on a fresh install');
is(catalog(), $fresh_catalog, '... with the objects of a fresh install (t/data/extension_catalog.sql)');
is(sql('coordinator', $links_query) . ' ' . sql('coordinator', $visits_query), "$links_before $visits_before",
	'... and every link and visit');
# Each of these counts a visit: checked after the visits above.
my %found = map { $_ => 1 } sql_all("SELECT count(*) FROM generate_series(1, 150) AS i WHERE resolve('old-' || i) = 'https://example.com/old/' || i");
is(join(',', keys %found), 150, '... every link found from every node');
my $new_code = sql('worker2', "SELECT code FROM shorten('https://example.com/new/after-update')");
is(sql('coordinator', "SELECT resolve('$new_code')"), 'https://example.com/new/after-update',
	'... where a worker shortens and the coordinator resolves');

done_testing();
