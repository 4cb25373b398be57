"""The run's DNS responder, queried over real UDP and TCP on a loopback address."""

from __future__ import annotations

import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from harness.environment.dns import RunDNS
from harness.protocols import srv_records

ADDRESS = "127.0.0.10"


@pytest.fixture
def dns() -> Iterator[RunDNS]:
    last_error: OSError | None = None
    for _ in range(20):
        server = RunDNS(ADDRESS, random.randint(20000, 60000))
        try:
            server.start()
        except OSError as exc:  # that port is taken for UDP or TCP: try another
            last_error = exc
            continue
        try:
            yield server
        finally:
            server.stop()
        return
    raise AssertionError(f"no free port on {ADDRESS}: {last_error}")


def ask(dns: RunDNS, name: str, qtype: str, *, tcp: bool = False) -> DNSRecord:
    raw = DNSRecord.question(name, qtype).send(dns.address, dns.port, tcp=tcp, timeout=2)
    return DNSRecord.parse(raw)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_a_and_srv_records(dns: RunDNS, tcp: bool) -> None:
    ports = {"c2s": 5222, "s2s": 5269, "c2s_tls": 5223, "router": 5347}  # router: no SRV service
    dns.add_host("a.test", "127.0.0.11", srv=srv_records("xmpp", ports))

    reply = ask(dns, "a.test", "A", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa
    assert [(str(rr.rname), str(rr.rdata)) for rr in reply.rr] == [("a.test.", "127.0.0.11")]

    for service, port in [
        ("_xmpp-client._tcp", 5222),
        ("_xmpp-server._tcp", 5269),
        ("_xmpps-client._tcp", 5223),
    ]:
        reply = ask(dns, f"{service}.A.TEST", "SRV", tcp=tcp)  # names are case-insensitive
        assert len(reply.rr) == 1
        srv = reply.rr[0].rdata
        assert (srv.port, str(srv.target)) == (port, "a.test.")

    assert ask(dns, "_xmpps-server._tcp.a.test", "SRV", tcp=tcp).header.rcode == RCODE.NXDOMAIN


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_unknown_names_are_nxdomain_and_known_names_have_no_aaaa(dns: RunDNS, tcp: bool) -> None:
    dns.add_host("a.test", "127.0.0.11")
    for name in ("b.test", "example.org", "sub.a.test", "_xmpp-server._tcp.a.test"):
        reply = ask(dns, name, "A" if not name.startswith("_") else "SRV", tcp=tcp)
        assert reply.header.rcode == RCODE.NXDOMAIN, name
        assert reply.rr == []
    reply = ask(dns, "a.test", "AAAA", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []


def test_records_change_while_running(dns: RunDNS) -> None:
    dns.add_host("a.test", "127.0.0.11", srv={"_xmpp-server._tcp": 5269})
    assert str(ask(dns, "a.test", "A").rr[0].rdata) == "127.0.0.11"

    dns.add_host("a.test", "127.0.0.21")  # re-registering replaces, SRV included
    assert str(ask(dns, "a.test", "A").rr[0].rdata) == "127.0.0.21"
    assert ask(dns, "_xmpp-server._tcp.a.test", "SRV").header.rcode == RCODE.NXDOMAIN

    dns.add_host("v6.test", "::1")
    assert [QTYPE[rr.rtype] for rr in ask(dns, "v6.test", "AAAA").rr] == ["AAAA"]
    assert ask(dns, "v6.test", "A").rr == []

    dns.remove_host("a.test")
    assert ask(dns, "a.test", "A").header.rcode == RCODE.NXDOMAIN


def test_stop_is_idempotent_and_releases_both_sockets(dns: RunDNS) -> None:
    with pytest.raises(OSError):  # UDP must not be shared: no SO_REUSEADDR
        RunDNS(dns.address, dns.port).start()
    dns.stop()
    dns.stop()
    with RunDNS(dns.address, dns.port) as again:
        again.add_host("a.test", "127.0.0.11")
        assert ask(again, "a.test", "A", tcp=True).rr
        assert ask(again, "a.test", "A").rr


def test_bad_input_is_refused(dns: RunDNS) -> None:
    with pytest.raises(ValueError, match="is not of the form _service._proto"):
        dns.add_host("a.test", "127.0.0.11", srv={"xmpp-client": 5222})
    with pytest.raises(ValueError):
        dns.add_host("a.test", "not-an-address")
    with pytest.raises(RuntimeError):
        dns.start()


def test_resolv_conf_and_hosts_files(tmp_path: Path) -> None:
    dns = RunDNS(ADDRESS)
    dns.add_host("b.test", "127.0.0.12")
    dns.add_host("a.test", "127.0.0.11")

    resolv = dns.write_resolv_conf(tmp_path / "resolv.conf")
    assert resolv.read_text() == f"nameserver {ADDRESS}\noptions timeout:1 attempts:1\n"

    hosts = dns.write_hosts(tmp_path / "hosts").read_text().splitlines()
    assert hosts[0].split() == ["127.0.0.1", "localhost"]
    assert [line.split() for line in hosts[2:]] == [["127.0.0.11", "a.test"], ["127.0.0.12", "b.test"]]
    for path in (resolv, tmp_path / "hosts"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    with pytest.raises(ValueError, match="port 53"):
        RunDNS(ADDRESS, 5353).write_resolv_conf(tmp_path / "other.conf")


def test_a_block_where_something_listens_is_not_taken(tmp_path) -> None:
    """Servers left by a killed run (no DNS responder marks their block any more) keep theirs."""
    from harness.environment.run_env import blocks_with_listeners

    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0B000F7F:1466 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"  # 127.15.0.11:5222 listening
        "   1: 0B00107F:1466 0B000F7F:D431 01 00000000:00000000 00:00000000 00000000     0\n"  # 127.16.0.11, established
        "   2: 0100000A:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0\n"  # 10.0.0.1: not loopback
    )
    assert blocks_with_listeners(table) == {15}
