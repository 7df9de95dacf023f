# ALTER EXTENSION snowlink UPDATE from every released version to the current one. The updated
# database must be indistinguishable from a fresh install, keep every link, visit (written or
# still counted in a backend), custom code, the code key, the counter and the node claims, and
# applications that call resolve(), shorten() and snowflake_next() while the update runs must get
# right answers only.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

# Not public, so that an update script that names public where it means @extschema@ fails.
my $schema = 'links';
my $load_seconds = 8;
my $load_clients = 4;
my $data = "$FindBin::RealBin/data";
my $work = PostgreSQL::Test::Utils::tempdir();

# Each backend writes its visits with its transactions, so that counts read at once.
my $node = snowlink_node('server', 'snowlink.visit_write_mode' => 'transaction');
my $current = $node->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink'");
my @released = split /\n/, $node->safe_psql('postgres', "
	SELECT version FROM pg_available_extension_versions WHERE name = 'snowlink' AND version <> '$current'
	ORDER BY string_to_array(version, '.')::int[]");

# A new database whose sessions find the extension's objects in $schema and create their own in
# public.
sub recreate_database
{
	my ($db) = @_;
	$node->safe_psql('postgres', "DROP DATABASE IF EXISTS $db WITH (FORCE)");
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql('postgres', "ALTER DATABASE $db SET search_path = public, $schema");
	$node->safe_psql($db, "CREATE SCHEMA $schema");
}

# The extension's C functions, SYMBOL => "argument and result types".
sub c_functions
{
	my ($db) = @_;
	return map { split /\t/ } split /\n/, $node->safe_psql($db, "
		SELECT p.prosrc || E'\\t' || coalesce(p.proallargtypes, p.proargtypes::oid[])::regtype[]::text
		       || coalesce(' ' || p.proargmodes::text, '') || ' returns '
		       || CASE WHEN p.proretset THEN 'setof ' ELSE '' END || p.prorettype::regtype
		FROM pg_proc AS p
		JOIN pg_depend AS d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
		JOIN pg_extension AS e ON e.oid = d.refobjid AND e.extname = 'snowlink'
		WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')");
}

# The extension's catalog (t/data/extension_catalog.sql), "OBJECT | PROPERTY" => VALUE, as one
# session sees it after running SQL first (in a transaction that it rolls back), if given.
sub catalog
{
	my ($db, $first) = @_;
	my $script = $first ? "BEGIN;\n\\o /dev/null\n$first\n\\o\n\\i $data/extension_catalog.sql\nROLLBACK;\n"
	  : "\\i $data/extension_catalog.sql\n";
	return map { split /\t/, $_, 2 } split /\n/, $node->safe_psql($db, $script);
}

# differences(\%A, \%B, LABEL_A, LABEL_B): the keys whose value differs (or is absent) on one side.
sub differences
{
	my ($a, $b, $label_a, $label_b) = @_;
	my %keys = map { $_ => 1 } keys %$a, keys %$b;
	return map { "$_\n    $label_a: " . ($a->{$_} // '(absent)') . "\n    $label_b: " . ($b->{$_} // '(absent)') }
	  grep { ($a->{$_} // '(absent)') ne ($b->{$_} // '(absent)') } sort keys %keys;
}

# Starts psql on DB reading statements from a string that the caller goes on appending to.
sub feeding_session
{
	my ($db, $input, $errors) = @_;
	$$input = "\\set VERBOSITY sqlstate\n";
	return IPC::Run::start([ 'psql', '-X', '-q', '-d', $node->connstr($db) ], '<', $input, '>', '/dev/null', '2>', $errors);
}

sub update_from
{
	my ($from) = @_;
	my $db = 'updated';
	note "from $from to $current";
	recreate_database($db);
	recreate_database('fresh');
	$node->safe_psql('fresh', "CREATE EXTENSION snowlink SCHEMA $schema");
	$node->safe_psql($db, "CREATE EXTENSION snowlink SCHEMA $schema VERSION '$from'");

	# Data of every kind, made by the new library with the old version's SQL objects, and an
	# application's own objects that depend on the extension's.
	$node->safe_psql($db, "\\i $data/sample_links.sql");
	# As 0.1.0 stored a URL with non-ASCII characters in its path; 0.2.0's update rewrites it.
	$node->safe_psql($db, "INSERT INTO shortlinks (code, url) VALUES ('unicode', 'https://example.com/straße?q=ä')")
	  if $from eq '0.1.0';
	$node->safe_psql($db, <<'SQL');
SELECT shorten('https://example.com/load-limited', code => 'load-limited', max_visits => 1000000000);
CREATE TABLE orders (
    id bigint PRIMARY KEY DEFAULT snowflake_next(),
    link_id bigint REFERENCES shortlinks (id),
    item text
);
CREATE INDEX orders_by_code ON orders (base62_encode(id));
CREATE VIEW live_links AS SELECT code, url FROM shortlinks WHERE NOT disabled;
INSERT INTO orders (link_id, item) SELECT id, 'order for ' || code FROM shortlinks;
-- A code the user reserved that 0.2.0 reserves for snowlink-http, and 0.3.0's rule refuses (a
-- database made at 0.2.0 has it already).
INSERT INTO shortlink_reserved_codes (code) VALUES ('ids') ON CONFLICT DO NOTHING;

-- What the update must keep. Resolving counts a visit: write each at once, then read the counts.
SET snowlink.visit_write_mode = transaction;
CREATE TABLE before_resolved AS SELECT code, resolve(code) AS url FROM shortlinks;
CREATE TABLE before_links AS
    SELECT id, code, url, created_at, valid_from, expires_at, max_visits, redirect_status, disabled
    FROM shortlinks;
CREATE TABLE before_visits AS SELECT code, (shortlink_stats(code)).visits FROM shortlinks;
CREATE TABLE before_bookkeeping AS
    SELECT (SELECT last_value FROM shortlink_code_seq) AS counter,
           (SELECT key FROM shortlink_key) AS key,
           (SELECT string_agg(code || ':' || builtin, ',' ORDER BY code) FROM shortlink_reserved_codes
            WHERE code NOT IN ('healthz', 'ids', 'links')) AS reserved;

-- What the clients below do while the update runs, and what they get.
CREATE TABLE load_codes AS
    SELECT row_number() OVER (ORDER BY code) AS i, code, url
    FROM before_resolved AS r
    WHERE url IS NOT NULL AND code <> 'unicode'
      AND NOT EXISTS (SELECT FROM shortlinks AS s WHERE s.code = r.code AND s.max_visits IS NOT NULL);
CREATE TABLE load_resolved (code text, url text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE load_shortened (code text, url text, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE load_ids (id bigint PRIMARY KEY, at timestamptz DEFAULT clock_timestamp());
CREATE TABLE update_window (started timestamptz, finished timestamptz);
SQL
	my %c_functions_before = c_functions($db);

	# A session that holds a node and visits counted in memory across the update.
	PostgreSQL::Test::Utils::append_to_file("$work/held-$from.sql", <<'SQL');
SET snowlink.visit_write_mode = transaction;
SELECT snowflake_node_id() AS node_before, snowflake_next() AS id_before \gset
BEGIN READ ONLY;
SELECT resolve('permanent') FROM generate_series(1, 3) \g /dev/null
COMMIT;
SELECT set_config('snowlink_test.version', :'version', false) \g /dev/null
SET application_name = 'snowlink-held-session';
DO $$
BEGIN
    WHILE (SELECT extversion FROM pg_extension WHERE extname = 'snowlink')
          <> current_setting('snowlink_test.version') LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT snowflake_node_id() = :node_before AS same_node,
       EXISTS (SELECT FROM snowflake_nodes WHERE pid = pg_backend_pid() AND node_id = :node_before) AS listed,
       snowflake_next() > :id_before AS later_id;
BEGIN READ ONLY;
SELECT resolve('permanent') FROM generate_series(1, 2) \g /dev/null
COMMIT;
SQL
	my $held = IPC::Run::start(
		[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', "version=$current", '-d', $node->connstr($db),
		  '-f', "$work/held-$from.sql" ],
		'>', \my $held_output, '2>&1');
	$node->poll_query_until($db, "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'snowlink-held-session'")
	  or die 'the held session did not start';

	# Clients resolving, shortening and drawing IDs before, during and after the update.
	PostgreSQL::Test::Utils::append_to_file("$work/resolve.sql", <<'SQL') unless -e "$work/resolve.sql";
\set i random(1, :codes)
INSERT INTO load_resolved (code, url) SELECT code, resolve(code) FROM load_codes WHERE i = :i;
SQL
	PostgreSQL::Test::Utils::append_to_file("$work/ids.sql", <<'SQL') unless -e "$work/ids.sql";
INSERT INTO load_ids (id) SELECT snowflake_next() FROM generate_series(1, 10);
SQL
	my $codes = $node->safe_psql($db, 'SELECT count(*) FROM load_codes');
	my $load = IPC::Run::start(
		[ 'pgbench', '-n', '-M', 'prepared', '-c', $load_clients, '-j', 2, '-T', $load_seconds, '-D', "codes=$codes",
		  '-f', "$work/resolve.sql\@5", '-f', "$work/ids.sql\@2", $node->connstr($db) ],
		'>', \my $load_output, '2>&1');
	# shorten() from a session of its own that goes on after an error. The call that is running
	# when the update commits may fail, as any call of a function that an update drops or whose
	# row type it changes: it returns a row of shortlinks' new shape to a query made for the old
	# one (42804), its body, planned again, names a function the update moved (42883), or it was
	# planned with the dropped function (XX000, cache lookup failed). Checked below: one call at
	# most, the session's one running at the commit; every call that returned is right.
	my $shorten_errors = '';
	my $shortening = feeding_session($db, \my $shorten_input, \$shorten_errors);
	# A link with max_visits from a session of its own too: its visit is counted by the visit
	# writer while the caller holds its lock on shortlinks. When the update queues for the table
	# then, the writer's lock waits behind the update, which waits for the caller: after the
	# writer's lock_timeout, that call fails with 55P03 and the update goes on. One call at most.
	my $limited_errors = '';
	my $limited = feeding_session($db, \my $limited_input, \$limited_errors);
	my ($start, $update, $update_output) = (Time::HiRes::time());
	while (Time::HiRes::time() < $start + $load_seconds)
	{
		$shorten_input .= "INSERT INTO load_shortened (code, url)
		                   SELECT code, url FROM shorten('https://load.example/' || (random() * 1e9)::bigint);\n";
		$limited_input .= "INSERT INTO load_resolved (code, url) SELECT 'load-limited', resolve('load-limited');\n";
		$_->pump_nb for grep { $_->pumpable } $shortening, $limited, $load, $held, $update // ();
		$update //= IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db), '-c', '
			INSERT INTO update_window (started) VALUES (clock_timestamp())', '-c', 'ALTER EXTENSION snowlink UPDATE', '-c', '
			UPDATE update_window SET finished = clock_timestamp()' ], '>', \$update_output, '2>&1')
		  if Time::HiRes::time() > $start + $load_seconds / 3;
		Time::HiRes::sleep(0.003);
	}
	$update->finish or diag("the update: $update_output") if $update;
	my $load_ran = $load->finish;
	$_->finish for $shortening, $limited, $held;
	is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'"), $current, "updated to $current");

	note 'clients during the update';
	ok($load_ran, 'pgbench ran to the end') or diag(join "\n", grep { /aborted|error/ } split /\n/, $load_output);
	like($load_output, qr/^number of failed transactions: 0\b/m, 'no client got an error');
	my @shorten_errors = $shorten_errors =~ /^ERROR:.*$/mg;
	ok(@shorten_errors <= 1, 'shorten(): no error but, at most, of the one call running when the update committed')
	  or diag($shorten_errors);
	note "shorten() errors: @shorten_errors";
	my @limited_errors = split /\n/, $limited_errors;
	ok(@limited_errors <= 1 && !grep({ $_ ne 'ERROR:  55P03' } @limited_errors),
		'resolve() of a limited link: no error but, at most, a 55P03 of the call the update waited for')
	  or diag($limited_errors);
	is($node->safe_psql($db, "
		SELECT bool_and(before) AND bool_and(after)
		FROM (SELECT bool_or(at < started) AS before, bool_or(at > finished) AS after
		      FROM update_window,
		           (SELECT at FROM load_resolved UNION ALL SELECT at FROM load_shortened
		            UNION ALL SELECT at FROM load_ids) AS calls
		      GROUP BY started, finished) AS seen"), 't', 'clients worked before, during and after the update');
	is($node->safe_psql($db, "
		SELECT count(*) FROM load_resolved AS r JOIN before_resolved AS c USING (code)
		WHERE r.url IS DISTINCT FROM c.url"), 0, "every resolve() gave the link's URL");
	is($node->safe_psql($db, "
		SELECT count(DISTINCT code) = count(DISTINCT url)
		   AND NOT EXISTS (SELECT FROM load_shortened AS l JOIN before_links USING (code))
		   AND NOT EXISTS (SELECT FROM load_shortened AS l JOIN shortlinks AS s USING (code)
		                   WHERE s.url IS DISTINCT FROM l.url)
		FROM load_shortened"), 't', 'every shorten() gave a link of its own URL, new codes only');
	is($held_output =~ s/\s+\z//r, 't|t|t', 'the held session kept its node and its IDs went on rising');

	note 'data';
	is($node->safe_psql($db, "
		SELECT count(*) FROM (
		    SELECT * FROM before_links WHERE code <> 'unicode'
		    EXCEPT
		    SELECT id, code, url, created_at, valid_from, expires_at, max_visits, redirect_status, disabled
		    FROM shortlinks) AS changed"), 0, 'every link as it was');
	my @owners = split /\n/, $node->safe_psql($db, "
		SELECT count(*) FROM before_links AS b JOIN shortlinks AS s USING (code)
		JOIN pg_extension AS e ON e.extname = 'snowlink'
		WHERE s.owner_role <> e.extowner::regrole::text OR s.owner <> s.owner_role;
		CREATE ROLE snowlink_update_tenant IN ROLE snowlink_user;
		CREATE ROLE snowlink_update_admin IN ROLE snowlink_admin;
		GRANT USAGE ON SCHEMA $schema TO snowlink_update_tenant, snowlink_update_admin;
		SELECT set_config('snowlink_test.links', count(*)::text, false) FROM shortlinks;
		SET ROLE snowlink_update_tenant;
		SELECT count(*) FROM shortlinks;
		SET ROLE snowlink_update_admin;
		SELECT count(*) = current_setting('snowlink_test.links')::bigint FROM shortlinks;
		RESET ROLE;
		REVOKE USAGE ON SCHEMA $schema FROM snowlink_update_tenant, snowlink_update_admin;
		DROP ROLE snowlink_update_tenant, snowlink_update_admin");
	is("@owners[0, 2, 3]", '0 0 t', "links made before belong to the extension's owner, whom only snowlink_admin sees");
	is($node->safe_psql($db, "SELECT url FROM shortlinks WHERE code = 'unicode'"), 'https://example.com/stra%C3%9Fe?q=%C3%A4',
		'a URL stored with non-ASCII characters is now as a browser writes it')
	  if $from eq '0.1.0';
	is($node->safe_psql($db, "
		SELECT string_agg(code, ', ') FROM before_resolved
		WHERE code <> 'unicode' AND resolve(code) IS DISTINCT FROM url"), '', 'every code resolves as before');
	is($node->safe_psql($db, "
		SELECT b.key = (SELECT key FROM shortlink_key)
		   AND b.reserved = (SELECT string_agg(code || ':' || builtin, ',' ORDER BY code)
		                     FROM shortlink_reserved_codes
		                     WHERE code NOT IN ('healthz', 'ids', 'links'))
		FROM before_bookkeeping AS b"), 't', 'the code key, the reserved codes');
	is($node->safe_psql($db, "SELECT count(*) FROM shortlink_reserved_codes WHERE code IN ('healthz', 'ids', 'links')"),
		0, "snowlink-http's endpoints are no longer listed as reserved codes");
	like(query_output($node, $db, "SELECT shorten('https://example.com/', code => 'ids')"),
		qr/^ERROR:  \w{5}: custom code "ids" is an endpoint of snowlink-http$/m,
		"... and the library's rule refuses them");
	is($node->safe_psql($db, "
		SELECT (SELECT last_value FROM shortlink_code_seq) >= b.counter + (SELECT count(DISTINCT code) FROM load_shortened)
		FROM before_bookkeeping AS b"), 't', 'the code counter went on from where it was');
	is($node->safe_psql($db, "
		SELECT count(*) - count(DISTINCT id) FROM (
		    SELECT id FROM before_links UNION ALL SELECT id FROM load_ids
		    UNION ALL SELECT id FROM orders
		    UNION ALL SELECT id FROM shortlinks WHERE id NOT IN (SELECT id FROM before_links)) AS ids"), 0,
		'no ID issued twice');
	is($node->safe_psql($db, "
		INSERT INTO orders (item) VALUES ('after the update');
		SELECT (SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders'::regclass) = 'snowflake_next()'
		   AND EXISTS (SELECT FROM pg_indexes WHERE indexname = 'orders_by_code')
		   AND (SELECT count(*) FROM live_links) > 0"), 't',
		"the application's default, index and view on the extension's objects");
	# Until every other client backend has exited, and so written the visits it held.
	$node->poll_query_until($db, "
		SELECT NOT EXISTS (SELECT FROM pg_stat_activity
		                   WHERE datname = current_database() AND pid <> pg_backend_pid()
		                     AND backend_type = 'client backend')") or die 'clients did not exit';
	# Visits before the update, the one of "every code resolves as before" (not for the link whose
	# URL the update rewrote), those of the held session (written when it exited) and those of the
	# clients.
	is($node->safe_psql($db, "
		SELECT string_agg(format('%s: %s, not %s', code, visits, expected), '; ')
		FROM (SELECT b.code, (shortlink_stats(b.code)).visits,
		             b.visits + (r.url IS NOT NULL AND b.code <> 'unicode')::int
		             + CASE b.code WHEN 'permanent' THEN 5 ELSE 0 END
		             + (SELECT count(*) FROM load_resolved AS l WHERE l.code = b.code) AS expected
		      FROM before_visits AS b JOIN before_resolved AS r USING (code)) AS counts
		WHERE visits IS DISTINCT FROM expected"), '', 'visits add up');

	note 'the updated database against a fresh install';
	my %c_functions_now = c_functions('fresh');
	my @changed = map { "$_: $c_functions_before{$_} in $from, $c_functions_now{$_} now" }
	  grep { exists $c_functions_now{$_} && $c_functions_now{$_} ne $c_functions_before{$_} } sort keys %c_functions_before;
	is("@changed", '', "C functions of $from that remain keep their argument and result types");
	my %fresh = catalog('fresh');
	is(scalar(grep { exists $fresh{$_} } "function $schema.resolve(pg_catalog.text) | exists",
			"table column $schema.shortlinks.code | exists"), 2, "the catalog lists the extension's objects");
	is(join("\n", differences(\%fresh, { catalog($db) }, 'fresh', 'updated')), '',
		'the catalog of the updated database is that of a fresh install');

	# The comparison itself notices each kind of difference.
	my %altered = catalog($db, "
		ALTER FUNCTION snowflake_min(timestamptz) STABLE;
		GRANT DELETE ON shortlink_visits TO snowlink_user;
		ALTER TABLE shortlinks ALTER COLUMN redirect_status SET DEFAULT 301;
		ALTER TABLE shortlink_key ADD COLUMN note text;
		ALTER TABLE shortlink_visits SET (fillfactor = 100);
		DROP INDEX shortlinks_expires_at;
		COMMENT ON VIEW snowflake_nodes IS NULL;
		UPDATE pg_extension SET extcondition = array_replace(extcondition, 'WHERE NOT builtin', '')
		WHERE extname = 'snowlink';");
	my %noticed = map { (split /\n/)[0] => 1 } differences(\%fresh, \%altered, 'fresh', 'altered');
	for my $expected (
		"function $schema.snowflake_min(timestamp with time zone) | definition",
		"table $schema.shortlink_visits | privileges",
		"table column $schema.shortlinks.redirect_status | default",
		"table column $schema.shortlink_key.note | exists",
		"table $schema.shortlink_visits | options",
		"index $schema.shortlinks_expires_at | exists",
		"view $schema.snowflake_nodes | comment",
		'extension snowlink | tables pg_dump dumps')
	{
		ok($noticed{$expected}, "the comparison notices: $expected");
	}
}

update_from($_) for @released;

done_testing();
