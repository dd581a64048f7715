#!/usr/bin/env bash
# The whole suite: lint, types, layering, then unit, integration and e2e tests.
# pytest exits 5 when it collected no test; that is a failure here, never a silent pass.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
VENV=${SKIFF_VENV:-/opt/skiff/venv}
export PATH="$VENV/bin:$PATH"

echo "== ruff";   "$VENV/bin/ruff" check src tests bench
echo "== mypy";   "$VENV/bin/mypy"
echo "== layers"; "$VENV/bin/lint-imports"
echo "== pytest"
"$VENV/bin/python" -m pytest tests "$@"
