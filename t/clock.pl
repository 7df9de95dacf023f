# No snowflake ID repeats whatever the clock does. A primary and its hot standby run under
# libfaketime, whose offset this test steps back by 1 s, 1 min and 1 h, with one node each, so
# that every backend takes its node over from the one before: backends take turns, in two
# databases, across fast and immediate restarts, and while the clock is behind. A backend that
# comes while the clock is behind its node's last use must fail with 58000 (or wait, within
# snowlink.max_clock_backward_ms); so must one after the mark file was removed, replaced,
# overwritten or cut short while IDs streamed, and one after a reboot (the marks in shared memory
# gone); every ID drawn, including those a crash cut short, must be unique.
use strict;
use warnings;
use File::Copy;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

my $ids_per_turn = 20_000;

# The servers' clock: real time plus the offset in this file, read at every clock reading.
my $offset_file = PostgreSQL::Test::Utils::tempdir() . '/offset';
sub set_offset { open my $file, '>', $offset_file or die $!; print $file "$_[0]\n"; close $file; }
set_offset('+0');
my ($libfaketime) = grep { -e } map { "/usr/lib/$_/faketime/libfaketime.so.1" } qw(x86_64-linux-gnu aarch64-linux-gnu);
die "libfaketime is not installed\n" unless $libfaketime;
my %faketime = (LD_PRELOAD => $libfaketime, FAKETIME_TIMESTAMP_FILE => $offset_file, FAKETIME_NO_CACHE => 1);

# Servers start under libfaketime, so that their backends inherit it.
sub start_under_faketime
{
	my ($node) = @_;
	local @ENV{ keys %faketime } = values %faketime;
	$node->start;
}

# Both servers have one node, so every backend takes it over from the one before.
my ($primary, $standby);
{
	local @ENV{ keys %faketime } = values %faketime;
	$primary = snowlink_node('primary', 'snowlink.node_min' => 7, 'snowlink.node_max' => 7);
	$primary->safe_psql('postgres', 'CREATE DATABASE other');
	$primary->safe_psql('other', 'CREATE EXTENSION snowlink');
	# An ID before the base backup, so that the standby starts with a copy of the primary's mark file.
	$primary->safe_psql('postgres', 'SELECT snowflake_next()');
	$standby = snowlink_standby($primary, 'standby', 'snowlink.node_min' => 8, 'snowlink.node_max' => 8);
}

my @ids;          # every ID drawn
my %last_id;      # the last ID drawn on each server, whose one node every backend there takes over

# wait_until_free(NODE): until no backend holds the server's node (a closed connection's backend
# exits a moment after).
sub wait_until_free
{
	$_[0]->poll_query_until('postgres', 'SELECT count(*) = 0 FROM snowflake_nodes')
	  or die 'a backend kept the node';
}

# A new backend draws $ids_per_turn IDs, then one a millisecond for over a second, so that a
# newcomer whose clock is 1 s behind would meet its milliseconds.
my $turn_sql = "COPY (SELECT snowflake_next() FROM generate_series(1, $ids_per_turn)
                      UNION ALL
                      SELECT snowflake_next() FROM generate_series(1, 1200) AS g
                      CROSS JOIN LATERAL pg_sleep(0.001 + 0 * g) AS pause) TO STDOUT";

sub draw
{
	my ($node, $database) = @_;
	wait_until_free($node);
	my @drawn = split /\n/, $node->safe_psql($database, $turn_sql);
	push @ids, @drawn;
	$last_id{ $node->name } = $drawn[-1];
}

