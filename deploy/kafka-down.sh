#!/usr/bin/env bash
# Stop the local broker: SIGTERM (controlled shutdown, data flushed), SIGKILL after 30 s. Data is kept.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

if ! pid_alive "$KAFKA_PID"; then
    rm -f "$KAFKA_PID"
    say "broker not running"
    exit 0
fi
pid="$(cat "$KAFKA_PID")"
say "stopping broker (pid $pid)"
kill -TERM "$pid"
deadline=$((SECONDS + STOP_TIMEOUT))
while proc_running "$pid"; do
    if ((SECONDS >= deadline)); then
        say "broker still alive after ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        break
    fi
    sleep 0.2
done
# The pid is the JVM itself (setsid execs it), so once it is gone nothing of the broker remains.
while proc_running "$pid"; do sleep 0.1; done
rm -f "$KAFKA_PID"
say "broker stopped"
