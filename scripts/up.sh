#!/usr/bin/env bash
# The local run (`./stack up`): redis-server, assistant, N conversation replicas and nginx as
# real processes (Procfile) under scripts/localrun.py: their logs together, the URL printed
# once every process is healthy, a process that dies restarted with backoff while the others
# keep serving, and Ctrl-C stopping all of them.
#
# Settings: the environment wins, then .env (or ENV_FILE), then the defaults below, which are
# the ones .env.example lists. SKIP_INSTALL=1 skips scripts/install.sh (the tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Read KEY=VALUE lines without running them as shell code, and never over a variable that is
# already set: a caller's HTTP_PORT=8080 beats the file's.
load_env_file() {
  local file=$1 line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    [ -n "${!key+x}" ] || export "$key=$value"
  done <"$file"
}
load_env_file "${ENV_FILE:-.env}"

export HTTP_PORT=${HTTP_PORT:-81}
export REDIS_PORT=${REDIS_PORT:-6380}
export ASSISTANT_PORT=${ASSISTANT_PORT:-8001}
export CONVERSATION_PORT=${CONVERSATION_PORT:-8100}
export CONVERSATION_REPLICAS=${CONVERSATION_REPLICAS:-2}
export READY_TIMEOUT=${READY_TIMEOUT:-300}
export RESTART_BACKOFF=${RESTART_BACKOFF:-0.5}
export RESTART_LIMIT=${RESTART_LIMIT:-5}
export REDIS_MAXMEMORY=${REDIS_MAXMEMORY:-256mb}
# A person reads these logs, all processes' interleaved: text unless set (the services' own
# default, for containers and log collectors, is json).
export LOG_FORMAT=${LOG_FORMAT:-text}
run_dir=${RUN_DIR:-.run}
static_root=${STATIC_ROOT:-chatui/dist}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  bash scripts/install.sh
fi

export PYTHON=${PYTHON:-$root/.venv/bin/python}
export NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
export PYTHONUNBUFFERED=1  # logs reach the terminal line by line
mkdir -p "$run_dir/redis" "$run_dir/nginx"
run_dir=$(cd "$run_dir" && pwd)
export RUN_DIR=$run_dir
# When root, nginx workers run as nobody and need to read the rendered prefix.
chmod 755 "$run_dir" "$run_dir/nginx"

if [ ! -f "$static_root/index.html" ]; then
  echo "up: $static_root/index.html is missing: build the UI (scripts/install.sh does)" >&2
  exit 1
fi
"$PYTHON" scripts/localrun.py ports

# The services find each other here; these are the local run's addresses, whatever .env says
# for docker.
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export ASSISTANT_URL="http://127.0.0.1:$ASSISTANT_PORT"

conversation=()
for ((i = 0; i < CONVERSATION_REPLICAS; i++)); do
  conversation+=(--conversation "127.0.0.1:$((CONVERSATION_PORT + i))")
done
"$PYTHON" nginx/render.py --listen "$HTTP_PORT" --static "$static_root" --prefix "$run_dir/nginx" \
  "${conversation[@]}" --output "$run_dir/nginx/nginx.conf"
"$NGINX_BIN" -t -q -p "$run_dir/nginx" -c "$run_dir/nginx/nginx.conf" -e stderr

echo "==> starting redis, assistant, $CONVERSATION_REPLICAS conversation replica(s), nginx" \
  "(the URL is printed once all are healthy; Ctrl-C stops them)"
exec "$PYTHON" scripts/localrun.py run
