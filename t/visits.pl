# Visit counting with the visit writer, on a server with the default settings: a visit shows in
# shortlink_stats() whatever the backend that counted it does next (within a bound no busy machine
# breaks; bench/ measures the lag); a crash of a backend or of the whole server under load loses
# no visit and counts none twice; visit rows do not grow with backends; the writer stops when
# idle, so that DROP DATABASE can proceed, and comes back with the next visit; a lock on
# shortlink_visits holds up no redirect; a full ring is drained; databases without a free worker
# slot count their visits all the same; DROP EXTENSION and DROP DATABASE leave no visit row or
# rings file behind; snowlink_visit_writers shows the writer running, stopped, behind a locked
# table and dropping visits; a backend that counts visits faster than its ring holds them for an
# interval has them written sooner; a write held up by a row lock is given up and comes again.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $db = 'visits';
my $links = 1000;
my $clients = 4;
# A visit shows within about a second (snowlink.visit_flush_interval_ms); this bound is one that
# a busy machine does not break. The lag itself is a figure of the benchmarks (bench/run.sh).
my $shows_within_ms = 15_000;
my $work = PostgreSQL::Test::Utils::tempdir();

# A backend killed with SIGKILL takes the server through crash recovery, as on users' servers.
my $node = snowlink_node('server', restart_after_crash => 'on');
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, "CREATE EXTENSION snowlink;
	CREATE TABLE exported AS
	    SELECT 'c' || i AS code, 'https://example.com/' || i AS url FROM generate_series(1, $links) AS i;
	SELECT count(*) FROM shortlinks_import('exported')");

