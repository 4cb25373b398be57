"""A signal inside a shielded block is held until the block ends, then delivered; a child that
stops cleanly on Ctrl-C is given the time to."""

import os
import signal
import subprocess
import sys

import pytest

from harness import interrupts
from harness.interrupts import run_to_the_end


def test_signal_outside_shield_interrupts_at_once():
    interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # a bytecode boundary for the handler to run at
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_signal_inside_shield_is_delivered_after_the_block():
    interrupts.install()
    done = []
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGINT"), interrupts.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)
            done.append("the block finished")
        assert done == ["the block finished"]
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


CHILD = """
import signal, sys, time
def stop(*_):
    time.sleep(0.3)  # stopping what it started
    open(sys.argv[1], "w").write("stopped")
    sys.exit(0)
signal.signal(signal.SIGINT, stop if sys.argv[2] == "clean" else signal.SIG_IGN)
print("started", flush=True)
time.sleep(60)
"""


def test_a_child_that_outlives_its_deadline_is_let_stop_cleanly(tmp_path) -> None:
    """subprocess.run would SIGKILL it; run_to_the_end sends SIGINT and waits for its cleanup."""
    marker = tmp_path / "stopped"
    with pytest.raises(subprocess.TimeoutExpired):
        run_to_the_end([sys.executable, "-c", CHILD, str(marker), "clean"], timeout=3, grace=30)
    assert marker.read_text() == "stopped"


def test_a_child_that_ignores_the_interrupt_is_killed_after_its_grace(tmp_path) -> None:
    marker = tmp_path / "stopped"
    with pytest.raises(subprocess.TimeoutExpired):
        run_to_the_end([sys.executable, "-c", CHILD, str(marker), "stubborn"], timeout=3, grace=0.5)
    assert not marker.exists()
