# A full disk gives errors, never a crash. The data directory is a small tmpfs, its WAL elsewhere
# (PostgreSQL itself stops when it cannot write WAL). Sessions shorten URLs and resolve links
# while a file fills the disk, one of them starting when it is full already; then the file goes.
# The postmaster must live on, no process may end by a signal, and every link whose shorten()
# returned and every visit whose resolve() returned must be there once there is space again.
# Mounting the tmpfs needs root: scripts/test.sh mounts it and names it in SNOWLINK_TEST_SMALL_DISK.
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

my $disk = $ENV{SNOWLINK_TEST_SMALL_DISK};
plan skip_all => 'no small disk: scripts/test.sh mounts one as root (SNOWLINK_TEST_SMALL_DISK)'
  unless $disk && -d $disk;
my $rounds = 400;
my $work = PostgreSQL::Test::Utils::tempdir();

# The data directory on the small disk, its WAL where the test keeps its files.
my $node = PostgreSQL::Test::Cluster->new('server');
$node->init(extra => [ '--encoding=UTF8', '--locale=C.UTF-8', "--waldir=$work/wal" ]);
my $data = $node->data_dir;
system('cp', '-a', "$data/.", $disk) == 0 or die 'cannot copy the data directory to the small disk';
File::Path::remove_tree($data);
symlink $disk, $data or die $!;
$node->start;
my $postmaster = $node->{_pid};
$node->safe_psql('postgres', "CREATE EXTENSION snowlink;
	SELECT count(shorten('https://example.com/d/' || i, code => 'd' || i)) FROM generate_series(1, 100) AS i");

# A session: ROUNDS of shorten() and resolve(), then it waits (alive, with whatever visits it
# holds) until the disk has space again, and does a few more.
sub run_session
{
	my ($session, $rounds) = @_;
	my $statements = sub {
		join '', map {
			"SELECT 'made ' || code || ' ' || url FROM shorten('https://example.com/full/$session/$_');\n"
			  . "SELECT 'resolved ' || resolve('d' || " . (1 + int rand 100) . ");\n"
		} @_;
	};
	PostgreSQL::Test::Utils::append_to_file("$work/$session.sql",
		"\\set ON_ERROR_STOP off\n"
		  . $statements->(1 .. $rounds)
		  . "\\! touch $work/$session.waiting; while [ ! -e $work/freed ]; do sleep 0.1; done\n"
		  . $statements->($rounds + 1 .. $rounds + 20));
	return IPC::Run::start([ 'psql', '-X', '-A', '-t', '-d', $node->connstr('postgres'), '-f', "$work/$session.sql" ],
		'>', "$work/$session.out", '2>&1');
}
sub count_lines { my ($file, $pattern) = @_; return scalar grep { /$pattern/ } split /\n/, (-e $file ? slurp_file($file) : '') }

my @sessions = (run_session('one', $rounds), run_session('two', $rounds));
Time::HiRes::sleep(0.05) until count_lines("$work/one.out", qr/^made /) > 50;
system("dd if=/dev/zero of=$disk/filler bs=1M >/dev/null 2>&1");
# A session that starts on the full disk: its visit ring cannot get its space.
push @sessions, run_session('three', $rounds / 4);
for my $session (qw(one two three))
{
	for (1 .. 1200)
	{
		last if -e "$work/$session.waiting";
		Time::HiRes::sleep(0.1);
	}
}
unlink "$disk/filler";
PostgreSQL::Test::Utils::append_to_file("$work/freed", '');
$_->finish for @sessions;

my $outputs = join '', map { slurp_file("$work/$_.out") } qw(one two three);
like($outputs, qr/No space left on device/, 'the disk filled: shorten() failed for want of space');
ok(kill(0, $postmaster) && $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time() < now()') eq 't'
	  && (split /\n/, slurp_file("$data/postmaster.pid"))[0] == $postmaster,
	'the postmaster lives on');
unlike(slurp_file($node->logfile), qr/terminated by signal|was terminated by/, 'no process ended by a signal');
my @made = map { [ split / / ] } $outputs =~ /^made (\S+ \S+)$/mg;
$node->safe_psql('postgres', 'CREATE TABLE made (code text, url text)');
$node->safe_psql('postgres', 'INSERT INTO made VALUES ' . join ',', map { "('$_->[0]', '$_->[1]')" } @made) if @made;
is($node->safe_psql('postgres', 'SELECT count(*) > 0 AND count(*) = count(s.code) FROM made LEFT JOIN shortlinks AS s USING (code, url)'),
	't', 'every link whose shorten() returned is there, with its URL');
my $served = () = $outputs =~ /^resolved https:\/\//mg;
my ($counted, $previous) = (-1, -2);
for (1 .. 20)
{
	$previous = $counted;
	$counted = $node->safe_psql('postgres', "SELECT sum((shortlink_stats(code)).visits) FROM shortlinks WHERE code LIKE 'd%'");
	last if $counted == $previous && $counted >= $served;
	sleep 1;
}
note scalar(@made) . " links made, $served resolves returned, $counted visits counted";
is($counted, $served, 'every visit whose resolve() returned is counted, once');
like(slurp_file($node->logfile), qr/its visit ring has no disk space/, 'the visit ring without space was said in the log');

$node->stop('immediate');
done_testing();
