#!/usr/bin/env bash
# Manage the development Postgres for Ironclad.
#
#   scripts/db.sh url     print a working DATABASE_URL (stdout carries only the URL)
#   scripts/db.sh start   start a local Postgres (Docker Compose, else a project-local cluster)
#   scripts/db.sh stop    stop whatever `start` started
#   scripts/db.sh status  say what is running and its URL
#
# Resolution order for `url`:
#   1. DATABASE_URL from the environment, else from ./.env; used when the server
#      answers (the database itself is created if missing).
#   2. Otherwise `start`:
#      a. a project-local cluster in .data/postgres that is already running;
#      b. Docker Compose service `db` when a Docker engine answers;
#      c. a project-local cluster created with initdb/pg_ctl (Debian/Ubuntu
#         `postgresql` package or any initdb/pg_ctl on PATH).
#
# All messages go to stderr, so `export DATABASE_URL="$(scripts/db.sh url)"` works.
#
# Environment:
#   IRONCLAD_DB_PORT   host port of the Docker Compose database (default 55432)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DATA_DIR="$ROOT/.data"
PGDATA_DIR="$DATA_DIR/postgres"
PORT_FILE="$DATA_DIR/postgres.port"
LOG_FILE="$DATA_DIR/postgres.log"
DB_NAME="ironclad"
FIRST_PORT=55432
DOCKER_PORT="${IRONCLAD_DB_PORT:-55432}"
DOCKER_URL="postgres://postgres:postgres@127.0.0.1:${DOCKER_PORT}/${DB_NAME}"

# The URL of whatever start_db brought up.
STARTED_URL=""

log() { printf 'db.sh: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------------------------------------------------------------------------
# DATABASE_URL from the environment or .env
# ---------------------------------------------------------------------------

# Prints DATABASE_URL from the environment, else from ./.env (the last
# `DATABASE_URL=` line, optionally prefixed by `export`, quotes stripped).
# The file is parsed, never sourced.
configured_url() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    printf '%s\n' "$DATABASE_URL"
    return 0
  fi
  [[ -f .env ]] || return 1
  local line value
  line="$(grep -E '^[[:space:]]*(export[[:space:]]+)?DATABASE_URL[[:space:]]*=' .env | tail -n 1 || true)"
  [[ -n "$line" ]] || return 1
  value="${line#*=}"
  value="${value%$'\r'}"
  # trim surrounding whitespace
  value="${value#"${value%%[![:space:]]*}"}"
  value="${value%"${value##*[![:space:]]}"}"
  # strip one pair of matching quotes
  if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
    value="${BASH_REMATCH[1]}"
  fi
  [[ -n "$value" ]] || return 1
  printf '%s\n' "$value"
}

# /usr/lib/postgresql/<version>/bin folders (Debian/Ubuntu layout), highest version first.
versioned_bin_dirs() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [[ -d "$dir" ]]; then printf '%s\n' "$dir"; fi
  done | sort -V -r
}

# Finds a client program: PATH first, then the highest /usr/lib/postgresql/*/bin.
find_client() {
  local name="$1" dir
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return 0
  fi
  while IFS= read -r dir; do
    if [[ -x "$dir/$name" ]]; then
      printf '%s\n' "$dir/$name"
      return 0
    fi
  done < <(versioned_bin_dirs)
  return 1
}

# Is the server behind this URL answering? 0: yes; 10: no client tool to
# ask with; anything else: no (pg_isready itself returns 1-3).
url_reachable() {
  local url="$1" tool
  if tool="$(find_client pg_isready)"; then
    "$tool" -q -t 3 -d "$url" >/dev/null 2>&1 || return 1
    return 0
  fi
  if tool="$(find_client psql)"; then
    PGCONNECT_TIMEOUT=3 "$tool" "$url" -XqAt -c 'select 1' >/dev/null 2>&1 || return 1
    return 0
  fi
  return 10
}

# Splits a postgres:// URL. Sets URL_SCHEME, URL_AUTHORITY, URL_DB, URL_QUERY.
split_url() {
  local url="$1" rest path
  URL_SCHEME="${url%%://*}"
  rest="${url#*://}"
  URL_AUTHORITY="${rest%%/*}"
  path="${rest#"$URL_AUTHORITY"}"
  URL_QUERY=""
  if [[ "$path" == *\?* ]]; then
    URL_QUERY="?${path#*\?}"
    path="${path%%\?*}"
  fi
  if [[ -z "$path" && "$URL_AUTHORITY" == *\?* ]]; then
    URL_QUERY="?${URL_AUTHORITY#*\?}"
    URL_AUTHORITY="${URL_AUTHORITY%%\?*}"
  fi
  URL_DB="${path#/}"
}

