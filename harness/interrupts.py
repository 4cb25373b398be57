"""Ctrl-C and SIGTERM end a run cleanly: both become KeyboardInterrupt, never mid-bookkeeping.

pytest turns a KeyboardInterrupt into an orderly end of the session (the plugin then stops every
target). The only hazard is an interrupt between starting a process and recording it: such a
process would never be stopped. Code that starts processes wraps that moment in ``shielded()``;
a signal arriving inside is delivered when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_depth = 0
_pending: int | None = None


def _handler(signum: int, frame: Any) -> None:
    global _pending
    if _depth:
        _pending = signum
        return
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def install() -> None:
    """Route SIGINT and SIGTERM through the shield (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)
        signal.signal(signal.SIGTERM, _handler)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM until the block is done, then deliver it."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            signum, _pending = _pending, None
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
