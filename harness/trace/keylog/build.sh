#!/bin/sh
# Compiles the key-log shim (sslkeylog.c next to this script) into OUT, unless OUT is newer
# than the source. Needs gcc and libssl-dev (headers only: the shim is not linked to libssl).
set -eu
out="$1"
src="$(dirname "$0")/sslkeylog.c"
[ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ] && exit 0
mkdir -p "$(dirname "$out")"
gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$out.tmp" "$src" -ldl -lpthread
mv "$out.tmp" "$out"
