# Shared shell helpers of the scripts the make targets run. Source it; do not run it.
# Services are project-local: data under the given directory, loopback only, stopped by id.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# on_exit COMMAND: runs COMMAND (eval'd) when the script exits, Ctrl-C and kill included,
# before the commands registered earlier: what started last stops first.
exit_commands=()
on_exit() {
  exit_commands+=("$1")
  trap run_exit_commands EXIT
  # Without these, bash ends on SIGTERM without running the EXIT trap.
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
run_exit_commands() {
  local i
  for ((i = ${#exit_commands[@]} - 1; i >= 0; i--)); do eval "${exit_commands[i]}" || true; done
}

# wait_for_port PORT PID[:LOG]...: waits until something listens on 127.0.0.1:PORT (30 s at
# most); dies, showing the end of its LOG, when a PID exits first.
wait_for_port() {
  local port=$1 proc
  shift
  for _ in $(seq 300); do
    port_free "$port" || return 0
    for proc in "$@"; do
      kill -0 "${proc%%:*}" 2>/dev/null && continue
      [[ $proc == *:* ]] && tail -n 20 "${proc#*:}" >&2
      die "process ${proc%%:*} exited before listening on port $port"
    done
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$port after 30 s"
}

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

# stop_pid PID SECONDS: TERM, then KILL if PID is still there after SECONDS.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 $(($2 * 10))); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# redis_stop DIR: stops the Redis redis_start started there (by its pid).
redis_stop() {
  local dir=$1 pid
  [ -s "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  stop_pid "$pid" 5
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

# ensure_venv [DIR]: a project venv for Python tools (schemathesis, SAM, cfn-lint), in
# .venv/ unless DIR names another.
ensure_venv() {
  local venv=${1:-.venv}
  [ -x "$venv/bin/pip" ] && return 0
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; } \
    || die "cannot create $venv"
}

# venv_install REQUIREMENT...: pip-installs what the venv lacks.
venv_install() {
  .venv/bin/pip install -q --disable-pip-version-check "$@" >/dev/null || die "pip install $* failed"
}

localstack_running() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

# The services by the prefix of their functions (pg_start, redis_stop, ...).
declare -A service_names=([pg]=PostgreSQL [redis]=Redis [localstack]=LocalStack)

# start_service pg|redis|localstack DIR FIRST_PORT [pg_start settings...]: starts one with its
# data in DIR, on the first free port from FIRST_PORT (set in service_port), stopped on exit.
start_service() {
  local kind=$1 dir=$2 first=$3 name=${service_names[$1]}
  shift 3
  service_port=$(free_port "$first")
  log "starting $name on 127.0.0.1:$service_port (data in $dir)"
  "${kind}_start" "$dir" "$service_port" "$@"
  on_exit "log 'stopping $name'; ${kind}_stop '$dir'"
}

# dev_service pg|redis|localstack DIR FIRST_PORT: the one already running in DIR (its port
# in service_port), else start_service: make dev and make dev-lambda share their services.
dev_service() {
  local kind=$1 dir=$2
  if "${kind}_running" "$dir"; then
    service_port=$(cat "$dir/port")
    log "using the ${service_names[$kind]} already running in $dir (port $service_port)"
  else
    start_service "$@"
  fi
}

# fresh_service pg|redis|localstack DIR FIRST_PORT [pg_start settings...]: start_service in
# an empty DIR, after stopping what an interrupted run left running there.
fresh_service() {
  "${1}_stop" "$2" 2>/dev/null || true
  rm -rf "$2"
  start_service "$@"
}

# dev_database: exports DATABASE_URL (the application role the functions serve as) and
# OWNER_DATABASE_URL (the owner, which only migrates), unless DATABASE_URL is already set,
# for the project-local cluster in .dev/pg (dev_service) and its `gamestore` database. The
# cluster trusts loopback connections, so neither carries a password; `gamestore migrate`
# (or `serve`'s start-up) creates the role and lets it log in.
dev_database() {
  [ -n "${DATABASE_URL:-}" ] && return 0
  local port admin_url
  ensure_postgres
  dev_service pg .dev/pg 5433
  port=$service_port
  admin_url="postgres://postgres@127.0.0.1:$port/postgres"
  if [ -z "$("$PGBIN/psql" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'gamestore'" "$admin_url")" ]; then
    "$PGBIN/psql" -qc "CREATE DATABASE gamestore" "$admin_url"
  fi
  export OWNER_DATABASE_URL="postgres://postgres@127.0.0.1:$port/gamestore"
  export DATABASE_URL="postgres://gamestore_app@127.0.0.1:$port/gamestore"
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

# The pinned cargo-lambda, in .venv (pip brings zig); puts .venv/bin on PATH. The deploy
# workflow installs the same version.
CARGO_LAMBDA_VERSION=1.9.2
ensure_cargo_lambda() {
  export PATH="$PWD/.venv/bin:$PATH"
  if cargo lambda -V 2>/dev/null | grep -q " $CARGO_LAMBDA_VERSION\b"; then return 0; fi
  log "installing cargo-lambda $CARGO_LAMBDA_VERSION into .venv"
  ensure_venv && venv_install "cargo-lambda==$CARGO_LAMBDA_VERSION"
}

# lambda_stack_start DIR API_PORT ENDPOINT QUEUE_URL DLQ_URL [devgw serve options...]:
# the function binaries under `cargo lambda watch` and devgw in front of them (API on
# 127.0.0.1:API_PORT, routes, SQS source and schedule from infra/template.yaml, the Secrets
# extension backed by the LocalStack at ENDPOINT), both in the background, pids and logs in
# DIR. Needs DATABASE_URL (postgres://user[:password]@127.0.0.1:port/db), whose credentials
# it stores as the DbAppSecret, and OWNER_DATABASE_URL's as the DbSecret (DATABASE_URL's when
# unset: one role for all); the JWT secret is LocalStack's gamestore/jwt-secret.
# LAMBDA_ENV="NAME=VALUE ..." adds variables to the functions' environment.
lambda_stack_start() {
  local dir=$1 api_port=$2 endpoint=$3 queue_url=$4 dlq_url=$5
  shift 5
  mkdir -p "$dir"
  ensure_cargo_lambda
  local db_secret="gamestore/db-$(basename "$dir")" db_host db_port db_name
  # The secrets' shape in AWS: {"username","password"}; host, port and name are the
  # functions' DB_* variables.
  read -r db_host db_port db_name < <(.venv-localstack/bin/python - "$endpoint" "$db_secret" "$DATABASE_URL" \
    "${OWNER_DATABASE_URL:-$DATABASE_URL}" <<'PY'
import json, sys, urllib.parse, boto3
endpoint, name, url, owner_url = sys.argv[1:5]
sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
for secret, source in ((name + "-app", url), (name, owner_url)):
    parsed = urllib.parse.urlparse(source)
    value = json.dumps({"username": urllib.parse.unquote(parsed.username or "postgres"),
                        "password": urllib.parse.unquote(parsed.password or "")})
    try:
        sm.create_secret(Name=secret, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=secret, SecretString=value)
parsed = urllib.parse.urlparse(url)
print(parsed.hostname or "127.0.0.1", parsed.port or 5432, parsed.path.lstrip("/") or "postgres")
PY
  )
  [ -n "$db_name" ] || die "cannot store the database secret in LocalStack"
  local ext_port
  ext_port=$(free_port 2773)
  cargo build --quiet --bin devgw
  local devgw=${CARGO_TARGET_DIR:-target}/debug/devgw
  local refs=(--ref JwtSecret=gamestore/jwt-secret --ref "DbSecret=$db_secret" --ref "DbAppSecret=$db_secret-app"
    --ref "DbProxy.Endpoint=$db_host" --ref "DbName=$db_name" --ref "EmailQueue=$queue_url" --ref "EmailDeadLetterQueue=$dlq_url"
    --ref MailFrom=welcome@gamestore.example --ref StageName=local --extension-port "$ext_port")
  # What Lambda itself gives a function (credentials, region) and what differs locally:
  # LocalStack's endpoint, the local Postgres port, no TLS.
  local sets=() pair
  for pair in ${LAMBDA_ENV:-}; do sets+=(--set "$pair"); done
  # One `cargo lambda watch` per function, each with the function's own environment from
  # the template (cargo lambda gives every function of one watch the same --env-file), so
  # a function is told only of the secrets it is told of in AWS. Each runs under env -i:
  # nothing of this shell (DATABASE_URL, say) reaches a function.
  local fn port invokes=()
  : >"$dir/watch.pids"
  for fn in $("$devgw" functions); do
    "$devgw" env --function "$fn" "${refs[@]}" "${sets[@]}" --set "DB_PORT=$db_port" --set DB_SSLMODE=disable \
      --set "AWS_ENDPOINT_URL=$endpoint" --set AWS_ACCESS_KEY_ID=test --set AWS_SECRET_ACCESS_KEY=test \
      --set AWS_REGION=us-east-1 >"$dir/$fn.env"
    port=$(free_port $((api_port + 1)))
    (exec setsid env -i PATH="$PATH" HOME="$HOME" ${CARGO_HOME:+CARGO_HOME="$CARGO_HOME"} \
      ${RUSTUP_HOME:+RUSTUP_HOME="$RUSTUP_HOME"} ${CARGO_TARGET_DIR:+CARGO_TARGET_DIR="$CARGO_TARGET_DIR"} \
      ${RUST_LOG:+RUST_LOG="$RUST_LOG"} \
      cargo lambda watch -A 127.0.0.1 -P "$port" --bin "$fn" --env-file "$dir/$fn.env" >"$dir/watch-$fn.log" 2>&1) &
    echo $! >>"$dir/watch.pids"
    wait_for_port "$port" "$!:$dir/watch-$fn.log"
    invokes+=(--invoke-function "$fn=http://127.0.0.1:$port")
  done
  AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    "$devgw" serve "${refs[@]}" --listen "127.0.0.1:$api_port" "${invokes[@]}" \
    --aws-endpoint "$endpoint" "$@" >"$dir/devgw.log" 2>&1 &
  echo $! >"$dir/devgw.pid"
  wait_for_port "$api_port" "$(cat "$dir/devgw.pid"):$dir/devgw.log"
  echo "$api_port" >"$dir/port"
}

# lambda_stack_warm API: one request per documented operation, so `cargo lambda watch`
# compiles and starts every function before a client with a timeout talks to it. Anonymous
# and without a body: each answers 4xx (or a read) and changes nothing.
lambda_stack_warm() {
  local api=$1
  local i
  for i in $(seq 60); do
    curl -sf --max-time 600 -o /dev/null "$api/api/v1/openapi.json" && break
    [ "$i" = 60 ] && die "openapi did not answer"
    sleep 1
  done
  curl -sf "$api/api/v1/openapi.json" | .venv/bin/python -c '
import json, re, sys
for path, ops in json.load(sys.stdin)["paths"].items():
    for method in ops:
        if method in ("get", "post", "put", "patch", "delete"):
            print(method.upper(), re.sub(r"\{[^}]*\}", "1", path))' |
    while read -r method path; do
      curl -s --max-time 600 -o /dev/null -X "$method" "$api$path" || true
    done
}

# kill_tree PID: stops PID and its descendants, the descendants first.
kill_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
  kill -TERM "$1" 2>/dev/null || true
}

# lambda_stack_stop DIR: stops devgw, the functions' cargo lambda watch and the function
# processes they started (each in a session of its own, sent no signal when watch stops).
lambda_stack_stop() {
  local dir=$1 pid
  if [ -s "$dir/devgw.pid" ]; then kill "$(cat "$dir/devgw.pid")" 2>/dev/null || true; rm -f "$dir/devgw.pid"; fi
  if [ -s "$dir/watch.pids" ]; then
    while read -r pid; do kill_tree "$pid"; done <"$dir/watch.pids"
    rm -f "$dir/watch.pids"
  fi
}
