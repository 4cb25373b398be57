"""Packet capture of one target's traffic, as a pcap for an item's evidence.

The capture socket is opened and its filter attached in ``start()`` itself, before it returns:
from then on the kernel queues every matching packet, so no traffic of the item can slip past
a sniffer thread that is still starting up, and no sleep is needed to wait for one. ``stop()``
reads what the kernel still holds after the sniffer thread ends, so the last packets of an item
(its closing FIN, a late error stanza) are in the pcap too.

Filtering is done in the kernel with BPF when libpcap is there to compile the expression
(scapy calls it through ctypes); without libpcap the capture still works, with the same
selection made in Python per packet.

On a loopback interface a PF_PACKET listener sees every packet twice, once going out and once
coming in; the pcap keeps one copy, as tcpdump does, or every segment would look like a
retransmission in Wireshark.
"""

from __future__ import annotations

import ipaddress
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from scapy.arch.common import compile_filter, free_filter
from scapy.config import conf
from scapy.data import ARPHRD_LOOPBACK, DLT_EN10MB
from scapy.error import Scapy_Exception
from scapy.interfaces import resolve_iface
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw
from scapy.sendrecv import AsyncSniffer
from scapy.supersocket import SuperSocket
from scapy.utils import wrpcap

_START_TIMEOUT = 5.0
# An item's capture keeps at most this many packets: a peer that reconnects in a loop (seen:
# thousands of connections a minute when a certificate is refused) must not fill memory and
# disk; the first packets show how the loop starts.
MAX_PACKETS = 100_000


class PacketCapture:
    """Capture the traffic to and from some addresses on one interface into a pcap file."""

    def __init__(
        self, addresses: list[str], pcap_path: Path, iface: str = "lo", max_packets: int = MAX_PACKETS
    ) -> None:
        if not addresses:
            raise ValueError("a capture needs at least one address")
        self.addresses = list(addresses)
        # Normalised like scapy's dissected src/dst, for the Python fallback filter.
        self._wanted = {str(ipaddress.ip_address(address)) for address in addresses}
        self.pcap_path = pcap_path
        self.iface = iface
        self.bpf_filter = " or ".join(f"host {address}" for address in self.addresses)
        self.kernel_filter: bool | None = None  # known after start(): BPF in the kernel or not
        self._socket: SuperSocket | None = None
        self._sniffer: AsyncSniffer | None = None
        self._linktype = DLT_EN10MB
        self._stopped = False
        self.max_packets = max_packets
        self.truncated = False  # known after stop(): the capture reached max_packets

    def start(self) -> None:
        """Open the capture socket, start the sniffer thread, return once it is reading."""
        if self._socket is not None or self._stopped:
            raise RuntimeError("a PacketCapture starts once")
        loopback = resolve_iface(self.iface).type == ARPHRD_LOOPBACK
        # L2Socket drops the outgoing copy of each packet; on loopback the incoming copy is the
        # same packet. Elsewhere both directions are distinct traffic: keep them (L2listen).
        socket_class = conf.L2socket if loopback else conf.L2listen
        self.kernel_filter = _bpf_compiles(self.bpf_filter, self.iface)
        self._socket = socket_class(iface=self.iface, filter=self.bpf_filter if self.kernel_filter else None)
        self._linktype = conf.l2types.layer2num.get(self._socket.LL, DLT_EN10MB)
        started = threading.Event()
        self._sniffer = AsyncSniffer(
            opened_socket=self._socket,
            lfilter=None if self.kernel_filter else self._matches,
            store=True,
            count=self.max_packets,
            started_callback=started.set,
        )
        self._sniffer.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not started.wait(0.01):
            if self._sniffer.exception is not None or time.monotonic() > deadline:
                error, self._sniffer = self._sniffer.exception, None
                self._close_socket()
                raise RuntimeError(f"packet capture on {self.iface} did not start: {error}")

    def stop(self, scrub: Callable[[bytes], bytes] | None = None) -> Path:
        """Stop capturing and write the pcap (also when empty); later calls just return the path.

        ``scrub`` rewrites each TCP/UDP payload before it is written (same length: credentials
        are masked in place, see :mod:`harness.trace.scrub`)."""
        if self._stopped:
            return self.pcap_path
        self._stopped = True
        packets: list[Packet] = []
        try:
            if self._sniffer is not None:
                stopped_at = time.time()
                if self._sniffer.running:
                    self._sniffer.stop(join=True)
                else:  # it ended by itself on reaching max_packets
                    self._sniffer.join()
                packets.extend(self._sniffer.results or [])
                packets.extend(self._drain(stopped_at, self.max_packets - len(packets)))
            self.truncated = len(packets) >= self.max_packets
        finally:
            self._close_socket()
            if scrub is not None:
                packets = [_scrubbed(p, scrub) for p in packets]
            self.pcap_path.parent.mkdir(parents=True, exist_ok=True)
            wrpcap(str(self.pcap_path), packets, linktype=self._linktype)
        return self.pcap_path

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _drain(self, stopped_at: float, room: int) -> list[Packet]:
        """What the kernel queued before ``stopped_at`` that the sniffer thread did not read,
        at most ``room`` packets.

        Bounded by the packets' kernel timestamps, so traffic that keeps coming cannot keep
        stop() reading.
        """
        packets: list[Packet] = []
        assert self._socket is not None
        while len(packets) < room and select.select([self._socket], [], [], 0)[0]:
            packet = self._socket.recv()
            if packet is None:
                continue  # the outgoing copy of a loopback packet
            if packet.time > stopped_at:
                break
            if self.kernel_filter or self._matches(packet):
                packets.append(packet)
        return packets

    def _matches(self, packet: Packet) -> bool:
        """The BPF filter's selection, in Python, for when it cannot run in the kernel."""
        for layer in (IP, IPv6):
            if layer in packet:
                return packet[layer].src in self._wanted or packet[layer].dst in self._wanted
        return False

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()


def _bpf_compiles(expression: str, iface: str) -> bool:
    try:
        free_filter(compile_filter(expression, iface=iface))
    except (ImportError, OSError, Scapy_Exception):
        return False
    return True


def _scrubbed(packet: Packet, scrub: Callable[[bytes], bytes]) -> Packet:
    """The packet with its payload scrubbed; its transport checksum is recomputed when it changed."""
    if Raw not in packet:
        return packet
    load = bytes(packet[Raw].load)
    clean = scrub(load)
    if clean == load:
        return packet
    if len(clean) != len(load):
        raise ValueError("a scrubber must keep the payload's length")
    packet = packet.copy()
    packet[Raw].load = clean
    for layer in (TCP, UDP):
        if layer in packet:
            del packet[layer].chksum
    rebuilt = packet.__class__(bytes(packet))
    rebuilt.time = packet.time
    return rebuilt
