#!/usr/bin/env bash
# No snowflake ID repeats whatever the clock does. A primary and its hot standby run under
# libfaketime, whose offset this script steps back by 1 s, 1 min and 1 h, with one node each, so
# that every backend takes its node over from the one before: backends take turns, in two
# databases, across fast and immediate restarts, and while the clock is behind. A backend that
# comes while the clock is behind its node's last use must fail with 58000 (or wait, within
# snowlink.max_clock_backward_ms); so must one after the mark file was removed, replaced, overwritten
# or cut short while IDs streamed, and one after a reboot (the marks in shared memory gone); every
# ID drawn, including those a crash cut short, must be unique. Prints one line per check.
source "$(dirname "$0")/lib.sh"

PRIMARY_PORT=25471
STANDBY_PORT=25472
IDS_PER_TURN=20000
WORK=$(reachable_dir cluster)/clock
IDS=$WORK/ids

dpkg-query -W -f='${Status}' libfaketime 2>/dev/null | grep -q 'ok installed' ||
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
cleanup() {
    cluster_remove clock-standby
    cluster_remove clock-primary
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$WORK"
[ "$(id -u)" -ne 0 ] || chown postgres: "$WORK"

# The servers' clock: real time plus the offset in this file, read at every clock reading.
OFFSET_FILE=$WORK/offset
set_offset() { echo "$1" >"$OFFSET_FILE"; }
set_offset +0
chmod a+r "$OFFSET_FILE"
CLUSTER_ENV=(LD_PRELOAD="$(dpkg -L libfaketime | grep '/libfaketime.so.1$')"
    FAKETIME_TIMESTAMP_FILE="$OFFSET_FILE" FAKETIME_NO_CACHE=1)

# Both servers have one node, so every backend takes it over from the one before.
PRIMARY=(clock-primary "$PRIMARY_PORT" snowlink.node_min=7 snowlink.node_max=7)
STANDBY=(clock-standby "$STANDBY_PORT" snowlink.node_min=8 snowlink.node_max=8)
socket() { printf '%s' "$(cluster_root)/$1/socket"; }
on() { # on SERVER DATABASE psql-arguments...
    local server=$1 port=$2 database=$3
    shift 3
    psql -X -q -At -h "$(socket "$server")" -p "$port" -d "$database" "$@"
}

cluster_start "${PRIMARY[@]}" >/dev/null
on clock-primary "$PRIMARY_PORT" postgres -c 'CREATE EXTENSION snowlink' -c 'CREATE DATABASE other'
# An ID before the base backup, so that the standby starts with a copy of the primary's mark file.
on clock-primary "$PRIMARY_PORT" postgres -c 'SELECT snowflake_next()' >/dev/null
on clock-primary "$PRIMARY_PORT" other -c 'CREATE EXTENSION snowlink'
standby_dir=$(cluster_root)/clock-standby
mkdir -p "$standby_dir"
[ "$(id -u)" -ne 0 ] || chown postgres: "$standby_dir"
as_pg_owner "$PG_BIN/pg_basebackup" --host="$(socket clock-primary)" --port="$PRIMARY_PORT" \
    --username=postgres --pgdata="$standby_dir/data" --write-recovery-conf --checkpoint=fast
as_pg_owner mkdir -p "$standby_dir/socket"
cluster_start "${STANDBY[@]}" >/dev/null
until [ "$(on clock-standby "$STANDBY_PORT" postgres -c 'SELECT pg_is_in_recovery()')" = t ]; do sleep 0.1; done

# wait_until_free SERVER PORT: until no backend holds the server's node (a closed connection's
# backend exits a moment after).
wait_until_free() {
    until [ "$(on "$1" "$2" postgres -c 'SELECT count(*) FROM snowflake_nodes')" = 0 ]; do sleep 0.01; done
}

# The last ID drawn on each server, whose one node every backend there takes over.
declare -A last_id

# draw SERVER PORT DATABASE: a new backend draws IDS_PER_TURN IDs, then one a millisecond for
# over a second, so that a newcomer whose clock is 1 s behind would meet its milliseconds. The
# IDs go into the IDS file.
draw() {
    wait_until_free "$1" "$2"
    on "$1" "$2" "$3" -c "COPY (SELECT snowflake_next() FROM generate_series(1, $IDS_PER_TURN)
                                UNION ALL
                                SELECT snowflake_next() FROM generate_series(1, 1200) AS g
                                CROSS JOIN LATERAL pg_sleep(0.001 + 0 * g) AS pause) TO STDOUT" >"$WORK/drawn"
    cat "$WORK/drawn" >>"$IDS"
    last_id[$1]=$(tail -1 "$WORK/drawn")
}

