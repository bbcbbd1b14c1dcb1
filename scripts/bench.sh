#!/usr/bin/env bash
# make bench: the API over HTTP and the Lambda binaries, measured against the peer (the Go
# seed's SQL replayed with pgbench, ../shared/peer/run.sh) on ONE fresh PostgreSQL with the
# same settings for both sides, in alternating rounds (peer, ours, peer, ours, ...). Prints
# the tables, writes bench/results/latest.json and the README's Performance section.
#
# Environment
#   BENCH_SECONDS        seconds per measured run (default 10)
#   BENCH_ROUNDS         alternating rounds, at least 3 for a median (default 3)
#   BENCH_CLIENTS        client counts for orders and list (default "32 64")
#   BENCH_LOGIN_CLIENTS  clients for login (default 8)
#   BENCH_POOL_SIZE      the server's DB_POOL_SIZE (default 32, see README "Performance")
#   BENCH_WORKERS        the server's tokio worker threads (default: one per CPU)
#   BENCH_PIN            1: loadgen and pgbench on CPU 0 only (default 0, see README)
#   BENCH_LAMBDA_STARTS  cold starts per function (default 20)
#   BENCH_LAMBDA_WARM    warm invocations of each HTTP function (default 200)
#   BENCH_SKIP_PEER=1 / BENCH_SKIP_OURS=1 / BENCH_SKIP_LAMBDA=1   for quick checks
#   BENCH_NO_README=1    do not rewrite README.md / bench/results/latest.json
#   BENCH_SKIP_BUILD=1   use the release binaries already built (no cargo build)
#   BENCH_PROFILE        cargo profile of the measured binaries (default release), to compare
#                        profiles in one session (loadgen comes from release, except with
#                        dev: a quick check of the cases that builds nothing in release)
#   BENCH_LOADGEN_PROFILE cargo profile loadgen comes from (default: as just said)
#   BENCH_CASES          only our cases whose names match one of these globs, e.g.
#                        "catalogue-*" (default: all); for quick checks
#   BENCH_ONLY=metrics   only the pair "order (metrics on)" / "order (metrics off)": no peer,
#                        no other row, no Lambda figures, README and latest.json untouched
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SECS=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-"32 64"}
LOGIN_CLIENTS=${BENCH_LOGIN_CLIENTS:-8}
POOL=${BENCH_POOL_SIZE:-32}
WORKERS=${BENCH_WORKERS:-}
PIN=${BENCH_PIN:-0}
STARTS=${BENCH_LAMBDA_STARTS:-20}
WARM=${BENCH_LAMBDA_WARM:-200}
PROFILE=${BENCH_PROFILE:-release}
ONLY=${BENCH_ONLY:-}
case $ONLY in
  '') ;;
  metrics) BENCH_SKIP_PEER=1 BENCH_SKIP_LAMBDA=1 BENCH_NO_README=1 ;;
  *) die "BENCH_ONLY must be metrics (or unset)" ;;
