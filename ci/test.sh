#!/usr/bin/env bash
# The second README command: install everything, then run the harness's own tests (unit,
# integration against the real servers, and the proofs that every scenario can fail).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/ci/setup.sh"
cd "$here"
"$here/.venv/bin/ruff" check harness tests
exec "$here/.venv/bin/python" -m pytest "$@"
