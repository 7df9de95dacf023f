# Shared by the scripts in this folder: tool installation and scratch PostgreSQL clusters.
# Source it; it sets `set -euo pipefail`.
set -euo pipefail

PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
PGRX_VERSION=0.18.1
APT_PACKAGES=(postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libclang-dev sudo)
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

# Installs what is missing, and nothing else: quick when everything is present.
ensure_tools() {
    local missing=() package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$package")
    done
    if ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi

    if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
        say "installing cargo-pgrx $PGRX_VERSION (about 4 minutes)"
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
    fi

    local pgrx_home=${PGRX_HOME:-$HOME/.pgrx}
    if ! grep -qs "pg$PG_MAJOR = \"$PG_CONFIG\"" "$pgrx_home/config.toml"; then
        say "registering PostgreSQL $PG_MAJOR with pgrx"
        cargo pgrx init --pg$PG_MAJOR "$PG_CONFIG"
    fi
}

# Builds and installs the extension into PostgreSQL's own directories.
# Arguments go to `cargo pgrx install` (for example --release).
install_extension() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(--sudo)
    (cd "$PROJECT_DIR" && cargo pgrx install "${sudo[@]}" --pg-config "$PG_CONFIG" "$@")
}

# Where scratch clusters live: .cluster/ in the project. When the server's user cannot reach the
# project (a checkout under /root, say), .cluster links to a folder it can reach.
cluster_root() {
    local root=$PROJECT_DIR/.cluster
    if [ "$(id -u)" -eq 0 ] && [ ! -L "$root" ] && ! runuser -u postgres -- test -x "$PROJECT_DIR"; then
        local outside
        outside=/var/tmp/snowlink-$(printf '%s' "$PROJECT_DIR" | md5sum | cut -c1-12)
        mkdir -p "$outside"
        rm -rf "$root"
        ln -s "$outside" "$root"
    fi
    mkdir -p "$root/"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$root/"
    # The real path: the server's user cannot follow a link that starts under /root.
    readlink -f "$root"
}

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
    as_pg_owner env -u RUST_BACKTRACE "$PG_BIN/pg_ctl" --pgdata="$data" --log="$dir/server.log" \
        --options="$options" --wait start >/dev/null
    export PGHOST=$socket PGPORT=$port PGUSER=postgres
}

# cluster_remove NAME: stops the scratch cluster NAME and deletes its data.
cluster_remove() {
    local dir
    dir=$(cluster_root)/$1
    if [ -f "$dir/data/PG_VERSION" ]; then
        as_pg_owner "$PG_BIN/pg_ctl" --pgdata="$dir/data" stop --mode=fast >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}
