"""Ctrl-C and SIGTERM end a run cleanly: both become KeyboardInterrupt, never mid-bookkeeping.

pytest turns a KeyboardInterrupt into an orderly end of the session (the plugin then stops every
target). The only hazard is an interrupt between starting a process and recording it: such a
process would never be stopped. Code that starts processes wraps that moment in ``shielded()``;
a signal arriving inside is delivered when the block ends.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
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


def run_to_the_end(
    argv: list[str],
    timeout: float | None = None,
    grace: float = 120.0,
    started: Callable[[int], None] | None = None,
    **popen: Any,
) -> subprocess.CompletedProcess[str]:
    """Run a child that stops cleanly on Ctrl-C itself (``interop run``: it stops the servers it
    started). ``subprocess.run`` would SIGKILL it on an interrupt or a timeout, leaving its servers
    behind; here the child gets SIGINT (again, if the terminal already sent it one) and ``grace``
    seconds to finish stopping before it is killed, then the interrupt or timeout goes on."""
    with subprocess.Popen(argv, text=True, **popen) as child:
        if started is not None:
            started(child.pid)  # e.g. the owner label of the containers it makes
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except BaseException:
            child.send_signal(signal.SIGINT)
            try:
                child.communicate(timeout=grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            raise
    return subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)
