#!/usr/bin/env bash
# Create one role and one database per service, idempotently: role = database = password = the name.
#
# Shared by deploy/postgres-up.sh and docker-compose (mounted into /docker-entrypoint-initdb.d), so the
# local cluster and the container hold the same databases. Names come from $DATABASES (deploy/local.env).
# Each database is owned by its role; in PostgreSQL 15 schema public belongs to pg_database_owner,
# so the owner may create its tables there without further grants.
# Connection: $PG_ADMIN_URL, unless PG_INIT_VIA_SOCKET is set (compose: the official image's init phase
# serves only its Unix socket) or it is unset; then psql's defaults.
set -euo pipefail

: "${DATABASES:?DATABASES must list the service databases, comma-separated}"
PSQL=(psql -v ON_ERROR_STOP=1 -X -q)
if [[ -n "${PG_ADMIN_URL:-}" && -z "${PG_INIT_VIA_SOCKET:-}" ]]; then
    PSQL+=("$PG_ADMIN_URL")
else
    PSQL+=(--username "${POSTGRES_USER:-postgres}" --dbname postgres)
fi

IFS=',' read -r -a names <<<"$DATABASES"
for name in "${names[@]}"; do
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "invalid database name: $name" >&2; exit 1; }
    "${PSQL[@]}" <<SQL
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$name', '$name')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', '$name', '$name', 'UTF8')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$name') \gexec
SQL
    echo "database $name ready"
done
