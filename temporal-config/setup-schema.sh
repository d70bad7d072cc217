#!/bin/sh
# Creates (or upgrades) Temporal's two databases on temporal-db: `temporal` (workflow state)
# and `temporal_visibility` (what list queries and the UI search). Run by the one-shot
# `temporal-schema` service in docker-compose.yml, from the temporalio/admin-tools image, before
# the server starts. Safe to run again: existing databases are kept and only missing schema
# versions are applied, which is also how a Temporal upgrade migrates them.
set -eu

: "${TEMPORAL_DB_HOST:=temporal-db}"
: "${TEMPORAL_DB_PORT:=5432}"
: "${TEMPORAL_DB_USER:=temporal}"
export SQL_PASSWORD="${TEMPORAL_DB_PASSWORD:?set TEMPORAL_DB_PASSWORD}"
SCHEMA=/etc/temporal/schema/postgresql/v12

until nc -z "$TEMPORAL_DB_HOST" "$TEMPORAL_DB_PORT"; do
  echo "waiting for PostgreSQL at $TEMPORAL_DB_HOST:$TEMPORAL_DB_PORT"
  sleep 1
done

for db in temporal temporal_visibility; do
  dir=$([ "$db" = temporal ] && echo temporal || echo visibility)
  sql="temporal-sql-tool --plugin postgres12 --ep $TEMPORAL_DB_HOST -p $TEMPORAL_DB_PORT -u $TEMPORAL_DB_USER --db $db"
  $sql create || echo "database $db exists"
  $sql setup-schema -v 0.0
  $sql update-schema -d "$SCHEMA/$dir/versioned"
done
echo "Temporal schema is up to date"
