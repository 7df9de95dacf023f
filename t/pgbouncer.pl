# Many more clients than server connections draw IDs and shorten links through PgBouncer, in
# transaction pooling and in session pooling (whose reset query, DISCARD ALL, drops the node
# locks). Nothing may repeat and no client may get an error.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes;
use Test::More;

my $clients = 30;
my $transactions_per_client = 200;

my $server = snowlink_node('server');
$server->safe_psql('postgres', 'CREATE TABLE drawn_ids (id bigint PRIMARY KEY)');
my $work = PostgreSQL::Test::Utils::tempdir_short;
PostgreSQL::Test::Utils::append_to_file("$work/clients.sql", <<'SQL');
INSERT INTO drawn_ids VALUES (snowflake_next());
SELECT shorten('https://example.com/' || random());
SQL
PostgreSQL::Test::Utils::append_to_file("$work/userlist.txt", qq{"$ENV{USER}" ""\n});

# through_bouncer(MODE, PGBENCH_OPTION...): $clients clients on 3 server connections.
sub through_bouncer
{
	my ($mode, @pgbench_options) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my ($host, $server_port) = ($server->host, $server->port);
	PostgreSQL::Test::Utils::append_to_file("$work/$mode.ini", <<INI);
[databases]
postgres = host=$host port=$server_port dbname=postgres
[pgbouncer]
listen_addr =
listen_port = $port
unix_socket_dir = $work
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = $mode
default_pool_size = 3
max_client_conn = 200
server_reset_query = DISCARD ALL
INI
	# Its log into a file, not a pipe that nobody reads while pgbench runs.
	my $bouncer = IPC::Run::start([ 'pgbouncer', "$work/$mode.ini" ],
		'>', "$PostgreSQL::Test::Utils::log_path/pgbouncer-$mode.log", '2>&1');
	my $through = "host=$work port=$port dbname=postgres";
	# Until PgBouncer takes connections.
	for (1 .. 100)
	{
		last if IPC::Run::run([ 'psql', '-X', '-q', '-d', $through, '-c', 'SELECT 1' ], '>', \my $out, '2>', \my $err);
		Time::HiRes::sleep(0.1);
	}

	my $before = $server->safe_psql('postgres', 'SELECT count(*) FROM drawn_ids');
	my $ran = IPC::Run::run(
		[ 'pgbench', '-n', '-M', 'simple', '-h', $work, '-p', $port, '-c', $clients, '-j', 2,
		  '-t', $transactions_per_client, @pgbench_options, '-f', "$work/clients.sql", 'postgres' ],
		'>', \my $output, '2>&1');
	ok($ran, "$mode pooling: pgbench ran to the end") or diag($output);
	like($output, qr/^number of failed transactions: 0\b/m, "$mode pooling: no client got an error");
	is($server->safe_psql('postgres', 'SELECT count(*) FROM drawn_ids'),
		$before + $clients * $transactions_per_client, "$mode pooling: every ID stored once");
	$bouncer->kill_kill;
}

through_bouncer('transaction');
# A new connection for every transaction: PgBouncer runs DISCARD ALL between its clients.
through_bouncer('session', '--connect');
is($server->safe_psql('postgres', 'SELECT count(*) = count(DISTINCT code) FROM shortlinks'), 't',
	'short links: every code unique');
is($server->safe_psql('postgres', 'SELECT count(*) FROM shortlinks'), 2 * $clients * $transactions_per_client,
	'short links: one per transaction');

done_testing();
