# Three independent servers and a hot standby of the first, each with a node range of its own,
# draw snowflake IDs concurrently: no ID may repeat across them, and every ID's node lies in its
# server's range. The standby resolves links and follows their edits. Preloaded, the library
# defines every setting at the start; docs/ids.md's settings for postgresql.conf keep the defaults.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use Test::More;

my $ids_per_client = 50_000;
my $clients_per_server = 2;

my %range = (one => [ 0, 255 ], two => [ 256, 511 ], three => [ 512, 767 ], standby => [ 768, 1023 ]);
my %settings = map {
	$_ => { 'snowlink.node_min' => $range{$_}[0], 'snowlink.node_max' => $range{$_}[1] }
} keys %range;
my %server = map { $_ => snowlink_node($_, %{ $settings{$_} }) } qw(one two three);
$server{standby} = snowlink_standby($server{one}, 'standby', %{ $settings{standby} });
my @names = qw(one two three standby);

# Every client of every server at once.
my %clients;
for my $name (@names)
{
	push @{ $clients{$name} }, psql_start($server{$name}, 'postgres',
		"SELECT snowflake_next() FROM generate_series(1, $ids_per_client)")
	  for 1 .. $clients_per_server;
}
my %drawn = map { $_ => [ map { psql_finish($_) } @{ $clients{$_} } ] } @names;
my @all = map { @{ $drawn{$_} } } @names;

is(scalar @all, @names * $clients_per_server * $ids_per_client, 'IDs drawn');
no_repeats('no ID repeats across the servers', @all);
for my $name (@names)
{
	my ($min, $max) = @{ $range{$name} };
	my $outside = $server{one}->safe_psql('postgres',
		"SELECT count(*) FROM unnest('{" . join(',', @{ $drawn{$name} }) . "}'::bigint[]) AS id
		 WHERE snowflake_node(id) NOT BETWEEN $min AND $max");
	is($outside, 0, "every ID of server $name has a node in $min..$max");
}

# Each server checks its range against the others': a misconfiguration would show here.
for my $name (@names)
{
	my $peers = join ',', map { "\"[$range{$_}[0],$range{$_}[1]]\"" } grep { $_ ne $name } @names;
	is($server{$name}->safe_psql('postgres', "SELECT count(*) FROM snowflake_node_range_conflicts('{$peers}')"),
		0, "server ${name}'s range overlaps no other");
}

# A hot standby resolves links, but cannot count the visit of a link with max_visits, which must
# be committed before the link is served: it says so.
my ($primary, $standby) = @server{qw(one standby)};
$primary->safe_psql('postgres', "
	SELECT shorten('https://example.com/plain', code => 'plain'),
	       shorten('https://example.com/limited', code => 'limited', max_visits => 5)");
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT resolve('plain')"), 'https://example.com/plain',
	'the standby resolves a link');
like(query_output($standby, 'postgres', "SELECT resolve('limited')"),
	qr/^ERROR:  25006: link "limited" has max_visits, so its visits can only be counted on the primary$/m,
	'the standby refuses a link with max_visits, with 25006');

# A link edited on the primary: the standby goes to the new target once the change is replayed.
$primary->safe_psql('postgres', "SELECT shortlink_update('plain', url => 'https://example.com/edited')");
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT resolve('plain')"), 'https://example.com/edited',
	'the standby follows an edited link to its new target');

# Preloaded, the library defines every setting in the postmaster: a new session knows them all
# before it calls any function of snowlink (without it, once one has loaded the library:
# pg_test/sql/settings.sql).
my $preloaded = $server{three};
$preloaded->append_conf('postgresql.conf', "shared_preload_libraries = 'snowlink'\nsnowlink.code_style = 'snowflake'\n");
$preloaded->restart;
is($preloaded->safe_psql('postgres', "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name LIKE 'snowlink.%'"),
	'snowlink.allowed_url_schemes=http,https snowlink.code_style=snowflake snowlink.max_clock_backward_ms=5 '
	  . 'snowlink.max_url_length=8000 snowlink.node_max=767 snowlink.node_min=512 snowlink.owner= '
	  . 'snowlink.visit_flush_interval_ms=1000 snowlink.visit_write_mode=background',
	'preloaded: a new session knows every setting, as postgresql.conf sets it');
is($preloaded->safe_psql('postgres', "SELECT snowflake_node(snowflake_next()) BETWEEN 512 AND 767"), 't',
	'preloaded: IDs come from the range');

# docs/ids.md's lines for postgresql.conf, which spare each new backend of PostgreSQL 15 the sorting
# in of every setting: taken with a reload, they keep every default.
my ($conf_lines) = PostgreSQL::Test::Utils::slurp_file("$FindBin::RealBin/../docs/ids.md")
  =~ /These lines in `postgresql.conf`.*?```\n(.*?)```/s;
my $unloaded = $server{two};
$unloaded->append_conf('postgresql.conf', $conf_lines);
$unloaded->reload;
# The postmaster takes the reload in its own time; then a new backend knows the settings unloaded.
$unloaded->poll_query_until('postgres', "SELECT current_setting('snowlink.code_style', true) IS NOT NULL")
  or die 'the reload did not take';
is($unloaded->safe_psql('postgres', "LOAD 'snowlink';
	SELECT count(*) FILTER (WHERE setting = coalesce(boot_val, '') AND source = 'configuration file') || ' of ' || count(*)
	FROM pg_settings WHERE name LIKE 'snowlink.%'"),
	'9 of 9', "docs/ids.md's postgresql.conf lines name every setting, at its default");

done_testing();
