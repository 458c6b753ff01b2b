#!/usr/bin/env bash
# Run every check: the lock, lint, types, UI unit tests, then pytest (unit, integration, e2e).
# Extra arguments go to pytest, e.g. `./stack test tests/unit -k tokens`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install.sh --dev

echo "==> lock"; bash scripts/lock.sh --check
echo "==> ruff";  .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "==> mypy";  .venv/bin/mypy && .venv/bin/mypy scripts/supervise.py scripts/localrun.py scripts/gen_ui_types.py
echo "==> tsc, biome"; (cd chatui && npm run --silent typecheck && npm run --silent lint)
echo "==> vitest"; (cd chatui && npm run --silent test)
echo "==> pytest"; .venv/bin/pytest "$@"
