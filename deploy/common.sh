# shellcheck shell=bash
# Sourced by every deploy/*.sh script: repository paths, deploy/local.env, and small helpers.
#
# Why this exists: the Makefile, the scripts, the services and docker-compose must agree on every port
# and name, so they all read deploy/local.env. Values already in the process environment win, as they do
# for the services' pydantic settings.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# ICTC_LOCAL moves the infrastructure's state elsewhere: a second, throwaway Kafka + PostgreSQL pair for
# parallel work (with KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_BOOTSTRAP_SERVERS, PG_PORT, PG_ADMIN_URL set
# to free ports), e.g. `ICTC_LOCAL=/tmp/infra-b PG_PORT=55500 ... deploy/infra-up.sh`.
LOCAL="${ICTC_LOCAL:-$ROOT/.local}"
VENV_PY="$ROOT/.venv/bin/python"

load_local_env() {
    local line key value
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ -z "$line" || "$line" == \#* ]] && continue
        key="${line%%=*}"
        value="${line#*=}"
        if [[ -z "${!key+set}" ]]; then
            export "$key=$value"
        fi
    done <"$ROOT/deploy/local.env"
}
load_local_env

KAFKA_HOME="$LOCAL/kafka"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DATA="$KAFKA_HOME/data"
KAFKA_LOGS="$KAFKA_HOME/logs"
KAFKA_PID="$KAFKA_HOME/kafka.pid"

PG_HOME="$LOCAL/postgres"
# As root, the cluster runs as the postgres user, who must reach the data folder. A checkout under a
# private home (e.g. /root, mode 700) is out of its reach: keep the cluster in /var/tmp instead, under a
# name derived from the checkout's path so that two checkouts never share one.
if [[ -z "${ICTC_LOCAL:-}" && "$(id -u)" == 0 ]] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$ROOT"; then
    PG_HOME="/var/tmp/ictc-postgres-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
fi
PG_DATA="$PG_HOME/data"
PG_RUN="$PG_HOME/run"
PG_LOG="$PG_HOME/log"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Run as root when we are root, otherwise through sudo (apt-get and chown need it).
as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

# initdb and postgres refuse to run as root; a non-root developer runs them as themself.
as_pg_owner() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A process that exited but was not reaped yet (a zombie: possible when PID 1 of a container does not
# reap) still answers `kill -0`; count it as gone.
proc_running() {
    kill -0 "$1" 2>/dev/null || return 1
    [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]]
}
pid_alive() { [[ -f "$1" ]] && proc_running "$(cat "$1")"; }
