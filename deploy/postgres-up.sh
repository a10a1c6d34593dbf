#!/usr/bin/env bash
# Start the project's own PostgreSQL 15 cluster (initdb on first use) and create the service databases.
#
# The cluster lives in .local/postgres (data, socket dir, log), listens on 127.0.0.1:$PG_PORT only and
# trusts local connections: a developer and test database, never a production set-up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$ROOT/deploy/postgres/install.sh"
# Again: on a fresh machine the postgres user exists only now, and PG_HOME depends on it.
source "$ROOT/deploy/common.sh"

mkdir -p "$PG_HOME" "$PG_RUN" "$PG_LOG"
if [[ "$(id -u)" == 0 ]]; then
    # initdb and postgres refuse to run as root; the cluster's folders belong to the postgres user.
    chown -R postgres:postgres "$PG_HOME"
fi

if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
    say "initdb $PG_DATA"
    rm -rf "$PG_DATA"
    as_pg_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$PG_LOG/initdb.log" 2>&1 || { cat "$PG_LOG/initdb.log" >&2; die "initdb failed"; }
fi

if as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "cluster already running"
else
    if "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT"; then
        die "a PostgreSQL that is not ours already listens on $PG_HOST:$PG_PORT; stop it or change deploy/local.env"
    fi
    say "starting cluster on $PG_HOST:$PG_PORT"
    # setsid: own session, so a Ctrl-C meant for `make up` does not reach the postmaster directly; our
    # stop script shuts it down (fast mode) after the services have gone.
    as_pg_owner setsid "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG/postgres.log" -w -t 60 \
        -o "-c listen_addresses=$PG_HOST -p $PG_PORT -k $PG_RUN" start >/dev/null ||
        { tail -n 30 "$PG_LOG/postgres.log" >&2; die "PostgreSQL did not start"; }
fi

deadline=$((SECONDS + 30))
until "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT"; do
    ((SECONDS < deadline)) || die "PostgreSQL does not accept connections on $PG_HOST:$PG_PORT"
    sleep 0.2
done
PATH="$PG_BIN:$PATH" "$ROOT/deploy/postgres/init-databases.sh" >/dev/null
say "cluster ready; databases: $DATABASES"
