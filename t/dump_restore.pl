# pg_dump of a database that uses snowlink, restored into a new database, keeps every link, every
# visit count, the code counter, the code key and the API keys: for a database made at the current
# version; for one made at each released version and updated before the dump; and for a dump made
# at a released version (a backup from before the update), restored into a database made at that
# version, then both updated.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = snowlink_node('server');
my $dump = PostgreSQL::Test::Utils::tempdir() . '/snowlink.dump';
my @released = split /\n/, $node->safe_psql('postgres', "
	SELECT version FROM pg_available_extension_versions
	WHERE name = 'snowlink' AND version <> (SELECT default_version FROM pg_available_extensions WHERE name = 'snowlink')
	ORDER BY string_to_array(version, '.')::int[]");
ok(@released >= 2, 'the install scripts of the released versions are installed: ' . join ', ', @released);

# round_trip(LABEL, MODE, VERSION): MODE '' (the current version), 'updated-from' or 'dumped-at'.
sub round_trip
{
	my ($label, $mode, $version) = @_;
	my $create = 'CREATE EXTENSION snowlink' . ($version ? " VERSION '$version'" : '');
	my ($source, $restored) = ('dump_source', 'dump_restored');
	$node->safe_psql('postgres', "DROP DATABASE IF EXISTS $_") for $source, $restored;
	$node->safe_psql('postgres', "CREATE DATABASE $_") for $source, $restored;

	$node->safe_psql($source, $create);
	$node->command_ok([ 'psql', '-X', '-q', '-d', $node->connstr($source), '-f', "$FindBin::RealBin/data/sample_links.sql" ],
		"$label: the sample links");
	my $api_key;
	if (!$mode)
	{
		# What the released versions lack: a title, tags, a domain (the same code as a link of the
		# default domain), an owner handed on and an API key.
		$node->safe_psql($source, "
			SELECT shorten('https://example.com/labelled', code => 'permanent', title => 'Labelled',
			               tags => ARRAY['spring', 'sale'], domain => 's.example.com');
			UPDATE shortlinks SET owner_role = 'shop_app', owner = 'user-42' WHERE domain = 's.example.com'");
		$api_key = $node->safe_psql($source, "SELECT snowlink_api_key_create('user-42', note => 'kept by pg_dump')");
	}
	$node->safe_psql($source, 'ALTER EXTENSION snowlink UPDATE') if $mode eq 'updated-from';

	$node->command_ok([ 'pg_dump', '--format=custom', "--file=$dump", '-d', $node->connstr($source) ], "$label: pg_dump");
	# The dump says CREATE EXTENSION IF NOT EXISTS: an old backup goes into the version it was made
	# with, which the update then carries forward like any other database.
	$node->safe_psql($restored, $create) if $mode eq 'dumped-at';
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr($restored), $dump ], "$label: pg_restore");
	if ($mode eq 'dumped-at')
	{
		$node->safe_psql($_, 'ALTER EXTENSION snowlink UPDATE') for $source, $restored;
	}

	# same(WHAT, QUERY): QUERY gives the same, non-empty answer in both databases.
	my $same = sub {
		my ($what, $query) = @_;
		my $expected = $node->safe_psql($source, $query);
		is($node->safe_psql($restored, $query), $expected eq '' ? '(nothing in the source database)' : $expected,
			"$label: $what");
	};
	$same->("the extension's version", "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'");
	$same->('every link, column by column (titles, tags, domains and owners too)',
		"SELECT count(*), md5(string_agg(s::text, '|' ORDER BY id)) FROM shortlinks AS s");
	$same->('every visit count',
		"SELECT string_agg(format('%s=%s', code, (shortlink_stats(code)).visits), ',' ORDER BY code) FROM shortlinks");
	$same->('the visit rows', 'SELECT count(*), coalesce(sum(visits), 0) FROM shortlink_visits');
	$same->('the code counter', 'SELECT last_value, is_called FROM shortlink_code_seq');
	$same->('the code key', "SELECT encode(key, 'hex') FROM shortlink_key");
	$same->('the reserved codes, added ones once',
		"SELECT string_agg(code || ':' || builtin, ',' ORDER BY code) FROM shortlink_reserved_codes");
	if (!$mode)
	{
		$same->('the API keys (hashes included)',
			"SELECT count(*), md5(string_agg(k::text, '|' ORDER BY id)) FROM snowlink_api_keys AS k");
		$same->('an API key made before the dump', "SELECT owner FROM snowlink_api_key_use('$api_key')");
	}
	# The same counter and key give the same next code on both sides, and it is new on both.
	$same->('the next generated code',
		"SELECT code || ':' || (SELECT count(*) FROM shortlinks WHERE code = s.code) FROM shorten('https://example.com/after-restore') AS s");
}

round_trip('made at the current version', '', undef);
for my $version (@released)
{
	round_trip("made at $version, updated before the dump", 'updated-from', $version);
	round_trip("dumped at $version, updated after the restore", 'dumped-at', $version);
}

done_testing();
