#!/usr/bin/env bash
# Stop Kafka and PostgreSQL (data kept in .local/). Both are attempted even if one stop fails.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
status=0
"$ROOT/deploy/kafka-down.sh" || status=$?
"$ROOT/deploy/postgres-down.sh" || status=$?
exit "$status"
