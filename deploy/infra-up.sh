#!/usr/bin/env bash
# Start PostgreSQL and Kafka (each only if not running already) and create databases and topics.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
"$ROOT/deploy/postgres-up.sh"
"$ROOT/deploy/kafka-up.sh"