sub sql { $node->safe_psql(@_) }
sub total_visits { sql($_[0] // $db, 'SELECT coalesce(sum(visits), 0) FROM shortlink_visits') }
sub visits_of { sql($db, "SELECT visits FROM shortlink_stats('$_[0]')") }
sub writers { sql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer'") }

# The visits of the database once the count stops changing.
sub settled
{
	my ($counted, $previous) = (total_visits(), -1);
	while ($counted != $previous)
	{
		sleep 2;
		($previous, $counted) = ($counted, total_visits());
	}
	return $counted;
}

# Milliseconds until CODE shows VISITS visits (polled), or undef after 20 s.
sub wait_for_visits
{
	my ($code, $visits) = @_;
	my $start = Time::HiRes::time();
	while (visits_of($code) != $visits)
	{
		return undef if Time::HiRes::time() - $start > 20;
		Time::HiRes::sleep(0.05);
	}
	return int((Time::HiRes::time() - $start) * 1000);
}

# until_visits(DATABASE, AT_LEAST): the visits of DATABASE once they reach AT_LEAST, or after 20 s.
sub until_visits
{
	my ($database, $at_least) = @_;
	my $counted;
	for (1 .. 100)
	{
		$counted = total_visits($database);
		last if $counted >= $at_least;
		Time::HiRes::sleep(0.2);
	}
	return $counted;
}

# A visit of CODE counted by a backend that then WHAT shows in time.
sub shows
{
	my ($what, $code) = @_;
	my $lag = wait_for_visits($code, 1);
	note 'shown after ' . ($lag // 'never') . ' ms';
	ok(defined $lag && $lag <= $shows_within_ms, "a visit shows within $shows_within_ms ms while its backend $what");
}

# pgbench(DATABASE, SCRIPT, OPTION...): starts pgbench; finished by pgbench_served, which returns how
# many transactions it saw succeed.
sub pgbench
{
	my ($database, $script, @options) = @_;
	my $run = { output => '' };
	# Its sessions by their name (the framework names all others after the test).
	local $ENV{PGAPPNAME} = 'pgbench';
	$run->{handle} = IPC::Run::start([ 'pgbench', '-n', @options, '-f', $script, $node->connstr($database) ],
		'>', \$run->{output}, '2>&1');
	return $run;
}

sub pgbench_served
{
	my ($run) = @_;
	$run->{ran} = $run->{handle}->finish;
	my ($served) = $run->{output} =~ /^number of transactions actually processed: ([0-9]+)/m;
	return $served // 0;
}

note 'timely: the backend that served the visit stays idle, stays busy, or exits';
my $idle = session_start($node, $db);
session_send($idle, "SELECT resolve('c1');");
shows('stays idle in its session', 'c1');
my $busy = psql_start($node, $db, "SELECT resolve('c2'), pg_sleep(30)");
shows('is still running the statement that counted it', 'c2');
sql($db, "SELECT resolve('c3')");
shows('has exited', 'c3');
$busy->{handle}->kill_kill;
session_end($idle);

note 'the writer stops when there is nothing to write, and comes back with the next visit';
sleep 4;
is(writers(), 0, 'the visit writer stops after a few idle seconds');
is(sql($db, "SELECT running, writer_pid IS NULL, pending_visits, written_visits > 0, last_write_at < now(),
                    rings > current_setting('max_connections')::int, ring_capacity
             FROM snowlink_visit_writers WHERE database = '$db'"),
	'f|t|0|t|t|t|65536', '... and snowlink_visit_writers shows it stopped, with the visits it wrote');
sql($db, "SELECT resolve('c4')");
shows('is the first one after the writer stopped', 'c4');
is(writers(), 1, 'one visit writer per database');
is(sql($db, "SELECT w.running, w.writer_pid = a.pid FROM snowlink_visit_writers AS w, pg_stat_activity AS a
             WHERE w.database = '$db' AND a.backend_type = 'snowlink visit writer'"),
	't|t', 'snowlink_visit_writers shows it running, as its process');

note 'DROP DATABASE (which waits 5 s for other sessions) is not blocked by an idle writer';
sql('postgres', 'CREATE DATABASE visits_drop');
sql('visits_drop', "CREATE EXTENSION snowlink; SELECT resolve(code) FROM shorten('https://example.com/drop')");
Time::HiRes::sleep(1.5);
is(query_output($node, 'postgres', 'DROP DATABASE visits_drop'), '',
	'DROP DATABASE after visits waits for the writer to stop, then drops');
sql('postgres', 'CREATE DATABASE visits_drop');
sql('visits_drop', "CREATE EXTENSION snowlink; SELECT resolve(code) FROM shorten('https://example.com/drop')");
is(query_output($node, 'postgres', 'DROP DATABASE visits_drop WITH (FORCE)'), '', 'DROP DATABASE WITH (FORCE) stops a running writer');

note 'no loss: a crash under load loses no visit whose resolve() returned';
PostgreSQL::Test::Utils::append_to_file("$work/resolve.sql", "\\set n random(1, $links)\nSELECT resolve('c' || :n);\n");

# Runs pgbench for 6 s, CRASH after 3 s, and checks what was counted against the transactions
# that pgbench saw succeed.
sub crash_under_load
{
	my ($what, $crash) = @_;
	my $before = total_visits();
	my $load = pgbench($db, "$work/resolve.sql", '-M', 'prepared', '-c', $clients, '-T', 6);
	sleep 3;
	$crash->();
	my $served = pgbench_served($load);
	# After a restart, the first visit starts a writer, which writes what the rings kept too.
	sql($db, "SELECT resolve('c1')");
	$served++;
	my $counted = settled() - $before;
	note "$what: $served resolves returned, $counted visits counted";
	cmp_ok($counted, '>=', $served, "$what: no visit whose resolve() returned is lost");
	# A resolve() that counted its visit but whose answer the crash cut off: one per client.
	cmp_ok($counted, '<=', $served + $clients, "$what: no visit is counted twice");
}
crash_under_load('kill -9 of one backend', sub {
	my $log_offset = -s $node->logfile;
	kill 'KILL', sql($db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1");
	# The postmaster restarts every backend after the crash. pg_isready could answer before it
	# noticed the crash; its log says when it is ready again.
	$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
});
crash_under_load('the server stopped in immediate mode', sub { $node->stop('immediate'); $node->start; });

note 'bounded storage: 100 short-lived backends that visit one link leave one row for it';
PostgreSQL::Test::Utils::append_to_file("$work/resolve_one.sql", "SELECT resolve('c5');\n");
my $before = visits_of('c5');
pgbench_served(pgbench($db, "$work/resolve_one.sql", '-C', '-c', 2, '-t', 50));
ok(defined wait_for_visits('c5', $before + 100), "100 backends' visits of one link are counted");
is(sql($db, "SELECT count(*) = count(DISTINCT v.day) FROM shortlink_visits AS v JOIN shortlinks AS l ON l.id = v.link_id
             WHERE l.code = 'c5'"), 't', '... in one row per day');

note 'a busy backend: the writer writes before its interval once it holds half a ring';
# A ring frees its visits only when the write that counts them commits: with an interval of an
# hour, one session counts 40,000 visits, more than half of its ring (65,536) and less than all.
# The writer writes what it read then, not an hour later; the rest at the interval.
until_writers(0);
# The library defines the setting: ALTER SYSTEM knows it once the session has loaded it.
sql('postgres', "LOAD 'snowlink'; ALTER SYSTEM SET snowlink.visit_flush_interval_ms = '1h'; SELECT pg_reload_conf()");
# The writer that the first visit starts must have the interval: the postmaster has taken the
# reload once a new backend sees it.
$node->poll_query_until('postgres', "SELECT current_setting('snowlink.visit_flush_interval_ms', true) = '1h'")
  or die 'the reload did not take';
sql($db, "SELECT shorten('https://example.com/early', code => 'early')");
my $busy_session = session_start($node, $db);
session_send($busy_session, "SELECT count(resolve('early')) FROM generate_series(1, 40000);");
session_wait_for($busy_session, qr/^40000$/m);
my $written_early;
for (1 .. 100)
{
	$written_early = visits_of('early');
	last if $written_early >= 32768;
	Time::HiRes::sleep(0.2);
}
note "40,000 visits of one session, the interval an hour: $written_early written within 20 s";
cmp_ok($written_early, '>=', 32768, 'the writer writes half a ring of visits at once, though its interval is an hour');
sql('postgres', "LOAD 'snowlink'; ALTER SYSTEM RESET snowlink.visit_flush_interval_ms; SELECT pg_reload_conf()");
ok(defined wait_for_visits('early', 40000), '... and the rest at its interval, once that is a second again');
session_end($busy_session);

note 'a row of shortlink_visits held: the writer gives its write up after 30 s and comes again';
# A transaction that holds the row of a link and day (FOR UPDATE here; an UPDATE of it would too)
# holds up the write that adds to that row. The writer gives the write up after 30 s, logs it, and
# writes at a later interval, once the row is free. (The log line also shows that the timeout that
# src/visits/writer.rs declares by hand is PostgreSQL's statement timeout, on each major.)
sql($db, "SELECT shorten('https://example.com/held-row', code => 'held-row'); SELECT resolve('held-row')");
defined wait_for_visits('held-row', 1) or die 'the first visit was not written';
my $held_log = -s $node->logfile;
my $row_holder = psql_start($node, $db,
	"BEGIN; SELECT FROM shortlink_visits AS v JOIN shortlinks AS s ON s.id = v.link_id WHERE s.code = 'held-row' FOR UPDATE OF v;
	SELECT pg_sleep(120) AS holds_visits_row; COMMIT");
my $row_held = "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%AS holds_visits_row%'";
$node->poll_query_until($db, "SELECT count(*) = 1 FROM ($row_held) AS h") or die 'the row was not taken';
sql($db, "SELECT resolve('held-row')");
ok($node->wait_for_log(qr/counted visits are written later: canceling statement due to statement timeout/, $held_log),
	'a write that waits for a row lock of another transaction is given up, and logged');
sql($db, "SELECT pg_terminate_backend(pid) FROM ($row_held) AS h");
psql_finish($row_holder);
ok(defined wait_for_visits('held-row', 2), '... and written once the row is free');

# A lock on shortlink_visits (ALTER TABLE, VACUUM FULL, LOCK) holds up no redirect. One session
# holds it while clients resolve: the rings fill, the backends hold the rest of their visits in
# memory and do not wait. Then the writer is stopped, with a full ring, and the session whose ring
# is full asks for a new one with its next visit. Every visit is counted, but those that a
# client's backend still held when it exited, the table still locked, which the server log
# reports.
note 'a lock on shortlink_visits';
sql($db, "SELECT shorten('https://example.com/ring', code => 'ring');
	CREATE TABLE dropped_links AS
	    SELECT 'd' || i AS code, 'https://example.com/d/' || i AS url FROM generate_series(1, 10100) AS i;
	SELECT count(*) FROM shortlinks_import('dropped_links')");
$before = settled();
my $log_offset = -s $node->logfile;
my $filler = session_start($node, $db);
my $locker = psql_start($node, $db, 'BEGIN; LOCK TABLE shortlink_visits IN EXCLUSIVE MODE; SELECT pg_sleep(25); COMMIT');
my $lock_held = "SELECT count(*) = 1 FROM pg_locks
                 WHERE relation = 'shortlink_visits'::regclass AND mode = 'ExclusiveLock' AND granted";
$node->poll_query_until($db, $lock_held) or die 'the lock was not taken';
my $locked_at = sql($db, 'SELECT clock_timestamp()');
# More visits than a ring holds, from the session whose ring it is; then, its ring still full,
# the visits of 10,100 links in a read-only transaction, more than a backend holds for want of a
# writable one (10,000 links and days): the rest are dropped.
session_send($filler, "SELECT count(resolve('ring')) FROM generate_series(1, 80000);");
session_send($filler, "BEGIN READ ONLY; SELECT count(resolve('d' || i)) FROM generate_series(1, 10100) AS i; COMMIT;");
my $locked_load = pgbench($db, "$work/resolve.sql", '-M', 'prepared', '-c', $clients, '-T', 10, '-l', "--log-prefix=$work/locked");
my $served = pgbench_served($locked_load);
my $slowest_us = 0;
for my $file (glob "$work/locked.*")
{
	for (split /\n/, PostgreSQL::Test::Utils::slurp_file($file))
	{
		my $latency_us = (split / /)[2];
		$slowest_us = $latency_us if $latency_us > $slowest_us;
	}
}
note "$served resolves while shortlink_visits was locked; the slowest took " . int($slowest_us / 1000) . ' ms';
cmp_ok($slowest_us, '<', 5_000_000, 'shortlink_visits locked for 25 s: no resolve() waits for it (slowest under 5 s)');
like(PostgreSQL::Test::Utils::slurp_file($node->logfile, $log_offset), qr/counted visits that it could not write yet/,
	'... and the visits held back are logged');
# The filler session's two statements are done.
session_wait_for($filler, qr/^80000\n(?:.*\n)*10100$/m);
is(sql($db, "SELECT running, pending_visits >= 65536, last_write_at < '$locked_at', dropped_visits >= 100
             FROM snowlink_visit_writers WHERE database = '$db'"),
	't|t|t|t', 'snowlink_visit_writers shows the writer behind: visits pending, no write since the lock, visits dropped');
my $dropped = sql($db, "SELECT dropped_visits FROM snowlink_visit_writers WHERE database = '$db'");
is(sql($db, $lock_held), 't', '... and the lock was held all along');
sql($db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'snowlink visit writer'");
psql_finish($locker);
session_send($filler, "SELECT resolve('ring');");
ok(defined wait_for_visits('ring', 80001),
	'the writer stopped with a full ring: the ring\'s own session brings a new one, and every visit is counted');
session_end($filler);
my $lost = 0;
$lost += $_ for PostgreSQL::Test::Utils::slurp_file($node->logfile, $log_offset)
  =~ /snowlink: ([0-9]+) visits counted by this backend are lost at its exit/g;
note "$lost visits held by clients that exited while the table was locked, reported lost";
is(settled() - $before + $lost + $dropped, $served + 80000 + 1 + 10100,
	'every visit of the locked time is counted once, or reported lost, or dropped');

note 'fewer worker slots than databases that count visits';
# Those without a writer write their visits themselves: every one is counted, and no client sees
# a warning.
$node->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$node->restart;
PostgreSQL::Test::Utils::append_to_file("$work/resolve_slots.sql", "\\set n random(1, 100)\nSELECT resolve('c' || :n);\n");
for my $n (1 .. 4)
{
	sql('postgres', "CREATE DATABASE slots_$n");
	sql("slots_$n", "CREATE EXTENSION snowlink;
		CREATE TABLE exported AS SELECT 'c' || i AS code, 'https://example.com/' || i AS url FROM generate_series(1, 100) AS i;
		SELECT count(*) FROM shortlinks_import('exported')");
}
my @slot_loads = map { pgbench("slots_$_", "$work/resolve_slots.sql", '-M', 'prepared', '-c', 2, '-T', 5) } 1 .. 4;
my @served = map { pgbench_served($_) } @slot_loads;
my ($failed, $missing) = (scalar(grep { !$_->{ran} } @slot_loads), 0);
for my $n (1 .. 4)
{
	my $counted = until_visits("slots_$n", $served[ $n - 1 ] || 1);
	note "database slots_$n: $served[$n - 1] resolves, $counted visits counted";
	$missing++ if $counted != $served[ $n - 1 ];
}
is("$failed $missing", '0 0', '4 databases, 2 worker slots for writers: every database counts every visit within 20 s');
is(scalar(grep { $_->{output} =~ /WARNING/ } @slot_loads), 0, '... and no client saw a warning');

# until_writers(N): until N visit writers run (20 s at most).
sub until_writers
{
	my ($count) = @_;
	for (1 .. 100)
	{
		return if writers() == $count;
		Time::HiRes::sleep(0.2);
	}
}

note 'a full ring whose writer is gone is drained';
# A backend asks for a writer before it puts a visit into its ring, not only after. Two databases
# keep both writer slots busy while one session of a third counts more visits than its ring holds;
# once the slots are free, the next visit of that same session (whose ring it is) brings a writer.
until_writers(0);
@slot_loads = map { pgbench("slots_$_", "$work/resolve_slots.sql", '-M', 'prepared', '-c', 2, '-T', 20) } 1 .. 2;
until_writers(2);
$before = total_visits('slots_3');
my $full_ring = session_start($node, 'slots_3');
session_send($full_ring, "SELECT count(resolve('c1')) FROM generate_series(1, 80000);");
session_wait_for($full_ring, qr/^80000$/m);
my $busy_until_done = writers();
pgbench_served($_) for @slot_loads;
until_writers(0);
session_send($full_ring, "SELECT resolve('c1');");
my $counted = until_visits('slots_3', $before + 80001) - $before;
my $full_ring_output = session_end($full_ring);
note "80,001 visits in one session of a database without a writer slot: $counted counted";
is($busy_until_done, 2, 'both writer slots were taken while the session counted its visits');
is($counted, 80001, 'a session that filled its ring without a writer: every visit counted within 20 s once a slot is free');
unlike($full_ring_output, qr/WARNING/, '... and it saw no warning');
$node->adjust_conf('postgresql.conf', 'max_worker_processes', undef);
$node->restart;

note 'DROP EXTENSION and CREATE EXTENSION again under load, DROP DATABASE';
# The visits counted for the dropped installation never reach the new one's tables. DROP
# DATABASE: its rings files go.
sql('postgres', 'CREATE DATABASE reinstalled');
sql('reinstalled', "CREATE TABLE exported AS
	SELECT 'c' || i AS code, 'https://example.com/' || i AS url FROM generate_series(1, $links) AS i");
my $install_with_links = "CREATE EXTENSION snowlink; SELECT count(*) FROM shortlinks_import('exported')";
sql('reinstalled', $install_with_links);
my $reinstall_load = pgbench('reinstalled', "$work/resolve.sql", '-M', 'prepared', '-c', $clients, '-T', 6);
sleep 2;
sql('reinstalled', 'DROP EXTENSION snowlink CASCADE');
sql('reinstalled', $install_with_links);
sql('reinstalled', "SELECT count(resolve('c' || i)) FROM generate_series(1, 100) AS i");
pgbench_served($reinstall_load);
# Once the backends of the load have gone, the next writer of the database removes the rings file
# of the dropped installation; the next writer of any database, those of dropped databases.
my @dropped_oids = split / /, sql('postgres', "SELECT string_agg(oid::text, ' ') FROM pg_database WHERE datname LIKE 'slots_%'");
sql('postgres', "DROP DATABASE slots_$_ WITH (FORCE)") for 1 .. 4;
until_writers(0);
sql('reinstalled', "SELECT resolve('c1')");
until_visits('reinstalled', 101);
sleep 2;
is(sql('reinstalled', 'SELECT count(*) FROM shortlink_visits AS v WHERE NOT EXISTS (SELECT FROM shortlinks AS s WHERE s.id = v.link_id)'),
	0, 'after DROP EXTENSION under load and CREATE again: no visit row without its link');
is(total_visits('reinstalled'), 101, '... and the new installation counts its own visits, all of them');
my $rings_dir = $node->data_dir . '/snowlink_visits';
opendir my $rings, $rings_dir or die $!;
my @rings_files = grep { /^\d+_/ } readdir $rings;
closedir $rings;
my %dropped_oid = map { $_ => 1 } @dropped_oids;
is(scalar(grep { $dropped_oid{ (split /_/)[0] } } @rings_files), 0, 'the rings files of dropped databases are removed by the next writer');
my $reinstalled_oid = sql('postgres', "SELECT oid FROM pg_database WHERE datname = 'reinstalled'");
my $table_oid = sql('reinstalled', "SELECT 'shortlink_visits'::regclass::oid");
is(scalar(grep { my ($d, $t) = split /_/; $d eq $reinstalled_oid && $t ne $table_oid } @rings_files), 0,
	'... and that of the dropped installation, once no backend has it open');

done_testing();