# Creates the database named in the URL when it does not exist yet, by
# connecting to the `postgres` (else `template1`) database of the same server.
ensure_database() {
  local url="$1" psql_bin maint exists="" maint_db
  split_url "$url"
  if [[ "$URL_SCHEME" != postgres && "$URL_SCHEME" != postgresql ]]; then
    log "DATABASE_URL is not a postgres:// URL; not checking that its database exists"
    return 0
  fi
  if [[ -z "$URL_DB" ]]; then
    log "DATABASE_URL names no database; not creating one"
    return 0
  fi
  if ! psql_bin="$(find_client psql)"; then
    log "psql not found; cannot check that database '$URL_DB' exists"
    return 0
  fi
  for maint_db in postgres template1; do
    maint="${URL_SCHEME}://${URL_AUTHORITY}/${maint_db}${URL_QUERY}"
    if exists="$(printf "SELECT 1 FROM pg_database WHERE datname = :'db'\n" |
      PGCONNECT_TIMEOUT=5 "$psql_bin" "$maint" -XqAt -v ON_ERROR_STOP=1 -v db="$URL_DB" 2>/dev/null)"; then
      break
    fi
    maint=""
  done
  if [[ -z "$maint" ]]; then
    log "warning: could not connect to the maintenance database of that server; not checking that '$URL_DB' exists"
    return 0
  fi
  if [[ "$exists" == 1 ]]; then
    return 0
  fi
  log "creating database '$URL_DB'"
  if ! printf 'CREATE DATABASE :"db"\n' |
    "$psql_bin" "$maint" -Xq -v ON_ERROR_STOP=1 -v db="$URL_DB" >/dev/null; then
    # Two concurrent callers may race; only fail when it still is not there.
    exists="$(printf "SELECT 1 FROM pg_database WHERE datname = :'db'\n" |
      "$psql_bin" "$maint" -XqAt -v db="$URL_DB" 2>/dev/null || true)"
    [[ "$exists" == 1 ]] || die "could not create database '$URL_DB'"
  fi
}

# ---------------------------------------------------------------------------
# Docker Compose
# ---------------------------------------------------------------------------

COMPOSE=()

docker_available() {
  command -v docker >/dev/null 2>&1 || return 1
  timeout 10 docker info >/dev/null 2>&1 || return 1
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
  else
    return 1
  fi
}

compose_db_running() {
  local id state
  id="$("${COMPOSE[@]}" ps -q db 2>/dev/null || true)"
  [[ -n "$id" ]] || return 1
  state="$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null || true)"
  [[ "$state" == true ]]
}

start_docker() {
  log "starting Postgres with Docker Compose (service db, port ${DOCKER_PORT})"
  "${COMPOSE[@]}" up -d db >&2
  local id health i
  id="$("${COMPOSE[@]}" ps -q db)"
  [[ -n "$id" ]] || die "docker compose did not create the db container"
  for ((i = 0; i < 120; i++)); do
    health="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id" 2>/dev/null || true)"
    case "$health" in
      healthy) break ;;
      none)
        if "${COMPOSE[@]}" exec -T db pg_isready -q -h 127.0.0.1 -U postgres -d "$DB_NAME" >/dev/null 2>&1; then
          break
        fi
        ;;
      unhealthy) die "the db container is unhealthy; see: ${COMPOSE[*]} logs db" ;;
    esac
    sleep 1
  done
  ((i < 120)) || die "the db container did not become ready in 120s; see: ${COMPOSE[*]} logs db"
  STARTED_URL="$DOCKER_URL"
}

# ---------------------------------------------------------------------------
# Project-local cluster (.data/postgres)
# ---------------------------------------------------------------------------

PG_BIN=""
AS_USER=()