# come_while_behind WHAT STEP_MS SERVER PORT DATABASE: a new backend draws IDs as draw() does
# while the clock is STEP_MS behind where it was. It must fail with 58000 and the size of the
# step at most or, should the clock have caught up meanwhile, start after the server's last ID.
come_while_behind() {
    local what=$1 step_ms=$2 server=$3
    shift 2
    wait_until_free "$1" "$2"
    local output behind
    output=$(on "$@" -v VERBOSITY=verbose -c "COPY (SELECT snowflake_next() FROM generate_series(1, 1200) AS g
                                                    CROSS JOIN LATERAL pg_sleep(0.001 + 0 * g) AS pause) TO STDOUT" 2>&1) || true
    if ! grep -qv '^[0-9]\+$' <<<"$output"; then
        echo "$output" >>"$IDS"
        check_equal "$what: the clock had caught up, and IDs start after the last" \
            "$(($(head -1 <<<"$output") > ${last_id[$server]}))" 1
        return
    fi
    behind=$(sed -nE 's/^ERROR:  58000: the system clock moved backwards by ([0-9]+) ms$/\1/p' <<<"$output")
    if [ -n "$behind" ] && [ "$behind" -le "$step_ms" ]; then
        check_equal "$what: 58000 while the clock is behind" ok ok
    else
        check_equal "$what: 58000 while the clock is behind" "$(head -3 <<<"$output")" "58000, at most $step_ms ms"
    fi
}

# turns WHAT SERVER PORT DATABASE OTHER_DATABASE: backends take turns on the node, the clock
# stepping back by 1 s, 1 min and 1 h before each newcomer, then catching up.
turns() {
    local what=$1 server=$2 port=$3 database=$4 other_database=$5 step
    for step in 1 60 3600; do
        draw "$server" "$port" "$database"
        set_offset "-$step"
        check_equal "$what, ${step} s back: snowflake_node_status shows a node refusing IDs, ahead by up to the step" \
            "$(on "$server" "$port" "$database" -c "SELECT nodes_refusing >= 1, furthest_ahead_ms BETWEEN 1 AND $((step * 1000 + 1000)) FROM snowflake_node_status")" \
            "t|t"
        come_while_behind "$what, ${step} s back" "$((step * 1000))" "$server" "$port" "$other_database"
        set_offset +0
        draw "$server" "$port" "$other_database"
        check_equal "$what, the clock caught up: no node refuses IDs" \
            "$(on "$server" "$port" "$database" -c "SELECT nodes_refusing, claimed <= nodes FROM snowflake_node_status")" \
            "0|t"
    done
}

echo "## takeovers"
turns "primary" clock-primary "$PRIMARY_PORT" postgres postgres
turns "primary, two databases" clock-primary "$PRIMARY_PORT" postgres other
turns "standby" clock-standby "$STANDBY_PORT" postgres postgres

echo "## within snowlink.max_clock_backward_ms the newcomer waits"
draw clock-primary "$PRIMARY_PORT" postgres
set_offset -1
wait_until_free clock-primary "$PRIMARY_PORT"
PGOPTIONS='-c snowlink.max_clock_backward_ms=5000' on clock-primary "$PRIMARY_PORT" postgres \
    -c "COPY (SELECT snowflake_next() FROM generate_series(1, $IDS_PER_TURN)) TO STDOUT" >"$WORK/drawn"
cat "$WORK/drawn" >>"$IDS"
check_equal "a newcomer 1 s behind with a tolerance of 5 s gets its IDs, after the last" \
    "$(wc -l <"$WORK/drawn") $(($(head -1 "$WORK/drawn") > ${last_id[clock-primary]}))" "$IDS_PER_TURN 1"
set_offset +0