# come_while_behind(WHAT, STEP_MS, NODE, DATABASE): a new backend draws IDs as draw() does while
# the clock is STEP_MS behind where it was. It must fail with 58000 and the size of the step at
# most or, should the clock have caught up meanwhile, start after the server's last ID.
sub come_while_behind
{
	my ($what, $step_ms, $node, $database) = @_;
	wait_until_free($node);
	my $output = query_output($node, $database, "COPY (SELECT snowflake_next() FROM generate_series(1, 1200) AS g
	                                                   CROSS JOIN LATERAL pg_sleep(0.001 + 0 * g) AS pause) TO STDOUT");
	if ($output =~ /\A[0-9\n]+\z/)
	{
		my @drawn = split /\n/, $output;
		push @ids, @drawn;
		cmp_ok($drawn[0], '>', $last_id{ $node->name }, "$what: the clock had caught up, and IDs start after the last");
		return;
	}
	my ($behind) = $output =~ /^ERROR:  58000: the system clock moved backwards by ([0-9]+) ms$/m;
	ok(defined $behind && $behind <= $step_ms, "$what: 58000 while the clock is behind")
	  or diag("expected 58000, at most $step_ms ms, got: $output");
}

# turns(WHAT, NODE, DATABASE, OTHER_DATABASE): backends take turns on the node, the clock stepping
# back by 1 s, 1 min and 1 h before each newcomer, then catching up.
sub turns
{
	my ($what, $node, $database, $other_database) = @_;
	for my $step (1, 60, 3600)
	{
		draw($node, $database);
		set_offset("-$step");
		is($node->safe_psql($database, 'SELECT nodes_refusing >= 1, furthest_ahead_ms BETWEEN 1 AND '
			  . ($step * 1000 + 1000) . ' FROM snowflake_node_status'),
			't|t', "$what, $step s back: snowflake_node_status shows a node refusing IDs, ahead by up to the step");
		come_while_behind("$what, $step s back", $step * 1000, $node, $other_database);
		set_offset('+0');
		draw($node, $other_database);
		is($node->safe_psql($database, 'SELECT nodes_refusing, claimed <= nodes FROM snowflake_node_status'),
			'0|t', "$what, the clock caught up: no node refuses IDs");
	}
}

note 'takeovers';
turns('primary', $primary, 'postgres', 'postgres');
turns('primary, two databases', $primary, 'postgres', 'other');
turns('standby', $standby, 'postgres', 'postgres');

note 'within snowlink.max_clock_backward_ms the newcomer waits';
draw($primary, 'postgres');
set_offset('-1');
wait_until_free($primary);
{
	local $ENV{PGOPTIONS} = '-c snowlink.max_clock_backward_ms=5000';
	my @drawn = split /\n/,
	  $primary->safe_psql('postgres', "COPY (SELECT snowflake_next() FROM generate_series(1, $ids_per_turn)) TO STDOUT");
	push @ids, @drawn;
	ok(@drawn == $ids_per_turn && $drawn[0] > $last_id{primary},
		'a newcomer 1 s behind with a tolerance of 5 s gets its IDs, after the last');
}
set_offset('+0');

