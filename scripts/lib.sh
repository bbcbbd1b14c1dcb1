# Shared shell helpers for make dev / make test / make bench. Source it; do not run it.
# Services are project-local: data under the given directory, loopback only, stopped by id.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"; fi
}

# apt_install PKG...: installs the Debian packages that are missing.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || die "apt-get install ${missing[*]} failed"
}

pg_bin() {
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] || return 1
  printf '%s\n' "$dir"
}

ensure_postgres() {
  pg_bin >/dev/null || apt_install postgresql
  PGBIN=$(pg_bin) || die "PostgreSQL server binaries not found after install"
  export PGBIN
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port START: first port from START on that nothing listens on.
free_port() {
  local port=$1
  while ! port_free "$port"; do port=$((port + 1)); done
  printf '%s\n' "$port"
}

# The server refuses to run as root; run it as the postgres (or nobody) user then.
pg_user() {
  if [ "$(id -u)" != 0 ]; then return 0; fi
  if id postgres >/dev/null 2>&1; then echo postgres; else echo nobody; fi
}

as_pg() {
  local user
  user=$(pg_user)
  if [ -n "$user" ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

# pg_start DIR PORT [extra postgresql.conf lines...]: starts (initialising if needed) a
# cluster in DIR on 127.0.0.1:PORT with trust auth for the postgres role.
pg_start() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  local user
  user=$(pg_user)
  [ -n "$user" ] && chown "$user" "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = ''"
      for line in "$@"; do echo "$line"; done
    } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
  fi
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
  echo "$port" >"$dir/port"
}

pg_stop() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

pg_running() { [ -f "$1/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

# cargo_nextest: installs cargo-nextest when the machine lacks it.
ensure_nextest() {
  cargo nextest --version >/dev/null 2>&1 && return 0
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked >/dev/null || die "cargo install cargo-nextest failed"
}

# redis_start DIR PORT: a throw-away Redis on 127.0.0.1:PORT (no persistence), pid and log
# in DIR. Installs Debian's redis-server when missing.
redis_start() {
  local dir=$1 port=$2 i
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null \
    || die "redis-server did not start (see $dir/redis.log)"
  for i in $(seq 1 50); do
    [ -s "$dir/redis.pid" ] && redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 || die "Redis on port $port does not answer"
  echo "$port" >"$dir/port"
}

# redis_stop DIR: stops the Redis redis_start started there (by its pid).
redis_stop() {
  local dir=$1 pid i
  [ -s "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/redis.pid"
}

redis_running() { [ -s "$1/redis.pid" ] && kill -0 "$(cat "$1/redis.pid")" 2>/dev/null; }

# localstack_start DIR PORT / localstack_stop DIR: LocalStack without Docker, on
# 127.0.0.1:PORT, installed into .venv-localstack on first use (localstack/run.sh).
localstack_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl
  localstack/run.sh start "$1" "$2"
}
localstack_stop() { localstack/run.sh stop "$1"; }

# A project venv for Python tools (schemathesis, SAM, cfn-lint), in .venv/.
ensure_venv() {
  [ -x .venv/bin/pip ] && return 0
  python3 -m venv .venv 2>/dev/null || { apt_install python3-venv && python3 -m venv .venv; } || die "cannot create .venv"
}

# venv_install REQUIREMENT...: pip-installs what the venv lacks.
venv_install() {
  .venv/bin/pip install -q --disable-pip-version-check "$@" >/dev/null || die "pip install $* failed"
}

# dev_database: exports DATABASE_URL, unless already set, for the project-local cluster in
# .dev/pg (started when not running; its stop is added to the caller's `stops`) and its
# `gamestore` database.
dev_database() {
  [ -n "${DATABASE_URL:-}" ] && return 0
  local dir=.dev/pg port admin_url
  ensure_postgres
  if pg_running "$dir"; then
    port=$(cat "$dir/port")
    log "using the PostgreSQL already running in $dir (port $port)"
  else
    port=$(free_port 5433)
    log "starting PostgreSQL on 127.0.0.1:$port (data in $dir)"
    pg_start "$dir" "$port"
    stops+=('log "stopping PostgreSQL"; pg_stop .dev/pg')
  fi
  admin_url="postgres://postgres@127.0.0.1:$port/postgres"
  if [ -z "$("$PGBIN/psql" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'gamestore'" "$admin_url")" ]; then
    "$PGBIN/psql" -qc "CREATE DATABASE gamestore" "$admin_url"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/gamestore"
}

# dev_build_and_seed: builds `gamestore` (path in $bin), migrates, and creates the seed's
# admin and the demo products.
dev_build_and_seed() {
  log "building"
  cargo build --quiet --bin gamestore
  bin=${CARGO_TARGET_DIR:-target}/debug/gamestore
  "$bin" migrate
  "$bin" seed-admin --email admin@gamestore.com --password admin123
  "$bin" seed-demo
}
