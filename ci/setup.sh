#!/usr/bin/env bash
# Installs everything the harness needs on Debian bookworm (run as root): the servers and tools
# from Debian's packages, a docker engine for the docker driver, and the harness with its Python
# dependencies in .venv/. Installing a server package does not start it; the harness runs its own
# instances. INTEROP_NO_DOCKER=1 skips the engine (the local driver does not need it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(prosody prosody-modules lua-unbound ejabberd jabberd2 sqlite3 util-linux libpcap0.8 chromium chromium-driver
  gcc libc6-dev libssl-dev tshark)
if [ -z "${INTEROP_NO_DOCKER:-}" ]; then
  packages+=(docker.io debootstrap)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ -z "${INTEROP_NO_DOCKER:-}" ]; then
  "$here/ci/docker-engine.sh"
fi
# the TLS key-log shim the servers run with (harness/trace/keylog_shim.py); rebuilt when changed
sh "$here/harness/trace/keylog/build.sh" "$here/build/keylog/sslkeylog.so"
python=${PYTHON:-python3}
if [ ! -x "$here/.venv/bin/python" ]; then
  "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q --upgrade pip >/dev/null
"$here/.venv/bin/pip" install -q -e "$here[test]"
echo "setup: ready ($("$here/.venv/bin/interop" --help >/dev/null && echo interop installed))"