# Picks the directory holding initdb and pg_ctl. A cluster that already exists
# is started with binaries of its own major version when those are installed.
find_server_bin() {
  local dir version=""
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] && version="$(<"$PGDATA_DIR/PG_VERSION")"
  if [[ -n "$version" && -x "/usr/lib/postgresql/$version/bin/pg_ctl" && -x "/usr/lib/postgresql/$version/bin/initdb" ]]; then
    PG_BIN="/usr/lib/postgresql/$version/bin"
    return 0
  fi
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    PG_BIN="$(dirname "$(command -v pg_ctl)")"
    return 0
  fi
  while IFS= read -r dir; do
    if [[ -x "$dir/pg_ctl" && -x "$dir/initdb" ]]; then
      PG_BIN="$dir"
      return 0
    fi
  done < <(versioned_bin_dirs)
  return 1
}

# initdb, pg_ctl and postgres refuse to run as root: as root, run them as the
# `postgres` system user (created by Debian's postgresql packages).
setup_run_as() {
  AS_USER=()
  [[ "$(id -u)" -eq 0 ]] || return 0
  if ! id -u postgres >/dev/null 2>&1; then
    die "running as root, and Postgres refuses to run as root; no 'postgres' user exists to run it as.
  Create one (useradd --system --home-dir /var/lib/postgresql postgres), run as a normal user,
  or set DATABASE_URL to a server you already have."
  fi
  if command -v runuser >/dev/null 2>&1; then
    AS_USER=(runuser -u postgres --)
  elif command -v setpriv >/dev/null 2>&1; then
    AS_USER=(setpriv "--reuid=$(id -u postgres)" "--regid=$(id -g postgres)" --init-groups --)
  else
    die "running as root and neither runuser nor setpriv is available to drop to the postgres user"
  fi
}

# Runs a server program (initdb, pg_ctl) as the right user, from a directory it can read.
pg_run() {
  (cd / && "${AS_USER[@]}" "$@")
}

local_initialized() { [[ -f "$PGDATA_DIR/PG_VERSION" ]]; }

local_running() {
  local_initialized || return 1
  # postmaster.pid line 1 is the PID; signal 0 tests that it lives (root may
  # signal any process; a normal user owns the cluster it started).
  [[ -f "$PGDATA_DIR/postmaster.pid" ]] || return 1
  local pid
  pid="$(head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null
}

