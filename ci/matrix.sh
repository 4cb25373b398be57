#!/usr/bin/env bash
# The first README command: install everything, then run the default matrix (local driver, every
# installed Debian server, all scenarios). Extra arguments go to `interop run`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/ci/setup.sh"
exec "$here/.venv/bin/interop" run "$@"
