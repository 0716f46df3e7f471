#!/bin/sh
# Create Temporal's two PostgreSQL databases and bring their schemas to the version this
# temporalio/admin-tools image carries, the way Temporal's own compose files do
# (temporalio/samples-server, compose/scripts/setup-postgres.sh). docker-compose.yml runs it in
# the temporal-schema service before the server starts. POSIX sh: the admin-tools image has no
# bash.
#
# Safe to rerun: `create` leaves an existing database alone, `setup-schema -v 0.0` only adds the
# version tables where they are missing, and `update-schema` applies only the versions not yet
# applied. So it also upgrades a database that an older server, or temporalio/auto-setup,
# created. Move Temporal up one minor version at a time (1.29 -> 1.30 -> ...).
#
# Connection, read by temporal-sql-tool itself (the password never appears on a command line):
# SQL_HOST, SQL_PORT (5432), SQL_USER, SQL_PASSWORD, SQL_PLUGIN (postgres12).
set -eu

: "${SQL_HOST:?set SQL_HOST to the PostgreSQL host}"
: "${SQL_USER:?set SQL_USER to the PostgreSQL user Temporal connects as}"
: "${SQL_PASSWORD:?set SQL_PASSWORD to that user's password}"
export SQL_PLUGIN="${SQL_PLUGIN:-postgres12}"
export SQL_PORT="${SQL_PORT:-5432}"
# Where the admin-tools image keeps the versioned schema files of its Temporal release.
SCHEMA_DIR="${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"

log() { echo "temporal-schema: $*"; }

# setup DATABASE SCHEMA: create DATABASE and apply the versions under $SCHEMA_DIR/SCHEMA.
setup() {
    log "database $1 on ${SQL_HOST}:${SQL_PORT}: schema $SCHEMA_DIR/$2"
    temporal-sql-tool --db "$1" create
    temporal-sql-tool --db "$1" setup-schema -v 0.0
    temporal-sql-tool --db "$1" update-schema -d "$SCHEMA_DIR/$2/versioned"
}

# The names the server's configuration defaults to (DBNAME, VISIBILITY_DBNAME).
setup temporal temporal
setup temporal_visibility visibility
log "both databases are at this image's schema version"
