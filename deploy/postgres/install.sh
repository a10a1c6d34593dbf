#!/usr/bin/env bash
# Install PostgreSQL 15 from Debian's packages when its binaries are missing (fresh CI machines).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

if [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]]; then
    exit 0
fi
command -v apt-get >/dev/null || die "PostgreSQL 15 is missing at $PG_BIN and there is no apt-get: install it, or set PG_BIN"
say "installing postgresql-15 from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
[[ -x "$PG_BIN/initdb" ]] || die "postgresql-15 installed but $PG_BIN/initdb is missing"
