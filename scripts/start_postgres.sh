#!/usr/bin/env bash
# Start a local PostgreSQL server for distributed Optuna studies and their tests (Debian/Ubuntu).
#
# Idempotent: installs the `postgresql` apt package if needed, creates the default cluster if missing, makes it
# listen on loopback only, starts it, and creates (or updates) a login role and a database. Prints the
# SQLAlchemy URL of the database on stdout (last line), e.g.
#
#   postgresql://sb3_reinforce:sb3_reinforce@127.0.0.1:5432/sb3_reinforce_test
#
# which tests/test_optuna_postgres.py uses by default (override with SB3_REINFORCE_POSTGRES_URL).
#
# Settings (environment variables): SB3_REINFORCE_PG_USER, SB3_REINFORCE_PG_PASSWORD, SB3_REINFORCE_PG_DB,
# SB3_REINFORCE_PG_PORT. Runs as root or as a user with sudo.
set -euo pipefail

PG_USER="${SB3_REINFORCE_PG_USER:-sb3_reinforce}"
PG_PASSWORD="${SB3_REINFORCE_PG_PASSWORD:-sb3_reinforce}"
PG_DB="${SB3_REINFORCE_PG_DB:-sb3_reinforce_test}"
PG_PORT="${SB3_REINFORCE_PG_PORT:-5432}"

log() { echo "[start_postgres] $*" >&2; }

for name in "$PG_USER" "$PG_DB"; do
    if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
        log "invalid role/database name: $name (use lower-case letters, digits and _)"
        exit 2
    fi
done
if [[ "$PG_PASSWORD" == *"'"* ]]; then
    log "the password must not contain a single quote"
    exit 2
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
    as_postgres() { runuser -u postgres -- "$@"; }
else
    SUDO=(sudo)
    as_postgres() { sudo -u postgres "$@"; }
fi

# 1. Install the server (Debian package) if missing
if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || ! command -v pg_ctlcluster >/dev/null; then
    log "installing postgresql (apt-get)"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq postgresql >/dev/null
fi
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"

# 2. The cluster "main" of that version, on the chosen port
if ! pg_lsclusters -h | awk '{print $1 " " $2}' | grep -qx "$VERSION main"; then
    log "creating cluster $VERSION/main on port $PG_PORT"
    "${SUDO[@]}" pg_createcluster "$VERSION" main --port "$PG_PORT" >/dev/null
fi
CLUSTER_PORT="$(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $3}')"
if [ "$CLUSTER_PORT" != "$PG_PORT" ]; then
    log "cluster $VERSION/main uses port $CLUSTER_PORT: switching to $PG_PORT"
    "${SUDO[@]}" pg_conftool "$VERSION" main set port "$PG_PORT"
    "${SUDO[@]}" pg_ctlcluster "$VERSION" main stop >/dev/null 2>&1 || true
fi

# 3. Loopback only
if [ "$("${SUDO[@]}" pg_conftool -s "$VERSION" main show listen_addresses 2>/dev/null || true)" != "localhost" ]; then
    "${SUDO[@]}" pg_conftool "$VERSION" main set listen_addresses localhost
    "${SUDO[@]}" pg_ctlcluster "$VERSION" main stop >/dev/null 2>&1 || true
fi

# 4. Start (no systemd needed: works in containers and on CI runners)
"${SUDO[@]}" install -d -o postgres -g postgres -m 2775 /var/run/postgresql
if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting cluster $VERSION/main"
    "${SUDO[@]}" pg_ctlcluster "$VERSION" main start
fi
for _ in $(seq 1 30); do
    if pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
        break
    fi
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$PG_PORT" >&2

# 5. Role and database (password authentication over TCP on 127.0.0.1, Debian's default pg_hba.conf)
psql_admin() { as_postgres psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" = "1" ]; then
    psql_admin -c "ALTER ROLE $PG_USER WITH LOGIN PASSWORD '$PG_PASSWORD'" >/dev/null
else
    log "creating role $PG_USER"
    psql_admin -c "CREATE ROLE $PG_USER WITH LOGIN PASSWORD '$PG_PASSWORD'" >/dev/null
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    log "creating database $PG_DB"
    psql_admin -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
fi

URL="postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
PGPASSWORD="$PG_PASSWORD" psql "$URL" -qtA -c "SELECT 1" >/dev/null
log "ready: $URL"
echo "$URL"
