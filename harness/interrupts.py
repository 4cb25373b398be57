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

_depth = 0  # shielded blocks in progress, over all threads (targets start in parallel)
_pending: int | None = None
_lock = threading.Lock()


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
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            signum = _pending if _depth == 0 else None
            if signum is not None:
                _pending = None
        if signum is not None:
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
