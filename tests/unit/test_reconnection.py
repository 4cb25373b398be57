"""How the peer judges a target's connections to it (RFC 6120 §3.3 back-off)."""

from __future__ import annotations

import pytest

from harness.protocols.xmpp.reconnection import judge
from harness.verdict import Failed


def test_growing_intervals_pass_with_the_times_as_the_observation() -> None:
    seen = judge([10.5, 11.5, 13.5, 17.5], 10.0, 40, backoff=True)
    assert seen.exercised
    assert (
        seen.text
        == "4 connection(s) in 40 s, at +0.5 s, +1.5 s, +3.5 s, +7.5 s; intervals 1.0 s, 2.0 s, 4.0 s"
    )


def test_one_connection_per_stanza_at_a_steady_pace_fails() -> None:
    with pytest.raises(
        Failed, match=r"no back-off, interval 2 \(1.0 s\) is not longer than interval 1 \(1.0 s\)"
    ):
        judge([1.0, 2.0, 3.0], 0.0, 40, backoff=True)


def test_no_reconnection_passes_and_no_connection_tests_nothing() -> None:
    assert judge([3.0], 0.0, 40, backoff=True).text == "1 connection(s) in 40 s, at +3.0 s"
    assert judge([3.0, 9.0], 0.0, 40, backoff=True).exercised
    assert not judge([], 0.0, 40, backoff=True).exercised


def test_without_backoff_the_count_is_only_measured() -> None:
    assert judge([1.0, 2.0, 3.0], 0.0, 40, backoff=False).exercised