local_port() {
  # A running cluster knows its port (postmaster.pid line 4); else the port file.
  local port=""
  if local_running; then
    port="$(sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true)"
  fi
  if [[ ! "$port" =~ ^[0-9]+$ && -f "$PORT_FILE" ]]; then
    port="$(tr -dc '0-9' <"$PORT_FILE")"
  fi
  [[ "$port" =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$port"
}

local_url() { printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$1" "$DB_NAME"; }

port_in_use() {
  # A successful TCP connect means something listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

choose_port() {
  local port=""
  if [[ -f "$PORT_FILE" ]]; then
    port="$(tr -dc '0-9' <"$PORT_FILE")"
  fi
  if [[ "$port" =~ ^[0-9]+$ ]] && ! port_in_use "$port"; then
    printf '%s\n' "$port"
    return 0
  fi
  [[ -n "$port" ]] && log "port $port (from $PORT_FILE) is taken by another program; choosing a new one"
  for ((port = FIRST_PORT; port < FIRST_PORT + 100; port++)); do
    if ! port_in_use "$port"; then
      printf '%s\n' "$port" >"$PORT_FILE"
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "no free port in ${FIRST_PORT}-$((FIRST_PORT + 99))"
}

# Unix sockets paths are limited to ~107 bytes; fall back to /tmp for deep checkouts.
socket_dir() {
  if ((${#DATA_DIR} + 20 < 100)); then
    printf '%s\n' "$DATA_DIR"
  else
    printf '%s\n' /tmp
  fi
}

start_local() {
  find_server_bin || return 1
  setup_run_as
  mkdir -p "$DATA_DIR"
  if [[ "${#AS_USER[@]}" -gt 0 ]]; then
    chown postgres: "$DATA_DIR"
    [[ -d "$PGDATA_DIR" ]] && chown -R postgres: "$PGDATA_DIR"
    if ! pg_run test -w "$DATA_DIR"; then
      die "the postgres user cannot write to $DATA_DIR (a parent folder is probably not readable by it).
  Move the checkout somewhere world-readable, or set DATABASE_URL to a server you already have."
    fi
  fi

  if ! local_initialized; then
    log "creating a local cluster in .data/postgres with $PG_BIN/initdb"
    pg_run "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$DATA_DIR/initdb.log" 2>&1 ||
      pg_run "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust -E UTF8 \
        --locale=C >"$DATA_DIR/initdb.log" 2>&1 ||
      die "initdb failed; see $DATA_DIR/initdb.log"
  fi

  local port sock
  if local_running; then
    port="$(local_port)"
    log "local cluster already running on port $port"
  else
    port="$(choose_port)"
    printf '%s\n' "$port" >"$PORT_FILE"
    sock="$(socket_dir)"
    log "starting the local cluster on 127.0.0.1:$port (log: .data/postgres.log)"
    if [[ "${#AS_USER[@]}" -gt 0 ]]; then
      touch "$LOG_FILE"
      chown postgres: "$LOG_FILE"
    fi
    pg_run "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" \
      -o "-p $port -k '$sock' -c listen_addresses=127.0.0.1" \
      -l "$LOG_FILE" -w -t 60 start >&2 ||
      die "pg_ctl start failed; see $LOG_FILE"
  fi

  ensure_database "$(local_url "$port")"
  STARTED_URL="$(local_url "$port")"
}

stop_local() {
  find_server_bin || die "a local cluster is running but no pg_ctl was found to stop it"
  setup_run_as
  log "stopping the local cluster in .data/postgres"
  pg_run "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >&2
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

no_postgres_help() {
  cat >&2 <<'EOF'
db.sh: error: no Postgres available. Any one of these works:
  * set DATABASE_URL (in the environment or in .env) to a Postgres you already run,
    e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/ironclad_dev
  * install Docker (with the compose plugin) and run `just db` again;
  * install Postgres' server binaries, e.g. `sudo apt-get install postgresql`
    (Debian/Ubuntu), `brew install postgresql@17` (macOS) or `sudo dnf install
    postgresql-server` (Fedora), so initdb and pg_ctl are on PATH or in
    /usr/lib/postgresql/<version>/bin.
EOF
  exit 1
}

start_db() {
  if local_running; then
    local port
    port="$(local_port)"
    ensure_database "$(local_url "$port")"
    STARTED_URL="$(local_url "$port")"
    log "local cluster already running on port $port"
    return 0
  fi
  if docker_available; then
    start_docker
    return 0
  fi
  if start_local; then
    return 0
  fi
  no_postgres_help
}

cmd_url() {
  local url rc=0
  if url="$(configured_url)"; then
    url_reachable "$url" || rc=$?
    if [[ $rc -eq 0 ]]; then
      ensure_database "$url"
      printf '%s\n' "$url"
      return 0
    elif [[ $rc -eq 10 ]]; then
      log "warning: neither pg_isready nor psql is installed; using DATABASE_URL without checking it"
      printf '%s\n' "$url"
      return 0
    fi
    log "DATABASE_URL is set but its server does not answer; falling back to a local Postgres"
  fi
  start_db
  printf '%s\n' "$STARTED_URL"
}

cmd_start() {
  start_db
  log "ready: $STARTED_URL"
  printf '%s\n' "$STARTED_URL"
}

cmd_stop() {
  local stopped=0
  if local_running; then
    stop_local
    stopped=1
  fi
  if docker_available && compose_db_running; then
    log "stopping Docker Compose services (data stays in the named volume)"
    "${COMPOSE[@]}" down >&2
    stopped=1
  fi
  if [[ $stopped -eq 0 ]]; then
    log "nothing to stop: no local cluster or Compose db is running"
  fi
}

cmd_status() {
  local url port rc=0
  if url="$(configured_url)"; then
    url_reachable "$url" || rc=$?
    case $rc in
      0) echo "DATABASE_URL: $url (answering)" ;;
      10) echo "DATABASE_URL: $url (not checked: no pg_isready/psql)" ;;
      *) echo "DATABASE_URL: $url (NOT answering)" ;;
    esac
  else
    echo "DATABASE_URL: not set (environment or .env)"
  fi

  if local_running; then
    port="$(local_port)"
    echo "local cluster: running, $(local_url "$port") (data: .data/postgres, log: .data/postgres.log)"
  elif local_initialized; then
    echo "local cluster: stopped (data: .data/postgres)"
  else
    echo "local cluster: not created"
  fi

  if docker_available; then
    if compose_db_running; then
      echo "docker compose db: running, $DOCKER_URL"
    else
      echo "docker compose db: not running"
    fi
  else
    echo "docker compose db: no Docker engine answering"
  fi
}

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

case "${1:-}" in
  url) cmd_url ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h | --help | help)
    usage
    ;;
  *)
    usage
    exit 2
    ;;
esac
