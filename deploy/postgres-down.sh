#!/usr/bin/env bash
# Stop the project's PostgreSQL cluster (fast shutdown: clients disconnected, data kept).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ ! -s "$PG_DATA/PG_VERSION" ]] || ! as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "cluster not running"
    exit 0
fi
as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
say "cluster stopped"
