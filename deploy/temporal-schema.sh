#!/bin/sh
# One-shot (temporalio/admin-tools): create or upgrade Temporal's two PostgreSQL databases.
# Same steps as the official Temporal compose setup (temporal-sql-tool, plugin postgres12).
# Safe to re-run: an existing database is kept, setup-schema skips a schema already past 0.0,
# update-schema applies only the versions not yet applied.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS is required}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
PORT="${DB_PORT:-5432}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

echo "Waiting for PostgreSQL at ${POSTGRES_SEEDS}:${PORT}..."
attempt=1
until nc -z -w 5 "$POSTGRES_SEEDS" "$PORT"; do
  [ "$attempt" -ge 30 ] && { echo "PostgreSQL not reachable" >&2; exit 1; }
  attempt=$((attempt + 1)); sleep 2
done

for db in temporal temporal_visibility; do
  case "$db" in
    temporal) dir="$SCHEMA_ROOT/temporal/versioned" ;;
    *) dir="$SCHEMA_ROOT/visibility/versioned" ;;
  esac
  tool="temporal-sql-tool --plugin postgres12 --ep $POSTGRES_SEEDS -u $POSTGRES_USER -p $PORT --db $db"
  $tool create
  $tool setup-schema -v 0.0
  $tool update-schema -d "$dir"
  echo "Database $db is up to date"
done
