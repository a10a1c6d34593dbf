#!/usr/bin/env bash
# Start the local single-node KRaft broker (if not running), wait until it serves, create the topics.
#
# Data lives in .local/kafka/data and survives restarts; the cluster id is made once and kept there.
# Readiness is functional (deploy/kafka/admin.py probe); if the JVM dies, the log tail is printed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"

"$ROOT/deploy/kafka/fetch.sh"
[[ -x "$VENV_PY" ]] || die "no project venv at $ROOT/.venv: run 'make install' first"

print_log_tail() {
    for f in "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/stdout.log"; do
        [[ -s "$f" ]] && { say "--- tail of $f ---"; tail -n 40 "$f" >&2; }
    done
    return 0
}

if pid_alive "$KAFKA_PID"; then
    say "broker already running (pid $(cat "$KAFKA_PID"))"
else
    rm -f "$KAFKA_PID"
    if "$VENV_PY" "$ROOT/deploy/kafka/admin.py" probe --bootstrap "$KAFKA_BOOTSTRAP_SERVERS" --timeout 2 2>/dev/null; then
        die "a Kafka broker that is not ours already answers on $KAFKA_BOOTSTRAP_SERVERS; stop it or change deploy/local.env"
    fi
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@TOPIC_PARTITIONS@|$TOPIC_PARTITIONS|g" \
        -e "s|@KAFKA_DATA_DIR@|$KAFKA_DATA/kraft|g" \
        "$ROOT/deploy/kafka/server.properties.template" >"$KAFKA_HOME/server.properties"

    if [[ ! -s "$KAFKA_DATA/cluster.id" ]]; then
        # 16 random bytes, URL-safe base64 without padding: the format Kafka's own tool produces.
        python3 -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode())' \
            >"$KAFKA_DATA/cluster.id"
    fi
    JOPTS=(-Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        "-Dkafka.logs.dir=$KAFKA_LOGS" "-Dlog4j2.configurationFile=file:$ROOT/deploy/kafka/log4j2.properties")
    java "${JOPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
        -t "$(cat "$KAFKA_DATA/cluster.id")" -c "$KAFKA_HOME/server.properties" --ignore-formatted \
        >>"$KAFKA_LOGS/format.log" 2>&1 || { tail -n 20 "$KAFKA_LOGS/format.log" >&2; die "storage format failed"; }

    say "starting broker on $KAFKA_BOOTSTRAP_SERVERS"
    # setsid: the broker gets its own session, so a Ctrl-C meant for `make up` reaches only our stop
    # script, which shuts the broker down in order (SIGTERM → controlled shutdown).
    setsid java "${JOPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_HOME/server.properties" \
        >>"$KAFKA_LOGS/stdout.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_PID"
fi

deadline=$((SECONDS + READY_TIMEOUT))
until "$VENV_PY" "$ROOT/deploy/kafka/admin.py" probe --bootstrap "$KAFKA_BOOTSTRAP_SERVERS" --timeout 3 2>/dev/null; do
    if ! pid_alive "$KAFKA_PID"; then
        print_log_tail
        rm -f "$KAFKA_PID"
        die "the broker process exited during start-up"
    fi
    if ((SECONDS >= deadline)); then
        print_log_tail
        die "the broker did not serve metadata within ${READY_TIMEOUT}s (still running: pid $(cat "$KAFKA_PID"))"
    fi
    sleep 1
done
say "broker ready (pid $(cat "$KAFKA_PID"))"

"$VENV_PY" "$ROOT/deploy/kafka/admin.py" topics --bootstrap "$KAFKA_BOOTSTRAP_SERVERS" \
    --topics "$TOPICS" --partitions "$TOPIC_PARTITIONS"
