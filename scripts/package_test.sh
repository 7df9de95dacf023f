#!/usr/bin/env bash
# The packages as a user gets them: scripts/package.sh builds them for PostgreSQL 15, and they go
# into a clean Debian 12 (debootstrap --variant=minbase bookworm, kept as a tarball under target/
# and unpacked afresh for each run) that has no Rust, no compiler and no file of snowlink. There
# `apt-get install ./...deb` pulls the server in; a cluster started inside passes the pg_regress
# suite; a database made at 0.1.0 updates to the current version; snowlink-http, started as its
# unit says (user, environment file, command line), serves a redirect, and systemd-analyze
# accepts the unit; `dpkg --purge` leaves no file of either package behind. Needs root (chroot,
# mounts: it runs itself through sudo after the build when it is not root). Prints one line per
# check.
source "$(dirname "$0")/lib.sh"

MAJOR=$DEBIAN_PG_MAJOR
PORT=25531
HTTP_PORT=25532
MIRROR=${SNOWLINK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SNOWLINK_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
PRISTINE=$PROJECT_DIR/target/debian-12-minbase.tar
ROOT=$PROJECT_DIR/target/package_test/root
WORK=$PROJECT_DIR/target/package_test

in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
unmount_all() {
    local mount
    for mount in dev/shm dev/pts dev sys proc; do
        ! mountpoint -q "$ROOT/$mount" || umount -l "$ROOT/$mount"
    done
}
cleanup() {
    [ -z "${http_pid:-}" ] || kill "$http_pid" 2>/dev/null || true
    if [ -f "$ROOT/var/tmp/cluster/PG_VERSION" ]; then
        in_root runuser -u postgres -- /usr/lib/postgresql/$MAJOR/bin/pg_ctl \
            --pgdata=/var/tmp/cluster stop --mode=immediate >/dev/null 2>&1 || true
    fi
    [ ! -d "$ROOT" ] || unmount_all
}
trap cleanup EXIT

ensure_debian_packages debootstrap lintian
if [ -z "${SNOWLINK_PACKAGES_BUILT:-}" ]; then
    say "building the packages for PostgreSQL $MAJOR"
    "$PROJECT_DIR/scripts/package.sh" "$MAJOR"
fi
# The rest needs root (chroot and mounts); the build stays its user's.
[ "$(id -u)" -eq 0 ] || exec sudo env "PATH=$PATH" SNOWLINK_PACKAGES_BUILT=1 "$0" "$@"
mkdir -p "$WORK"
VERSION=$(sed -nE 's/^version = "([^"]+)"$/\1/p' "$PROJECT_DIR/Cargo.toml" | head -1)
extension_deb=$PROJECT_DIR/target/packages/postgresql-$MAJOR-snowlink_$VERSION-1_$(dpkg --print-architecture).deb
http_deb=$PROJECT_DIR/target/packages/snowlink-http_$VERSION-1_$(dpkg --print-architecture).deb

if [ ! -f "$PRISTINE" ]; then
    say "making a clean Debian 12 (debootstrap, once)"
    rm -rf "$WORK/debootstrap"
    debootstrap --variant=minbase bookworm "$WORK/debootstrap" "$MIRROR" >"$WORK.debootstrap.log"
    tar -C "$WORK/debootstrap" -cf "$PRISTINE.partial" .
    mv "$PRISTINE.partial" "$PRISTINE"
    rm -rf "$WORK/debootstrap"
fi
[ ! -d "$ROOT" ] || unmount_all
# Never into a mount that is still attached.
rm -rf --one-file-system "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$PRISTINE"
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
# As in a container: no service starts when its package is installed.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount --bind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
# A /dev/shm of its own, as a booted system has (the snowflake marks live there).
mount -t tmpfs -o mode=1777,size=64m tmpfs "$ROOT/dev/shm"

echo "# the clean system"
check_equal "no Rust, no compiler, no PostgreSQL server, no file of snowlink" \
    "$(in_root sh -c 'command -v rustc cargo gcc cc clang pg_ctlcluster; find / -xdev -name "*snowlink*" | head -1')" ""

echo "# installing"
mkdir -p "$ROOT/tmp/packages"
cp "$extension_deb" "$http_deb" "$ROOT/tmp/packages/"
in_root apt-get update -qq >"$WORK.apt.log" 2>&1
# A Debian 12 server has systemd, which the unit is checked against; minbase leaves it out.
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >>"$WORK.apt.log" 2>&1
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    "/tmp/packages/$(basename "$extension_deb")" "/tmp/packages/$(basename "$http_deb")" >>"$WORK.apt.log" 2>&1 ||
    { tail -20 "$WORK.apt.log"; exit 1; }
check_equal "apt-get install of the two packages pulls in PostgreSQL $MAJOR" \
    "$(in_root dpkg-query -W -f='${Status}\n' "postgresql-$MAJOR" "postgresql-$MAJOR-snowlink" snowlink-http | sort -u)" \
    "install ok installed"
in_root dpkg -L "postgresql-$MAJOR-snowlink" snowlink-http | sort -u >"$WORK/package-files"
expected_files=(/usr/lib/postgresql/$MAJOR/lib/snowlink.so /usr/share/postgresql/$MAJOR/extension/snowlink.control)
for version in $(released_versions) "$VERSION"; do
    expected_files+=("/usr/share/postgresql/$MAJOR/extension/snowlink--$version.sql")
done
check_equal "the library, and the install script of every release and of $VERSION, in PostgreSQL's places" \
    "$(printf '%s\n' "${expected_files[@]}" | grep -c -x -F -f "$WORK/package-files")" "${#expected_files[@]}"
check_equal "lintian finds no error in either package" \
    "$(lintian --tag-display-limit 0 "$extension_deb" "$http_deb" 2>&1 | grep -c '^E:')" 0

echo "# the extension in a cluster of the installed server"
in_root install -d -o postgres -g postgres /var/tmp/cluster /var/tmp/socket
in_root runuser -u postgres -- /usr/lib/postgresql/$MAJOR/bin/initdb --pgdata=/var/tmp/cluster \
    --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$WORK.initdb.log"
in_root runuser -u postgres -- /usr/lib/postgresql/$MAJOR/bin/pg_ctl --pgdata=/var/tmp/cluster \
    --log=/var/tmp/cluster.log --wait start \
    --options="-c port=$PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=/var/tmp/socket -c max_prepared_transactions=2 -c snowlink.visit_write_mode=transaction" \
    >/dev/null
# Over the cluster's socket, as the suite expects (snowflake_nodes reads the client's address).
export PGHOST=$ROOT/var/tmp/socket PGPORT=$PORT PGUSER=postgres
results=$WORK/pg_regress
# The suite of the source tree, run by this machine's pg_regress against the installed server.
"$($PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress" --bindir="$PG_BIN" \
    --host="$PGHOST" --port="$PORT" --user=postgres --inputdir="$PROJECT_DIR/pg_test" \
    --outputdir="$results" --dbname=snowlink_package --load-extension=snowlink \
    $(cd "$PROJECT_DIR/pg_test/sql" && ls ./*.sql | sed 's|^\./||; s|\.sql$||') >"$WORK.pg_regress.log" 2>&1 || true
passed=$(grep -cE '^(# )? *All [0-9]+ tests passed' "$WORK.pg_regress.log" || true)
check_equal "the pg_regress suite passes against the installed package" "$passed" 1
[ "$passed" = 1 ] || head -50 "$results/regression.diffs" 2>/dev/null
psql -X -q -At -v ON_ERROR_STOP=1 -d postgres >/dev/null <<'SQL'
CREATE DATABASE made_at_010;
SQL
check_equal "a database made at 0.1.0 updates to $VERSION" \
    "$(psql -X -q -At -d made_at_010 -c "CREATE EXTENSION snowlink VERSION '0.1.0'" \
        -c "SELECT shorten('https://example.com/kept', code => 'kept')" -c 'ALTER EXTENSION snowlink UPDATE' \
        -c "SELECT extversion FROM pg_extension WHERE extname = 'snowlink'" -c "SELECT resolve('kept')" | tail -2 | paste -sd' ')" \
    "$VERSION https://example.com/kept"

echo "# snowlink-http as its unit runs it"
unit=$ROOT/lib/systemd/system/snowlink-http.service
# Against the clean system's own systemd; man pages are lintian's to check.
check_equal "systemd-analyze accepts the unit" \
    "$(systemd-analyze verify --man=no --root="$ROOT" /lib/systemd/system/snowlink-http.service 2>&1; echo "exit $?")" "exit 0"
check_equal "its hardening: systemd-analyze rates its exposure OK or better" \
    "$(systemd-analyze security --offline=yes --root="$ROOT" snowlink-http.service 2>&1 |
        grep -cE '^→ Overall exposure level for snowlink-http.service: [0-9.]+ (SAFE|OK) ')" 1
psql -X -q -At -d postgres -c "CREATE EXTENSION snowlink; CREATE ROLE redirects LOGIN;
    SELECT shorten('https://example.com/packaged', code => 'packaged')" >/dev/null
env_file=$(sed -nE 's/^EnvironmentFile=//p' "$unit")
user=$(sed -nE 's/^User=//p' "$unit")
command=$(sed -nE 's/^ExecStart=//p' "$unit")
check_equal "the settings file is the service's and root's only" \
    "$(in_root stat -c '%a %U %G' "$env_file")" "640 root $user"
cat >>"$ROOT$env_file" <<EOF
DATABASE_URL=host=/var/tmp/socket port=$PORT dbname=postgres user=redirects
LISTEN=127.0.0.1:$HTTP_PORT
EOF
# EnvironmentFile and User as systemd reads them.
mapfile -t settings < <(grep -E '^[A-Z_]+=' "$ROOT$env_file")
chroot --userspec="$user:$user" "$ROOT" env -i "${settings[@]}" $command 2>"$WORK.http.log" &
http_pid=$!
for tries in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/healthz" && break
    sleep 0.1
done
check_equal "it serves a redirect" \
    "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HTTP_PORT/packaged")" \
    "302 https://example.com/packaged"
check_equal "--help lists every setting" \
    "$(in_root snowlink-http --help | grep -cE '^  [A-Z_]+( |$)')" 11
kill "$http_pid"
wait "$http_pid" || true
http_pid=

echo "# removing"
in_root runuser -u postgres -- /usr/lib/postgresql/$MAJOR/bin/pg_ctl --pgdata=/var/tmp/cluster stop >/dev/null
in_root dpkg --purge "postgresql-$MAJOR-snowlink" snowlink-http >>"$WORK.apt.log" 2>&1
# Directories such as /usr/bin are shared with other packages and stay.
left=$(while read -r path; do
    if [ ! -d "$ROOT$path" ] && { [ -e "$ROOT$path" ] || [ -L "$ROOT$path" ]; }; then echo "$path"; fi
done <"$WORK/package-files")
check_equal "dpkg --purge leaves no file of either package behind" "$left" ""
check_equal "... nor their settings directory" "$([ -e "$ROOT/etc/snowlink-http" ] && echo left)" ""

checks_summary "packages"
