#!/bin/bash
# Runs once, when the PostgreSQL data volume is first initialised (docker-entrypoint-initdb.d):
# the project's own role and database, beside Temporal's (which temporal-schema.sh creates).
set -euo pipefail

: "${SPOTCHECK_DB_USER:?SPOTCHECK_DB_USER is required}"
: "${SPOTCHECK_DB_PASSWORD:?SPOTCHECK_DB_PASSWORD is required}"
: "${SPOTCHECK_DB_NAME:=spotcheck}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v app_user="$SPOTCHECK_DB_USER" -v app_password="$SPOTCHECK_DB_PASSWORD" \
  -v app_db="$SPOTCHECK_DB_NAME" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user" ENCODING 'UTF8' TEMPLATE template0;
SQL
echo "created role $SPOTCHECK_DB_USER and database $SPOTCHECK_DB_NAME"
