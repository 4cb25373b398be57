"""The key-log shim: how the servers the harness runs write their TLS keys for the item's pcap.

``keylog/sslkeylog.c`` is loaded into every server process with ``LD_PRELOAD`` and appends each
TLS secret the process's OpenSSL derives to the file ``INTEROP_SSLKEYLOGFILE`` names. The
servers' own streams (server to server above all) then decrypt with the item's
``tls-keys.log`` like the actors' do. ``ci/setup.sh`` compiles it into :data:`BUILT_SHIM`; where
it has not been built (no compiler), the servers run without it and only the actors' TLS can be
read.
"""

from __future__ import annotations

from pathlib import Path

KEYLOG_VARIABLE = "INTEROP_SSLKEYLOGFILE"
SOURCE = Path(__file__).with_name("keylog") / "sslkeylog.c"
BUILD_SCRIPT = SOURCE.with_name("build.sh")
# under the project's own build folder (an editable install, as ci/setup.sh makes it)
BUILT_SHIM = Path(__file__).resolve().parents[2] / "build" / "keylog" / "sslkeylog.so"
# in a target's run directory: the shim copied there, and the key log its processes write
RUN_DIR_FOLDER = "keylog"
KEY_LOG_NAME = "tls-keys.log"


def built_shim() -> Path | None:
    """The compiled shim, or None when ``ci/setup.sh`` did not build it here."""
    return BUILT_SHIM if BUILT_SHIM.is_file() else None


def environment(shim: Path, key_log: Path) -> dict[str, str]:
    """What a server process's environment needs to load the shim and write ``key_log``."""
    return {"LD_PRELOAD": str(shim), KEYLOG_VARIABLE: str(key_log)}


def complete_lines(data: bytes, mid_file: bool) -> bytes:
    """The whole lines of a slice of a key log. ``mid_file``: the slice starts one byte before
    the cursor, so a line cut by the cursor (written while it was taken) is dropped with it; a
    last line still being written is dropped too."""
    if mid_file:
        data = data.partition(b"\n")[2]
    return data[: data.rfind(b"\n") + 1]