esac
# The metrics pair: spread orders (little lock contention, so the server's own CPU shows)
# at this many clients, with the EMF line on and off (README "Operating it").
METRICS_CLIENTS=32
PEER=../shared/peer/run.sh
# Every function binary (functions/<name>).
FUNCTIONS=$(for f in functions/*/; do f=${f%/}; echo "${f#functions/}"; done | xargs)
USERS=1000
ORDER_PRODUCTS=1000
LIST_PRODUCTS=50
# The catalogue cases: 100k products, ten titles (one with an accent) and a hash fragment in
# each name, prices 9.99-69.98 in 6000 steps (many ties), ten creation times per second.
CATALOGUE_PRODUCTS=100000
CATALOGUE_NAME="(ARRAY['The Legend of Zelda','Super Mario','Pokémon','Celeste','Hades','Portal','Doom','Tetris','Halo','Metroid'])[g % 10 + 1] || ' ' || substr(md5(g::text), 1, 6) || ' ' || g"
# Case name and request, at the largest client count. catalogue-id (no filter) is the
# baseline of the others; q=pokemon matches a tenth of the names (without its accent),
# q=4a7b a handful (the trigram index), the price range a third, in price order.
CATALOGUE_CASES=(
  "catalogue-id /api/v1/products?limit=50"
  "catalogue-q /api/v1/products?q=pokemon&limit=50"
  "catalogue-q-rare /api/v1/products?q=4a7b&limit=50"
  "catalogue-price /api/v1/products?min_price=2000&max_price=4000&sort=price&limit=50"
  "catalogue-newest /api/v1/products?q=mario&in_stock=true&sort=newest&limit=50"
)
# 1e9 units per product as in the peer: no run can sell out.
STOCK=1000000000
PASSWORD=bench-password

[ -x "$PEER" ] || die "$PEER not found: the peer kit must sit next to the repository"
case $SECS$ROUNDS in *[!0-9]*) die "BENCH_SECONDS and BENCH_ROUNDS must be integers" ;; esac

n_clients=$(wc -w <<<"$CLIENTS")
peer_runs=$((5 * n_clients)) # seed-order, single-order x hot, spread + seed-list
ours_runs=$((3 * n_clients + ${#CATALOGUE_CASES[@]} + 2)) # orders hot, spread, list; catalogue; the metrics pair (+ the floor and login once)
if [ "$ONLY" = metrics ]; then peer_runs=0 ours_runs=2; fi
# Measured on a fresh clone: 8 min 38 s after the build for 3 rounds of 10 s runs, so the
# set-up between runs (the peer reloads its schema, VACUUM, CHECKPOINT; ours copies a
# template database, CHECKPOINT, starts the server) and the Lambda figures add ~40 s in all.
estimate=$((ROUNDS * (peer_runs + ours_runs) * SECS + 2 * SECS + 40))
log "estimated duration after the build: $((estimate / 60)) min $((estimate % 60)) s ($ROUNDS rounds x ($peer_runs peer + $ours_runs ours) runs x ${SECS} s, + the floor and login once)"
started=$(date +%s)

ensure_postgres
apt_install jq

# The directory cargo builds a profile into.
profile_dir() { case $1 in dev | test) echo debug ;; bench) echo release ;; *) echo "$1" ;; esac; }
default_loadgen_profile=release
[ "$PROFILE" = dev ] && default_loadgen_profile=dev
LOADGEN_PROFILE=${BENCH_LOADGEN_PROFILE:-$default_loadgen_profile}

build_secs=0
if [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
  log "BENCH_SKIP_BUILD=1: using the release binaries already in the target directory"
else
  log "building release binaries (server, loadgen, then each function)"
  build_started=$(date +%s)
  if [ "$PROFILE" = "$LOADGEN_PROFILE" ]; then
    cargo build --profile "$PROFILE" --quiet -p gamestore -p loadgen
  else
    cargo build --profile "$LOADGEN_PROFILE" --quiet -p loadgen
    cargo build --profile "$PROFILE" --quiet -p gamestore
  fi
  # One function per cargo invocation, as `sam build` ships them: built together, cargo
  # would unify common's features and link the AWS SDK into functions that never call it.
  # Functions with the same features reuse each other's compiled dependencies.
  if [ "${BENCH_SKIP_LAMBDA:-0}" != 1 ]; then
    for fn in $FUNCTIONS; do cargo build --profile "$PROFILE" --quiet -p "$fn"; done
  fi
  build_secs=$(($(date +%s) - build_started))
  log "release build took $build_secs s"
fi
loadgen=${CARGO_TARGET_DIR:-target}/$(profile_dir "$LOADGEN_PROFILE")/loadgen
target=${CARGO_TARGET_DIR:-target}/$(profile_dir "$PROFILE")
gamestore=$target/gamestore

mkdir -p .bench
run=.bench/run
rm -rf "$run"
mkdir -p "$run/lambda"
dir=.bench/pg
# Stock, durable settings (fsync, synchronous_commit, full_page_writes on; 128 MB shared
# buffers) as in the peer's throwaway cluster; only max_connections is raised so that 64
# pgbench clients and the server's pool (plus admin sessions) always fit.
fresh_service pg "$dir" 56432 "max_connections = 200"
port=$service_port
admin_url="postgres://postgres@127.0.0.1:$port/postgres"
db_url() { printf 'postgres://postgres@127.0.0.1:%s/%s\n' "$port" "$1"; }
psql_q() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
# Whether our case (or a case starting with this prefix) is among BENCH_CASES.
wanted() {
  local glob globs
  [ -n "${BENCH_CASES:-}" ] || return 0
  read -ra globs <<<"$BENCH_CASES"
  for glob in "${globs[@]}"; do
    # shellcheck disable=SC2053 # the glob is meant to match
    [[ $1 == $glob || $glob == "$1"* ]] && return 0
  done
  return 1
}
settings=$(psql_q -Atc "SELECT 'PostgreSQL ' || current_setting('server_version') || ': ' || string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync','synchronous_commit','full_page_writes','shared_buffers','max_connections','wal_level')" "$admin_url")
log "$settings"

JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
export JWT_SECRET

# Template databases for our side, copied fresh before every run as the peer reloads its
# schema before every run: same row counts, 1000 buyers, stock 1e9 per product.
hash=$("$loadgen" hash "$PASSWORD")
make_template() { # name products [SQL of the name of product g]
  psql_q -c "CREATE DATABASE $1" "$admin_url"
  DATABASE_URL=$(db_url "$1") RUST_LOG=warn "$gamestore" migrate
  # Products as the API creates them: the stock in one bucket, split by the first orders
  # that contend for it (migrations/V3__split_stock_on_demand.sql). Only the loaded tables
  # are vacuumed: vacuuming the empty orders table records it as empty, and every
  # connection then plans the order_items -> orders foreign-key check as a sequential scan
  # of orders, which grows with every order until autovacuum analyzes the table
  # (bench/README.md, session 3). A database fresh from its migrations has never been
  # vacuumed, and the planner does not take an unvacuumed table for an empty one.
  psql_q -v hash="$hash" -v nproducts="$2" -v nusers="$USERS" -v stock="$STOCK" -v name="${3:-'Game ' || g}" "$(db_url "$1")" <<'SQL'
INSERT INTO users (email, password_hash, role)
SELECT 'bench' || g || '@example.com', :'hash', 'user' FROM generate_series(1, :nusers) AS g;
-- Ten products a second, as a busy admin would create them: sort=newest meets ties.
INSERT INTO products (name, description, price, sku, created_at)
SELECT :name,
       'Description of game ' || g || ': a single-player adventure with about one hundred bytes of text.',
       999 + (g * 37) % 6000, 'SKU-' || lpad(g::text, 6, '0'),
       timestamptz '2026-12-01 00:00:00+00' + (g / 10) * interval '1 second'
FROM generate_series(1, :nproducts) AS g;
INSERT INTO product_stock (product_id, bucket, stock)
SELECT p.id, 0, :stock FROM products p ORDER BY p.id;
VACUUM ANALYZE users, products, product_stock;
SQL
}
log "preparing our databases (1000 users, $ORDER_PRODUCTS and $LIST_PRODUCTS products)"
make_template gs_tpl_orders "$ORDER_PRODUCTS"
make_template gs_tpl_list "$LIST_PRODUCTS"
if [ ${#CATALOGUE_CASES[@]} -gt 0 ] && wanted catalogue-; then
  log "preparing the catalogue database ($CATALOGUE_PRODUCTS products)"
  make_template gs_tpl_catalogue "$CATALOGUE_PRODUCTS" "$CATALOGUE_NAME"
fi
psql_q -Atc "SELECT id || ' ' || role FROM users WHERE email LIKE 'bench%' ORDER BY id" "$(db_url gs_tpl_orders)" \
  | "$loadgen" tokens >"$run/tokens.txt"

pin_client=()
pin_server=()
if [ "$PIN" = 1 ]; then
  pin_client=(taskset -c 0)
  pin_server=(taskset -c 1)
fi

fresh_db() { # template
  psql_q -c "DROP DATABASE IF EXISTS gs_run" -c "CREATE DATABASE gs_run TEMPLATE $1" "$admin_url"
  psql_q -c "CHECKPOINT" "$admin_url"
}

server_pid=""
# The server's METRICS setting: on as deployed, off for the metrics pair's second row.
server_metrics=on
start_server() {
  local sport
  sport=$(free_port 18080)
  DATABASE_URL=$(db_url gs_run) DB_POOL_SIZE=$POOL PORT=$sport RUST_LOG=warn METRICS=$server_metrics \
    ${WORKERS:+TOKIO_WORKER_THREADS=$WORKERS} \
    ${pin_server[@]+"${pin_server[@]}"} "$gamestore" serve >>"$run/server.log" 2>&1 &
  server_pid=$!
  wait_for_port "$sport" "$server_pid:$run/server.log"
  server_addr=127.0.0.1:$sport
}

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
on_exit stop_server

# CPU time (user + system, in clock ticks) of a process plus the children it has reaped.
ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
# ... of the whole cluster: the postmaster, the backends it has reaped and the live ones.
pg_ticks() {
  local pm total child
  pm=$(head -n 1 "$dir/data/postmaster.pid")
  total=$(ticks "$pm")
  for child in $(pgrep -P "$pm"); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

ours_one() { # round case template clients loadgen-args...
  local round=$1 case=$2 template=$3 clients=$4 out db0 app0 client0 db1 app1 client1
  shift 4
  wanted "$case" || return 0
  out="$run/ours-$round/$case-$clients.json"
  fresh_db "$template"
  start_server
  # Where the CPU goes: database, server and load generator, measured around the load
  # alone (the load generator is this shell's only child to exit meanwhile).
  db0=$(pg_ticks) app0=$(ticks "$server_pid") client0=$(ticks $$)
  ${pin_client[@]+"${pin_client[@]}"} "$loadgen" http --addr "$server_addr" --connections "$clients" \
    --seconds "$SECS" "$@" >"$out.load"
  client1=$(ticks $$) db1=$(pg_ticks) app1=$(ticks "$server_pid")
  jq --argjson db $((db1 - db0)) --argjson app $((app1 - app0)) --argjson client $((client1 - client0)) --argjson hz "$hz" \
    '. + {cpu_s: {db: ($db / $hz), server: ($app / $hz), client: ($client / $hz)}}' "$out.load" >"$out"
  rm -f "$out.load"
  stop_server
  jq -r --arg c "$case" '"\($c) c=\(.connections): \(.rps | floor) rps, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, non-2xx \(.bad_status), errors \(.errors); CPU per answer: db \(1e6 * .cpu_s.db / ([.ok, 1] | max) | floor) us, server \(1e6 * .cpu_s.server / ([.ok, 1] | max) | floor) us, client \(1e6 * .cpu_s.client / ([.ok, 1] | max) | floor) us"' "$out" >&2
}

# The same spread orders with the EMF line on and off, one after the other, the order
# swapped each round so that neither side always runs on the warmer machine.
metrics_pair() {
  local round=$1 setting
  local settings="on off"
  [ $((round % 2)) = 0 ] && settings="off on"
  for setting in $settings; do
    server_metrics=$setting
    ours_one "$round" "orders-metrics-$setting" gs_tpl_orders "$METRICS_CLIENTS" \
      --scenario orders --products "$ORDER_PRODUCTS" --tokens "$run/tokens.txt"
  done
  server_metrics=on
}

ours_round() {
  local round=$1 c
  mkdir -p "$run/ours-$round"
  metrics_pair "$round"
  [ "$ONLY" = metrics ] && return 0
  for c in $CLIENTS; do
    ours_one "$round" orders-hot gs_tpl_orders "$c" --scenario orders --products 1 --tokens "$run/tokens.txt"
    ours_one "$round" orders-spread gs_tpl_orders "$c" --scenario orders --products "$ORDER_PRODUCTS" --tokens "$run/tokens.txt"
    ours_one "$round" list gs_tpl_list "$c" --scenario list
  done
  # The catalogue at 100k products, at the largest client count, every round.
  local entry
  for entry in "${CATALOGUE_CASES[@]}"; do
    ours_one "$round" "${entry%% *}" gs_tpl_catalogue "${CLIENTS##* }" --scenario catalogue --path "${entry#* }"
  done
  # Reference rows without a peer, measured once, in the last round. The floor: a request
  # that touches no database (an unknown path, JSON 404) through the same server and load
  # generator, at the largest client count. Login: argon2-bound by design.
  if [ "$round" = "$ROUNDS" ]; then
    ours_one "$round" floor gs_tpl_list "${CLIENTS##* }" --scenario floor
    ours_one "$round" login gs_tpl_orders "$LOGIN_CLIENTS" --scenario login --users "$USERS" --password "$PASSWORD"
  fi
}

peer_round() {
  local round=$1
  PGURL=$admin_url PGBIN=$PGBIN SECONDS_PER_RUN=$SECS CLIENTS=$CLIENTS JSON_OUT="$PWD/$run/peer-$round.json" \
    ${pin_client[@]+"${pin_client[@]}"} "$PEER" 2>>"$run/peer.log" | tee "$run/peer-$round.txt" >&2
}

for round in $(seq "$ROUNDS"); do
  if [ "${BENCH_SKIP_PEER:-0}" != 1 ]; then
    log "round $round/$ROUNDS: peer (pgbench)"
    peer_round "$round"
  fi
  if [ "${BENCH_SKIP_OURS:-0}" != 1 ]; then
    log "round $round/$ROUNDS: ours (HTTP, DB_POOL_SIZE=$POOL)"
    ours_round "$round"
  fi
done

if [ "${BENCH_SKIP_LAMBDA:-0}" != 1 ]; then
  log "Lambda figures ($STARTS cold starts each, $WARM warm invocations)"
  psql_q -c "DROP DATABASE IF EXISTS gs_lambda" -c "CREATE DATABASE gs_lambda TEMPLATE gs_tpl_orders" "$admin_url"
  DATABASE_URL=$(db_url gs_lambda) RUST_LOG=warn "$gamestore" seed-admin --email admin@gamestore.com --password admin123
  user_token=$(head -n 1 "$run/tokens.txt")
  admin_token=$(psql_q -Atc "SELECT id || ' ' || role FROM users WHERE email = 'admin@gamestore.com'" "$(db_url gs_lambda)" | "$loadgen" tokens)
  # The order events/get-order.json and cancel-order.json name: order 1, the token user's
  # (the first bench user). update- and restock-product edit product 2, archive-product
  # archives product 1000, create-order buys product 1.
  order=$(psql_q -Atc "SELECT order_id FROM place_order((SELECT min(id) FROM users WHERE email LIKE 'bench%'), '{3}', '{1}', NULL, '3x1', FALSE, NULL, NULL, NULL)" "$(db_url gs_lambda)")
  [ "$order" = 1 ] || die "the fixtures' order should be order 1, got $order"
  # The functions that are not HTTP-triggered run against nothing on the network: the
  # worker mails to its log, the sweeper's queue is a closed loopback port (an empty outbox
  # never publishes), static credentials keep the SDK from probing instance metadata.
  export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench MAILER=log MAIL_LOG=$run/mail.log
  for fn in $FUNCTIONS; do
    # Warm figures for every HTTP function: the cost model prices their warm duration.
    warm=$WARM
    case $fn in email-worker | migrate | outbox-sweeper) warm=0 ;; esac
    event=events/$fn.json
    fn_env=()
    case $fn in
      email-worker) event=events/email-worker-sqs.json ;;
      migrate) event=$run/lambda-migrate.event.json && echo '{}' >"$event" ;;
      # A new account and a new SKU in every invocation, each from a network of its own
      # (loadgen's REPLACE_WITH_SEQUENCE): the fixtures as committed repeat one and would
      # price the 429 and the 409.
      register)
        event=$run/lambda-register.event.json
        jq '.isBase64Encoded = false
          | .body = "{\"email\": \"lambda-REPLACE_WITH_SEQUENCE@example.com\", \"password\": \"correct horse battery\"}"' \
          events/register.json >"$event"
        ;;
      create-product)
        event=$run/lambda-create-product.event.json
        jq '.body |= sub("LAMBDA-QUEST"; "LAMBDA-QUEST-REPLACE_WITH_SEQUENCE")' events/create-product.json >"$event"
        ;;
      outbox-sweeper) fn_env=(QUEUE_URL=http://127.0.0.1:9/000000000000/bench) ;;
    esac
    [ -f "$event" ] || die "no event fixture for $fn: add events/$fn.json (the tests and this bench invoke it)"
    env ${fn_env[@]+"${fn_env[@]}"} DATABASE_URL="$(db_url gs_lambda)" "$loadgen" lambda --bin "$target/$fn" --event "$event" \
      --starts "$STARTS" --warm "$warm" --user-token "$user_token" --admin-token "$admin_token" \
      >"$run/lambda/$fn.json"
    # A fixture that misses its route or its row would price an error path.
    jq -e '[.first_invocation_statuses[], (.warm_statuses | keys[] | tonumber)] | all(. < 300)' "$run/lambda/$fn.json" >/dev/null \
      || die "$fn answered $(jq -c '[.first_invocation_statuses, .warm_statuses]' "$run/lambda/$fn.json") to $event: fix the fixture"
  done
fi

machine="$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), shared with other builds (noisy)"
config="Rounds: $ROUNDS x ${SECS} s, alternating peer/ours. Server: DB_POOL_SIZE=$POOL, tokio workers ${WORKERS:-default (one per CPU)}, pinning ${PIN}. $settings."
if [ "${BENCH_NO_README:-0}" = 1 ]; then
  json_out=$run/latest.json
else
  json_out=bench/results/latest.json
fi
"$loadgen" report --dir "$run" --rounds "$ROUNDS" --json-out "$json_out" --markdown-out "$run/table.md" \
  --machine "$machine" --settings "$config"

if [ "${BENCH_NO_README:-0}" != 1 ]; then
  elapsed_so_far=$(($(date +%s) - started))
  # The Performance section is the README's last section: replace it whole.
  {
    sed '/^## Performance$/,$d' README.md
    echo "## Performance"
    echo
    echo "\`make bench\` measures the API over HTTP and the Lambda binaries against the peer baseline"
    echo "(the Go seed's SQL replayed with pgbench) on one fresh PostgreSQL, in alternating rounds;"
    echo "method, knobs and the analysis of each target are in [bench/README.md](bench/README.md),"
    echo "all numbers in [bench/results/latest.json](bench/results/latest.json). From a fresh clone it"
    echo "takes about $(((elapsed_so_far - build_secs + 30) / 60)) minutes here after its release build, which took $build_secs s in this run."
    echo "The targets are issue 18's, each a"
    echo "ratio inside the run; bench/README.md (Findings, sessions 7 and 8) shows, for each one missed, which"
    echo "part of its CPU budget cannot move and why. Latest run:"
    echo
    cat "$run/table.md"
  } >"$run/README.new"
  mv "$run/README.new" README.md
  log "wrote $json_out and the README's Performance section"
fi
elapsed=$(($(date +%s) - started))
log "make bench took $((elapsed / 60)) min $((elapsed % 60)) s"
