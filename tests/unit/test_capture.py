"""Packet capture on the loopback interface: the target's traffic, once, and nothing else."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from scapy.utils import rdpcap

from harness.trace import capture as capture_module
from harness.trace.capture import PacketCapture

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="packet capture needs root")

TARGET = "127.0.0.77"
OTHER = "127.0.0.78"


def exchange(address: str, payload: bytes) -> int:
    """One TCP connection to ``address`` that carries ``payload`` and closes; returns the port."""
    with socket.create_server((address, 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection((address, port), timeout=5) as client:
            conn, _ = server.accept()
            with conn:
                client.sendall(payload)
                received = b""
                while len(received) < len(payload):
                    received += conn.recv(65536)
                assert received == payload
    return port


def payloads(path: Path) -> list[bytes]:
    return [bytes(p[Raw].load) for p in rdpcap(str(path)) if Raw in p]


@pytest.mark.parametrize("kernel_filter", [True, False], ids=["bpf", "python-filter"])
def test_captures_the_target_and_not_its_neighbour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_filter: bool
) -> None:
    if not kernel_filter:

        def no_libpcap(*args: object, **kwargs: object) -> None:
            raise ImportError("libpcap is not available")

        monkeypatch.setattr(capture_module, "compile_filter", no_libpcap)
    cap = PacketCapture([TARGET], tmp_path / "target.pcap")
    cap.start()
    assert cap.kernel_filter is kernel_filter
    port = exchange(TARGET, b"<message>for the target</message>")
    exchange(OTHER, b"<message>for the neighbour</message>")
    path = cap.stop()  # right away: the closing segments must still be in the pcap

    assert path == tmp_path / "target.pcap"
    packets = rdpcap(str(path))
    # Each segment once, although a PF_PACKET socket on lo sees it going out and coming in.
    assert payloads(path) == [b"<message>for the target</message>"]
    assert all(TARGET in (p[IP].src, p[IP].dst) for p in packets)
    fins = {p[TCP].sport for p in packets if TCP in p and p[TCP].flags.F}
    assert port in fins and len(fins) == 2  # both sides closed, both captured


def test_several_addresses(tmp_path: Path) -> None:
    with PacketCapture([TARGET, OTHER], tmp_path / "both.pcap") as cap:
        exchange(TARGET, b"one")
        exchange(OTHER, b"two")
    assert sorted(payloads(cap.pcap_path)) == [b"one", b"two"]


def test_empty_capture_still_writes_a_pcap_and_stop_is_idempotent(tmp_path: Path) -> None:
    cap = PacketCapture([TARGET], tmp_path / "sub" / "empty.pcap")
    cap.start()
    first = cap.stop()
    assert first.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"  # pcap magic, little-endian
    assert len(rdpcap(str(first))) == 0
    assert cap.stop() == first
    with pytest.raises(RuntimeError):
        cap.start()


def test_never_started_capture_writes_an_empty_pcap(tmp_path: Path) -> None:
    assert len(rdpcap(str(PacketCapture([TARGET], tmp_path / "none.pcap").stop()))) == 0


def test_needs_valid_addresses(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        PacketCapture([], tmp_path / "x.pcap")
    with pytest.raises(ValueError):
        PacketCapture(["a.test"], tmp_path / "x.pcap")


def test_capture_stops_at_its_packet_limit_and_says_so(tmp_path: Path) -> None:
    cap = PacketCapture([TARGET], tmp_path / "limited.pcap", max_packets=5)
    cap.start()
    for index in range(4):  # each exchange is at least 6 packets (handshake, data, ack, close)
        exchange(TARGET, b"<message>storm %d</message>" % index)
    path = cap.stop()
    assert cap.truncated
    assert len(rdpcap(str(path))) == 5


def test_capture_under_its_limit_is_not_truncated(tmp_path: Path) -> None:
    cap = PacketCapture([TARGET], tmp_path / "whole.pcap", max_packets=1000)
    cap.start()
    exchange(TARGET, b"<message>calm</message>")
    path = cap.stop()
    assert not cap.truncated
    assert 6 <= len(rdpcap(str(path))) < 1000
