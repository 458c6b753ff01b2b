#!/usr/bin/env bash
# Lock the Python dependencies: uv.lock from pyproject.toml's ranges, then one requirements file
# with hashes per install profile in requirements/, which scripts/install.sh and the images
# install with `pip install --require-hashes`. Run it after editing the dependencies in
# pyproject.toml (`uv lock --upgrade-package X` first to move one package within its range).
# `--check` changes nothing and fails when uv.lock or a requirements file is stale
# (scripts/test.sh runs it; it needs no network).
set -euo pipefail
cd "$(dirname "$0")/.."

uv=${UV:-.venv/bin/uv}
check=0
[ "${1:-}" = "--check" ] && check=1

# profile -> the extras it installs.
declare -A profiles=(
  [assistant]="assistant production"        # assistant's image
  [conversation]="conversation production"  # conversation's image
  [run]="all"                               # ./stack up (scripts/install.sh)
  [dev]="all dev bench"                     # ./stack test (scripts/install.sh --dev)
  [bench]="bench"                           # python -m bench alone
)

export_profile() {
  local args=()
  for extra in ${profiles[$1]}; do args+=(--extra "$extra"); done
  "$uv" export --quiet --frozen --format requirements-txt --no-emit-project "${args[@]}"
}

if [ "$check" = 1 ]; then
  "$uv" lock --check --offline --quiet ||
    { echo "uv.lock does not match pyproject.toml: run scripts/lock.sh" >&2; exit 1; }
  stale=0
  for profile in "${!profiles[@]}"; do
    if ! export_profile "$profile" | cmp -s - "requirements/$profile.txt"; then
      echo "requirements/$profile.txt does not match uv.lock: run scripts/lock.sh" >&2
      stale=1
    fi
  done
  exit "$stale"
fi

"$uv" lock --quiet
mkdir -p requirements
for profile in "${!profiles[@]}"; do
  export_profile "$profile" >"requirements/$profile.txt"
done
echo "==> uv.lock and requirements/{$(IFS=,; echo "${!profiles[*]}")}.txt written"