# stream_until_stopped(NODE, MODE, WHILE_STREAMING): a backend streams IDs (fast, then one a
# millisecond when SLOW) while WHILE_STREAMING runs, then the server stops in MODE. The IDs it
# sent before the stop, without a line the stop cut in two, count as drawn.
sub stream_until_stopped
{
	my ($node, $mode, $while_streaming, $slow) = @_;
	wait_until_free($node);
	my $sql = $slow
	  ? "COPY (SELECT snowflake_next() FROM generate_series(1, 20000)
	           UNION ALL
	           SELECT snowflake_next() FROM generate_series(1, 100000) AS g
	           CROSS JOIN LATERAL pg_sleep(0.001 + 0 * g) AS pause) TO STDOUT"
	  : 'COPY (SELECT snowflake_next() FROM generate_series(1, 100000000)) TO STDOUT';
	my $stream = psql_start($node, 'postgres', $sql);
	until (($stream->{output} =~ tr/\n//) > 10_000)
	{
		$stream->{handle}->pump_nb;
		Time::HiRes::sleep(0.05);
	}
	$while_streaming->();
	$node->stop($mode);
	$stream->{handle}->finish;
	my @drawn = split /\n/, $stream->{output};
	pop @drawn unless $stream->{output} =~ /\n\z/;
	push @ids, @drawn;
	$last_id{ $node->name } = $drawn[-1];
}

note 'restarts';
# restart(WHAT, NODE, MODE, STEP): stops the server (MODE fast or immediate) while a backend streams
# IDs out, steps the clock back by STEP seconds, starts it again.
sub restart
{
	my ($what, $node, $mode, $step) = @_;
	stream_until_stopped($node, $mode, sub { });
	set_offset("-$step");
	start_under_faketime($node);
	come_while_behind("$what, $mode stop, $step s back", $step * 1000, $node, 'postgres');
	set_offset('+0');
	draw($node, 'postgres');
}
restart('primary', $primary, 'fast', 60);
restart('primary', $primary, 'immediate', 3600);
$standby->poll_query_until('postgres', 'SELECT pg_is_in_recovery()') or die 'the standby lost its primary';
restart('standby', $standby, 'immediate', 60);

note 'the mark file removed, replaced or damaged while IDs stream';
# tamper(WHAT, CHANGE): a backend streams IDs while CHANGE does something to the primary's mark
# file, then the server stops at once and comes back with the clock 10 s behind; a newcomer must
# fail with 58000 or start after the last ID. The marks in shared memory, which the file is
# written again from, outlive the server.
my $mark_file = $primary->data_dir . '/snowlink_highwater';
my $older_marks = PostgreSQL::Test::Utils::tempdir() . '/older-marks';
copy($mark_file, $older_marks) or die $!;
sub tamper
{
	my ($what, $change) = @_;
	# Long enough after the change for the streaming backend to write a lease past it.
	stream_until_stopped($primary, 'immediate', sub { $change->(); sleep 4 }, 'slow');
	set_offset('-10');
	start_under_faketime($primary);
	come_while_behind("primary, mark file $what, 10 s back", 10_000, $primary, 'postgres');
	set_offset('+0');
	draw($primary, 'postgres');
}
tamper('removed', sub { unlink $mark_file or die $! });
tamper('replaced by an older copy', sub { copy($older_marks, "$mark_file.copy") && rename("$mark_file.copy", $mark_file) or die $! });
tamper('overwritten by an older copy', sub { copy($older_marks, $mark_file) or die $! });
tamper('overwritten with garbage', sub {
	open my $file, '+<', $mark_file or die $!;
	print $file join '', map { chr int rand 256 } 1 .. 40_000;
	close $file;
});
tamper('cut to nothing', sub { truncate $mark_file, 0 or die $! });
my @tamper_logged = PostgreSQL::Test::Utils::slurp_file($primary->logfile)
  =~ /snowflake high-water mark file .* (?:was removed|was replaced|was damaged|removed or replaced while in use)/g;
cmp_ok(scalar @tamper_logged, '>=', 4, 'what was done to the mark file is logged');

note 'a reboot: the marks in memory are gone, the leases on disk remain';
# The shared memory object that holds the marks of a data directory (src/snowflake/mod.rs names it):
# what a reboot takes away.
sub marks_segment
{
	my ($node) = @_;
	my ($system) = `pg_controldata '${\ $node->data_dir }'` =~ /^Database system identifier: +([0-9]+)$/m;
	my ($device, $inode) = (stat $node->data_dir)[ 0, 1 ];
	return sprintf '/dev/shm/snowlink.%x.%x.%x', $system, $device, $inode;
}
for my $step (1, 60)
{
	stream_until_stopped($primary, 'immediate', sub { });
	my $segment = marks_segment($primary);
	ok(-e $segment, 'the marks of the data directory are in shared memory');
	unlink $segment;
	set_offset("-$step");
	start_under_faketime($primary);
	# After a reboot a node starts after its lease, which reaches up to 3 s past its last ID.
	come_while_behind("primary, after a reboot, $step s back", $step * 1000 + 3000, $primary, 'postgres');
	set_offset('+0');
	# As a real reboot does, let the lease pass before the next IDs.
	sleep 3;
	draw($primary, 'postgres');
}

note 'a copy of the data directory';
like(PostgreSQL::Test::Utils::slurp_file($standby->logfile), qr/comes from another data directory/,
	'the standby, a copy made by pg_basebackup, says where its marks came from');

note 'every ID';
cmp_ok(scalar @ids, '>', 15 * $ids_per_turn, 'IDs drawn');
no_repeats('no ID repeats', @ids);

done_testing();