echo "## restarts"
# restart WHAT SERVER PORT MODE STEP: stops the server (MODE fast or immediate) while a backend
# streams IDs out, steps the clock back by STEP seconds, starts it again.
restart() {
    local what=$1 server=$2 port=$3 mode=$4 step=$5
    wait_until_free "$server" "$port"
    on "$server" "$port" postgres -c "COPY (SELECT snowflake_next() FROM generate_series(1, 100000000)) TO STDOUT" \
        >"$WORK/cut-short" 2>/dev/null &
    local streaming=$!
    until [ "$(wc -l <"$WORK/cut-short")" -gt 10000 ]; do sleep 0.05; done
    as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/$server/data" stop --mode="$mode" >/dev/null
    wait "$streaming" || true
    # The IDs it sent before the stop, without a line the stop cut in two.
    sed '$d' "$WORK/cut-short" >"$WORK/drawn"
    cat "$WORK/drawn" >>"$IDS"
    last_id[$server]=$(tail -1 "$WORK/drawn")
    set_offset "-$step"
    if [ "$server" = clock-primary ]; then cluster_start "${PRIMARY[@]}" >/dev/null; else cluster_start "${STANDBY[@]}" >/dev/null; fi
    come_while_behind "$what, $mode stop, ${step} s back" "$((step * 1000))" "$server" "$port" postgres
    set_offset +0
    draw "$server" "$port" postgres
}
restart "primary" clock-primary "$PRIMARY_PORT" fast 60
restart "primary" clock-primary "$PRIMARY_PORT" immediate 3600
until [ "$(on clock-standby "$STANDBY_PORT" postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]; do sleep 0.1; done
restart "standby" clock-standby "$STANDBY_PORT" immediate 60

echo "## the mark file removed, replaced or damaged while IDs stream"
# tamper WHAT COMMAND...: a backend streams IDs while COMMAND does something to the primary's mark
# file, then the server stops at once and comes back with the clock 10 s behind; a newcomer must
# fail with 58000 or start after the last ID. The marks in shared memory, which the file is
# written again from, outlive the server.
MARK_FILE=$(cluster_root)/clock-primary/data/snowlink_highwater
cp "$MARK_FILE" "$WORK/older-marks"
tamper() {
    local what=$1
    shift
    wait_until_free clock-primary "$PRIMARY_PORT"
    # Fast, then one ID a millisecond, so that the stream goes on past the change.
    on clock-primary "$PRIMARY_PORT" postgres -c "COPY (SELECT snowflake_next() FROM generate_series(1, 20000)
                                                        UNION ALL
                                                        SELECT snowflake_next() FROM generate_series(1, 100000) AS g
                                                        CROSS JOIN LATERAL pg_sleep(0.001 + 0 * g) AS pause) TO STDOUT" \
        >"$WORK/cut-short" 2>/dev/null &
    local streaming=$!
    until [ "$(wc -l <"$WORK/cut-short")" -gt 10000 ]; do sleep 0.05; done
    "$@"
    # Long enough for the streaming backend to write a lease past it.
    sleep 4
    as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/clock-primary/data" stop --mode=immediate >/dev/null
    wait "$streaming" || true
    sed '$d' "$WORK/cut-short" >"$WORK/drawn"
    cat "$WORK/drawn" >>"$IDS"
    last_id[clock-primary]=$(tail -1 "$WORK/drawn")
    set_offset -10
    cluster_start "${PRIMARY[@]}" >/dev/null
    come_while_behind "primary, mark file $what, 10 s back" 10000 clock-primary "$PRIMARY_PORT" postgres
    set_offset +0
    draw clock-primary "$PRIMARY_PORT" postgres
}
remove() { rm -f "$MARK_FILE"; }
replace_with_an_older_copy() {
    cp "$WORK/older-marks" "$MARK_FILE.copy"
    chown --reference="$MARK_FILE" "$MARK_FILE.copy"
    chmod --reference="$MARK_FILE" "$MARK_FILE.copy"
    mv "$MARK_FILE.copy" "$MARK_FILE"
}
copy_an_older_one_over_it() { cp "$WORK/older-marks" "$MARK_FILE"; }
write_garbage_over_it() { head -c 40000 /dev/urandom | dd of="$MARK_FILE" conv=notrunc status=none; }
cut_it_short() { : >"$MARK_FILE"; }
tamper "removed" remove
tamper "replaced by an older copy" replace_with_an_older_copy
tamper "overwritten by an older copy" copy_an_older_one_over_it
tamper "overwritten with garbage" write_garbage_over_it
tamper "cut to nothing" cut_it_short
check_equal "what was done to the mark file is logged" \
    "$(grep -cE 'snowflake high-water mark file .* (was removed|was replaced|was damaged|removed or replaced while in use)' \
        "$(cluster_root)/clock-primary/server.log" | awk '$1 >= 4 { print "yes" }')" yes

echo "## a reboot: the marks in memory are gone, the leases on disk remain"
# What a reboot does to the marks: the shared memory object of the data directory goes.
for step in 1 60; do
    wait_until_free clock-primary "$PRIMARY_PORT"
    on clock-primary "$PRIMARY_PORT" postgres -c "COPY (SELECT snowflake_next() FROM generate_series(1, 100000000)) TO STDOUT" \
        >"$WORK/cut-short" 2>/dev/null &
    streaming=$!
    until [ "$(wc -l <"$WORK/cut-short")" -gt 10000 ]; do sleep 0.05; done
    as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$(cluster_root)/clock-primary/data" stop --mode=immediate >/dev/null
    wait "$streaming" || true
    sed '$d' "$WORK/cut-short" >"$WORK/drawn"
    cat "$WORK/drawn" >>"$IDS"
    last_id[clock-primary]=$(tail -1 "$WORK/drawn")
    segment=$(marks_segment "$(cluster_root)/clock-primary/data")
    check_equal "the marks of the data directory are in shared memory" "$([ -e "$segment" ] && echo yes)" yes
    rm -f "$segment"
    set_offset "-$step"
    cluster_start "${PRIMARY[@]}" >/dev/null
    # After a reboot a node starts after its lease, which reaches up to 3 s past its last ID.
    come_while_behind "primary, after a reboot, ${step} s back" "$((step * 1000 + 3000))" clock-primary "$PRIMARY_PORT" postgres
    set_offset +0
    # As a real reboot does, let the lease pass before the next IDs.
    sleep 3
    draw clock-primary "$PRIMARY_PORT" postgres
done

echo "## a copy of the data directory"
check_equal "the standby, a copy made by pg_basebackup, says where its marks came from" \
    "$(grep -c 'comes from another data directory' "$(cluster_root)/clock-standby/server.log" | awk '$1 > 0 { print "yes" }')" yes

echo "## every ID"
check_equal "IDs drawn" "$(($(wc -l <"$IDS") > 15 * IDS_PER_TURN))" 1
check_equal "no ID repeats" "$(sort "$IDS" | uniq -d | wc -l)" 0
checks_summary "clock steps"
