#!/usr/bin/env bash
# Run a command with PostgreSQL and Kafka up; afterwards stop only what this script started.
#
# Why this exists: `make test` and `make up` need the infrastructure, but a developer who already ran
# `make infra-up` must find it still running afterwards. Exit status = the command's.
#
# Usage: deploy/with-infra.sh <command> [args...]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

started=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # Reverse order of start: Kafka before PostgreSQL.
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        "$ROOT/deploy/${started[i]}-down.sh" || status=1
    done
    exit "$status"
}
trap cleanup EXIT
# Bash defers a trapped signal until the foreground command returns; that command (pytest, honcho) got
# the same SIGINT from the terminal and winds down itself, then cleanup runs.
trap 'exit 130' INT
trap 'exit 143' TERM

if ! as_pg_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    started+=(postgres)
fi
"$ROOT/deploy/postgres-up.sh" || exit 1
if ! pid_alive "$KAFKA_PID"; then
    started+=(kafka)
fi
"$ROOT/deploy/kafka-up.sh" || exit 1

"$@"
