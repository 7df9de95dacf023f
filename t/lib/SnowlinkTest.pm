# Shared by the TAP tests in t/: servers with snowlink installed, on PostgreSQL's own test
# framework (PostgreSQL::Test::Cluster picks free ports and keeps each server's log).
package SnowlinkTest;

use strict;
use warnings;
use Exporter 'import';
use File::Path;
use IPC::Run;

# PostgreSQL's test modules, and the pg_regress they run, come with the server's development files
# (Debian: postgresql-server-dev-MAJOR), found through PG_CONFIG or the pg_config on PATH. The
# modules do not depend on the server's version: an installation without them (the PyPI builds of
# 16 to 18) borrows Debian's.
BEGIN
{
	die "PostgreSQL does not run as root: run scripts/test.sh --only NAME, or prove as another user\n"
	  if $> == 0;
	my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
	my %dir = map { chomp(my $dir = `"$pg_config" --$_`); ($_ => $dir) } qw(pkglibdir bindir);
	die "cannot run $pg_config\n" unless $dir{pkglibdir};
	my ($modules) = grep { -e "$_/PostgreSQL/Test/Cluster.pm" }
	  "$dir{pkglibdir}/pgxs/src/test/perl", glob '/usr/lib/postgresql/*/lib/pgxs/src/test/perl';
	die "PostgreSQL's TAP test modules are not installed\n" unless $modules;
	unshift @INC, $modules;
	# The servers and tools of that installation, and a folder of its own for their data and logs.
	$ENV{PATH} = "$dir{bindir}:$ENV{PATH}";
	$ENV{PG_REGRESS} //= "$dir{pkglibdir}/pgxs/src/test/regress/pg_regress";
	my ($major) = `"$pg_config" --version` =~ /PostgreSQL (\d+)/;
	$ENV{TESTDIR} //= (__FILE__ =~ s{/t/lib/SnowlinkTest\.pm$}{}r) . "/target/tap/pg$major";
	File::Path::make_path($ENV{TESTDIR});
	# Errors as users' servers give them: with a backtrace, errors raised through pgrx carry it as
	# their DETAIL.
	delete $ENV{RUST_BACKTRACE};
}

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

our @EXPORT = qw(snowlink_node snowlink_standby query_output psql_start psql_finish session_start session_send
  session_wait_for session_end no_repeats);

# snowlink_node(NAME, SETTING => VALUE, ...): a new server with those settings, started, with
# snowlink created in its postgres database. UTF8, as the extension's users run it.
sub snowlink_node
{
	my ($name, %settings) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1, extra => [ '--encoding=UTF8', '--locale=C.UTF-8' ]);
	$node->append_conf('postgresql.conf', join '', map { "$_ = '$settings{$_}'\n" } sort keys %settings);
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION snowlink');
	return $node;
}

# snowlink_standby(PRIMARY, NAME, SETTING => VALUE, ...): a hot standby of PRIMARY made from a base
# backup, streaming from it, with those settings, started and in recovery.
sub snowlink_standby
{
	my ($primary, $name, %settings) = @_;
	my $backup = "$name-backup";
	$primary->backup($backup);
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, $backup, has_streaming => 1);
	$standby->append_conf('postgresql.conf', join '', map { "$_ = '$settings{$_}'\n" } sort keys %settings);
	$standby->start;
	$standby->poll_query_until('postgres', 'SELECT pg_is_in_recovery()')
	  or die "$name did not start streaming\n";
	return $standby;
}

# query_output(NODE, DATABASE, SQL, PSQL_OPTION...): what psql prints for SQL, standard output and
# errors together (errors with their SQLSTATE), whether it failed or not: the form in which the
# tests compare errors.
sub query_output
{
	my ($node, $database, $sql, @options) = @_;
	my ($stdout, $stderr);
	$node->psql($database, $sql, stdout => \$stdout, stderr => \$stderr,
		extra_params => [ '-v', 'VERBOSITY=verbose', @options ]);
	# psql reads SQL from its standard input here, and names it in front of each message.
	(my $errors = $stderr // '') =~ s/^psql:<stdin>:\d+: //mg;
	return join "\n", grep { $_ ne '' } ($stdout // ''), $errors;
}

# psql_start(NODE, DATABASE, SQL): runs SQL in a psql of its own, in the background; psql_finish
# waits for it and returns its output lines (as psql -At prints them).
sub psql_start
{
	my ($node, $database, $sql) = @_;
	my $run = { output => '' };
	$run->{handle} = IPC::Run::start(
		[ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr($database), '-c', $sql ],
		'>', \$run->{output}, '2>', \$run->{errors});
	return $run;
}

sub psql_finish
{
	my ($run) = @_;
	$run->{handle}->finish;
	diag("psql: $run->{errors}") if $run->{errors};
	return split /\n/, $run->{output};
}

# session_start(NODE, DATABASE): a psql session in the background that takes statements one after
# another from session_send(SESSION, SQL) while the test goes on; what it prints (psql -At, errors
# included) accumulates in $session->{output}. session_wait_for(SESSION, REGEX) waits until the
# output matches (3 minutes at most); session_end(SESSION) closes its input and waits for it.
sub session_start
{
	my ($node, $database) = @_;
	my $session = { input => '', output => '' };
	$session->{handle} = IPC::Run::start([ 'psql', '-X', '-q', '-A', '-t', '-d', $node->connstr($database) ],
		'<', \$session->{input}, '>', \$session->{output}, '2>&1');
	return $session;
}

sub session_send
{
	my ($session, $sql) = @_;
	$session->{input} .= "$sql\n";
	$session->{handle}->pump_nb while length $session->{input} && $session->{handle}->pumpable;
}

sub session_wait_for
{
	my ($session, $pattern) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until ($session->{output} =~ $pattern)
	{
		die "psql session: no output matching $pattern, got: $session->{output}\n"
		  if time > $deadline || !$session->{handle}->pumpable;
		$session->{handle}->pump_nb;
		Time::HiRes::sleep(0.05);
	}
}

sub session_end
{
	my ($session) = @_;
	$session->{handle}->finish;
	return $session->{output};
}

# no_repeats(WHAT, IDS): a check that no value of the list IDS repeats, naming the first that does.
sub no_repeats
{
	my ($what, @ids) = @_;
	my %seen;
	my @repeated = grep { $seen{$_}++ == 1 } @ids;
	is(scalar @repeated, 0, $what) or diag("repeated, for example: @repeated[0 .. ($#repeated < 4 ? $#repeated : 4)]");
}

1;
