"""A signal inside a shielded block is held until the block ends, then delivered."""

import os
import signal

import pytest

from harness import interrupts


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
