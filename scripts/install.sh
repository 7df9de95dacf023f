#!/usr/bin/env bash
# Builds snowlink in release mode and installs it into this machine's PostgreSQL MAJOR: the
# library, the control file, the install script of the current version and of every released
# one, and the update scripts. Then CREATE EXTENSION snowlink makes the current version, and
# ALTER EXTENSION snowlink UPDATE brings a database made with an older one up to it.
# Usage: scripts/install.sh [MAJOR]   (default 15, Debian's; 16 to 18 are those in .pg/MAJOR)
source "$(dirname "$0")/lib.sh"

use_postgres "${1:-$DEBIAN_PG_MAJOR}"
ensure_tools
say "building and installing snowlink (release) into PostgreSQL $PG_MAJOR"
install_extension --release
ls "$("$PG_CONFIG" --sharedir)/extension"/snowlink* "$("$PG_CONFIG" --pkglibdir)"/snowlink.so
