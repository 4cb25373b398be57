"""The run's own DNS responder: A and SRV records for the run's domains, NXDOMAIN for the rest.

Servers resolve each other's domains for federation, and a hosts file alone is not enough:
some servers resolve through their own DNS library and ignore /etc/hosts by default, others
ask for SRV records first and wait over a minute per lookup when no DNS server answers. So
every server process gets a private resolv.conf pointing here, and this responder answers
every question at once from a record set the run controls, and can change while servers are
running (a federation check may point a domain elsewhere mid-run). Records carry TTL 0 so no
resolver keeps a stale answer.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import socketserver
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from dnslib import AAAA, QTYPE, RCODE, RR, SRV, A, DNSLabel, DNSRecord
from dnslib.server import DNSHandler, DNSLogger, DNSServer

_log = logging.getLogger(__name__)
_SRV_LABEL = re.compile(r"_[a-z0-9-]+\._(tcp|udp)")

_TTL = 0
# resolver options of every server process: one try, one second (an unknown name fails fast)
RESOLV_OPTIONS = ("timeout:1", "attempts:1")
# A TCP client that connects and sends nothing must not hold a handler thread forever.
_TCP_IDLE_TIMEOUT = 5.0
_POLL_INTERVAL = 0.05
# how long lookup() waits for another DNS server's answer
QUERY_TIMEOUT_S = 2.0


def _key(name: str | DNSLabel) -> str:
    return str(name).rstrip(".").lower()


class _ServerMixin:
    """Threaded socketserver whose errors go to the log instead of stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("DNS request from %s failed", client_address, exc_info=True)


class _UDPServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.UDPServer):
    # No SO_REUSEADDR: on Linux it would let a second responder bind the same UDP address and
    # silently take over its queries, instead of failing loudly.
    allow_reuse_address = False


class _TCPServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True  # for TCP it only skips TIME_WAIT; a second listener still fails

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        conn.settimeout(_TCP_IDLE_TIMEOUT)
        return conn, address


def _server_class(base: type[socketserver.BaseServer], address: str) -> type[socketserver.BaseServer]:
    if ipaddress.ip_address(address).version == 6:
        return type(base.__name__ + "6", (base,), {"address_family": socket.AF_INET6})
    return base


class RunDNS:
    """An authoritative-for-everything DNS responder on one loopback address, UDP and TCP."""

    def __init__(self, address: str, port: int = 53) -> None:
        ipaddress.ip_address(address)  # fail here, not in a server thread
        self.address = address
        self.port = port
        self._lock = threading.Lock()
        self._records: dict[str, list[RR]] = {}
        self._hosts: dict[str, str] = {}
        self._names: dict[str, list[str]] = {}  # domain -> the record names published for it
        self._servers: list[DNSServer] = []

    def add_host(self, domain: str, address: str, *, srv: Mapping[str, int] | None = None) -> None:
        """Publish ``domain`` at ``address`` (A or AAAA), and an SRV record per service label.

        ``srv`` maps service labels (``_xmpp-client._tcp``: the protocol family knows its own)
        to ports. Registering a domain again replaces all its records, also while running.
        """
        for label in srv or {}:
            if not _SRV_LABEL.fullmatch(label):
                raise ValueError(f"SRV label {label!r} is not of the form _service._proto")
        domain = _key(domain)
        ip = ipaddress.ip_address(address)
        rdata = A(str(ip)) if ip.version == 4 else AAAA(str(ip))
        records = {domain: [RR(domain, QTYPE.A if ip.version == 4 else QTYPE.AAAA, rdata=rdata, ttl=_TTL)]}
        for label, port in (srv or {}).items():
            name = f"{label}.{domain}"
            records[name] = [
                RR(name, QTYPE.SRV, rdata=SRV(priority=0, weight=0, port=port, target=domain), ttl=_TTL)
            ]
        with self._lock:
            self._drop(domain)
            self._records.update(records)
            self._hosts[domain] = str(ip)
            self._names[domain] = list(records)

    def remove_host(self, domain: str) -> None:
        """Withdraw a domain and its SRV records: from now on it is NXDOMAIN."""
        with self._lock:
            self._drop(_key(domain))

    def _drop(self, domain: str) -> None:
        self._hosts.pop(domain, None)
        for name in self._names.pop(domain, []):
            self._records.pop(name, None)
        self._records.pop(domain, None)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        """dnslib's resolver hook: answer from the record set, NXDOMAIN for unknown names."""
        reply = request.reply()
        qtype = request.q.qtype
        with self._lock:
            records = self._records.get(_key(request.q.qname))
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for record in records:
            if qtype in (record.rtype, QTYPE.ANY):
                reply.add_answer(record)
        return reply  # a known name without this type: NOERROR, no answers

    def start(self) -> None:
        """Serve UDP and TCP on address:port in background threads; returns once bound."""
        if self._servers:
            raise RuntimeError("RunDNS is already running")
        logger = DNSLogger(log="-request", prefix=False, logf=_log.debug)
        try:
            for base in (_UDPServer, _TCPServer):
                server = DNSServer(
                    self, self.address, self.port, logger=logger, server=_server_class(base, self.address)
                )
                self._servers.append(server)
                # dnslib's start_thread() polls every 0.5 s, which is what each stop() would wait.
                server.thread = threading.Thread(
                    target=server.server.serve_forever,
                    kwargs={"poll_interval": _POLL_INTERVAL},
                    name=f"RunDNS {self.address}:{self.port}",
                    daemon=True,
                )
                server.thread.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop serving and release both sockets; safe to call more than once."""
        servers, self._servers = self._servers, []
        for server in servers:
            if getattr(server, "thread", None) is not None:
                server.stop()
                server.thread.join()
            server.server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def write_resolv_conf(self, path: Path) -> Path:
        """Write a resolv.conf that sends every lookup here and gives up after one second.

        resolv.conf has no port syntax, so a responder on another port than 53 cannot be
        named in one: refuse rather than write a file that points at nothing.
        """
        if self.port != 53:
            raise ValueError(f"resolv.conf can only name a server on port 53, this one is on {self.port}")
        return _write(path, f"nameserver {self.address}\noptions {' '.join(RESOLV_OPTIONS)}\n")

    def hosts(self) -> dict[str, str]:
        """Every registered domain and its address (what the hosts file lists)."""
        with self._lock:
            return dict(self._hosts)

    def write_hosts(self, path: Path) -> Path:
        """Write a hosts file with the localhost lines and every registered domain."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{address}\t{domain}" for domain, address in sorted(self.hosts().items())]
        return _write(path, "\n".join(lines) + "\n")


def lookup(server: str, domain: str, port: int = 53) -> str | None:
    """The A record a DNS server gives for ``domain`` (None: no such name, or no address);
    OSError when it does not answer."""
    answer = DNSRecord.parse(DNSRecord.question(domain, "A").send(server, port, timeout=QUERY_TIMEOUT_S))
    return next((str(rr.rdata) for rr in answer.rr if rr.rtype == QTYPE.A), None)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o644)  # bind-mounted over /etc files for servers that run as their own users
    return path
