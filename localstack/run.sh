#!/usr/bin/env bash
# LocalStack without Docker, for `make localstack`, `make dev-lambda` and `make test`.
#
#   localstack/run.sh install            venv in .venv-localstack/ (Python 3.13), once
#   localstack/run.sh start DIR [PORT]   start on 127.0.0.1:PORT (default 4566), data in DIR,
#                                        init hooks from localstack/init/; waits until ready
#   localstack/run.sh stop DIR           stop the instance started with DIR (by its pid)
#   localstack/run.sh foreground DIR [PORT]   the same, attached to the terminal
#
# Always loopback only: the default LocalStack gateway binds all interfaces, this one never.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-localstack"
# Pinned set measured to work without Docker (see the README's LocalStack section).
packages=("localstack-core[runtime]==2026.3.0" service_identity boto3)
constraints=("cbor2<6" "pyopenssl==25.1.0" "cryptography>=45.0.1,<46")

# shellcheck source=../scripts/lib.sh
. "$root/scripts/lib.sh"

install() {
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import localstack.runtime.main, boto3' 2>/dev/null; then
    return 0
  fi
  local python=${LOCALSTACK_PYTHON:-}
  if [ -z "$python" ]; then
    # pyenv shims exist for versions that are installed but not selected: try them too.
    local pyenv_root
    pyenv_root=$(pyenv root 2>/dev/null || true)
    for candidate in python3.13 ${pyenv_root:+"$pyenv_root"/versions/3.13*/bin/python3} \
      python3.12 ${pyenv_root:+"$pyenv_root"/versions/3.12*/bin/python3} python3.11; do
      if "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
        python=$candidate
        break
      fi
    done
  fi
  [ -n "$python" ] || { echo "LocalStack needs Python 3.11-3.13 (set LOCALSTACK_PYTHON)" >&2; exit 1; }
  log "installing LocalStack into .venv-localstack (about 90 s, once)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  local cfile
  cfile=$(mktemp)
  printf '%s\n' "${constraints[@]}" >"$cfile"
  "$venv/bin/pip" install -q --upgrade pip >/dev/null
  "$venv/bin/pip" install -q -c "$cfile" "${packages[@]}"
  rm -f "$cfile"
}

# prepare DIR: the FILESYSTEM_ROOT layout with our init hooks in it.
prepare() {
  local dir=$1
  mkdir -p "$dir/etc/localstack/init/ready.d" "$dir/var/lib/localstack" "$dir/tmp"
  cp "$root"/localstack/init/ready.d/* "$dir/etc/localstack/init/ready.d/"
}

environment() {
  local dir=$1 port=$2
  export GATEWAY_LISTEN="127.0.0.1:$port" GATEWAY_SERVER=hypercorn OVERRIDE_IN_DOCKER=0 \
    DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 FILESYSTEM_ROOT="$dir" \
    LOCALSTACK_HOST="127.0.0.1:$port" SERVICES=sqs,ses,secretsmanager EAGER_SERVICE_LOADING=1 \
    SQS_ENDPOINT_STRATEGY=path AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
}

ready() { curl -fsS "http://127.0.0.1:$1/_localstack/init/ready" 2>/dev/null | grep -q '"completed": *true'; }

start() {
  local dir port
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  port=${2:-4566}
  install
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    log "LocalStack already running (pid $(cat "$dir/pid"), port $(cat "$dir/port"))"
    return 0
  fi
  prepare "$dir"
  environment "$dir" "$port"
  (cd "$dir" && exec setsid "$venv/bin/python" -m localstack.runtime.main >"$dir/localstack.log" 2>&1) &
  echo $! >"$dir/pid"
  echo "$port" >"$dir/port"
  local i
  for i in $(seq 1 120); do
    if ready "$port"; then
      log "LocalStack ready on http://127.0.0.1:$port (pid $(cat "$dir/pid"), log $dir/localstack.log)"
      return 0
    fi
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { tail -n 30 "$dir/localstack.log" >&2; echo "LocalStack exited" >&2; exit 1; }
    sleep 0.5
  done
  tail -n 30 "$dir/localstack.log" >&2
  echo "LocalStack did not become ready in 60 s" >&2
  stop "$dir"
  exit 1
}

stop() {
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  stop_pid "$pid" 10
  rm -f "$dir/pid"
}

foreground() {
  local dir port
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  port=${2:-4566}
  install
  prepare "$dir"
  environment "$dir" "$port"
  cd "$dir"
  # exec keeps this pid: `start` and `make dev-lambda` see this instance as running.
  echo $$ >"$dir/pid"
  echo "$port" >"$dir/port"
  log "LocalStack on http://127.0.0.1:$port (Ctrl-C stops it)"
  exec "$venv/bin/python" -m localstack.runtime.main
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?data directory}" "${3:-}" ;;
  stop) stop "${2:?data directory}" ;;
  foreground) foreground "${2:?data directory}" "${3:-}" ;;
  *) echo "usage: $0 install | start DIR [PORT] | stop DIR | foreground DIR [PORT]" >&2; exit 2 ;;
esac
