#!/usr/bin/env bash
# Builds the packages of this version into target/packages/, without root:
#   postgresql-MAJOR-snowlink_VERSION-1_amd64.deb   the extension for PostgreSQL MAJOR, laid out as
#                                                    Debian's and the PostgreSQL project's packages
#   snowlink-VERSION-pgMAJOR-linux-amd64.tar.gz      the same files, for other systems
#   snowlink-http_VERSION-1_amd64.deb               snowlink-http with its systemd unit
# Stripped release builds (cargo pgrx package for the extension). Prints the packages with their
# sizes, and lintian's verdict when lintian is installed.
# Usage: scripts/package.sh [MAJOR... | all]   (default 15; all: 15 16 17 18)
source "$(dirname "$0")/lib.sh"

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=("$DEBIAN_PG_MAJOR")
[ "${majors[*]}" != all ] || majors=("${SUPPORTED_PG_MAJORS[@]}")
cd "$PROJECT_DIR"

VERSION=$(sed -nE 's/^version = "([^"]+)"$/\1/p' Cargo.toml | head -1)
REVISION=1
ARCH=$(dpkg --print-architecture)
OUT=$PROJECT_DIR/target/packages
BUILD=$OUT/build
# Whoever builds packages of their own names themself here.
MAINTAINER=${SNOWLINK_PACKAGE_MAINTAINER:-snowlink maintainers <maintainers@users.noreply.r-seed-ab16ce86.example>}
rm -rf "$BUILD"
mkdir -p "$OUT" "$BUILD"

# doc_files STAGE PACKAGE: the copyright and Debian changelog every package carries.
doc_files() {
    local doc=$1/usr/share/doc/$2
    mkdir -p "$doc"
    install -m 644 "$PROJECT_DIR/packaging/copyright" "$doc/copyright"
    printf '%s (%s-%s) unstable; urgency=medium\n\n  * snowlink %s: see CHANGELOG.md of the source.\n\n -- %s  %s\n' \
        "$2" "$VERSION" "$REVISION" "$VERSION" "$MAINTAINER" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
        gzip -9n >"$doc/changelog.Debian.gz"
}

# depends_of FILE...: the shared libraries that the ELF files need, as Debian dependencies.
depends_of() {
    local scratch
    scratch=$(mktemp -d)
    mkdir -p "$scratch/debian"
    printf 'Source: snowlink\n\nPackage: scratch\nArchitecture: any\n' >"$scratch/debian/control"
    (cd "$scratch" && dpkg-shlibdeps -O -e"$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
    rm -rf "$scratch"
}

# build_deb STAGE NAME DEPENDS DESCRIPTION: DEBIAN/control and md5sums, then the .deb.
build_deb() {
    local stage=$1 name=$2 depends=$3 description=$4 size
    mkdir -p "$stage/DEBIAN"
    size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
    cat >"$stage/DEBIAN/control" <<EOF
Package: $name
Version: $VERSION-$REVISION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $depends
Section: database
Priority: optional
Description: $description
EOF
    (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
        xargs md5sum >DEBIAN/md5sums)
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$OUT/${name}_$VERSION-${REVISION}_$ARCH.deb" >/dev/null
}

for major in "${majors[@]}"; do
    use_postgres "$major"
    ensure_tools >/dev/null
    say "PostgreSQL $major: the extension (release build)"
    cargo pgrx package --pg-config "$PG_CONFIG" --no-default-features --features "pg$major" \
        --out-dir "$BUILD/pgrx-$major" >/dev/null
    # cargo pgrx package lays the files out under this pg_config's paths; the packages use those
    # of Debian and the PostgreSQL project for every major.
    name=postgresql-$major-snowlink
    stage=$BUILD/$name
    lib=$stage/usr/lib/postgresql/$major/lib
    share=$stage/usr/share/postgresql/$major/extension
    mkdir -p "$lib" "$share"
    install -m 644 "$(find "$BUILD/pgrx-$major" -name snowlink.so)" "$lib/snowlink.so"
    strip --strip-unneeded "$lib/snowlink.so"
    install -m 644 "$(find "$BUILD/pgrx-$major" -name snowlink.control)" "$share/"
    install -m 644 $(find "$BUILD/pgrx-$major" -name 'snowlink--*.sql') "$share/"
    # The install scripts of released versions too, for CREATE EXTENSION ... VERSION.
    for version in $(released_versions); do
        install -m 644 "sql/snowlink--$version.sql" "$share/"
    done
    doc_files "$stage" "$name"
    build_deb "$stage" "$name" "postgresql-$major, $(depends_of "$lib/snowlink.so")" \
        "Snowflake IDs, base62 codes and URL short links for PostgreSQL $major
 snowlink gives PostgreSQL unique, time-ordered 64-bit IDs (snowflake_next()),
 base62 codes, and short links with visit counting, from SQL alone:
 CREATE EXTENSION snowlink."
    tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$OUT/snowlink-$VERSION-pg$major-linux-$ARCH.tar.gz" usr
done

say "snowlink-http (release build)"
cargo build --release --quiet -p snowlink-http
name=snowlink-http
stage=$BUILD/$name
install -D -m 755 target/release/snowlink-http "$stage/usr/bin/snowlink-http"
strip --strip-unneeded "$stage/usr/bin/snowlink-http"
install -D -m 644 packaging/snowlink-http.service "$stage/lib/systemd/system/snowlink-http.service"
install -D -m 644 packaging/snowlink-http.env "$stage/etc/snowlink-http/snowlink-http.env"
mkdir -p "$stage/usr/share/man/man1"
gzip -9n <packaging/snowlink-http.1 >"$stage/usr/share/man/man1/snowlink-http.1.gz"
doc_files "$stage" "$name"
mkdir -p "$stage/DEBIAN"
echo /etc/snowlink-http/snowlink-http.env >"$stage/DEBIAN/conffiles"
install -m 755 packaging/snowlink-http.postinst "$stage/DEBIAN/postinst"
install -m 755 packaging/snowlink-http.postrm "$stage/DEBIAN/postrm"
build_deb "$stage" "$name" "adduser, $(depends_of "$stage/usr/bin/snowlink-http")" \
    "HTTP server for the short links of snowlink
 Redirects the short links of a PostgreSQL database with the snowlink
 extension, hands out snowflake IDs and makes links, as a systemd service
 (snowlink-http.service, set up in /etc/snowlink-http/snowlink-http.env)."

say "packages"
cd "$OUT"
ls -l --block-size=K -- *.deb *.tar.gz | awk '{ print $5 "\t" $9 }'
if command -v lintian >/dev/null; then
    say "lintian"
    lintian --tag-display-limit 0 -- *.deb || true
fi
