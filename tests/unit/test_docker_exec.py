"""harness.targets.docker_exec: splitting the engine's multiplexed exec output."""

from __future__ import annotations

import struct

import pytest

from harness.targets.docker_exec import demultiplex


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def test_frames_go_to_their_stream_in_order() -> None:
    raw = frame(1, b"out one ") + frame(2, b"err one") + frame(1, b"out two") + frame(1, b"")
    assert demultiplex(raw) == (b"out one out two", b"err one")


def test_a_payload_that_looks_like_a_header_is_data() -> None:
    tricky = b"\x02\x00\x00\x00\x00\x00\x00\x05hello"  # a header's shape inside stdout
    assert demultiplex(frame(1, tricky) + frame(2, b"e")) == (tricky, b"e")


def test_a_cut_stream_keeps_what_arrived_and_nothing_is_empty() -> None:
    assert demultiplex(frame(1, b"complete") + frame(1, b"cut off")[:-3]) == (b"completecut ", b"")
    assert demultiplex(b"") == (b"", b"")


def test_output_that_is_not_multiplexed_is_refused_not_misread() -> None:
    with pytest.raises(ValueError, match="not a multiplexed stream"):
        demultiplex(b"plain text output, as with a tty")
