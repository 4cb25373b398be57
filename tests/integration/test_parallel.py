"""Items run concurrently (the default) and keep exact evidence and the serial run's verdicts.

Every worker of a parallel run has targets of its own on its own loopback block ``127.B/16``.
Two items that ran at the same time on the same product therefore ran on two server processes,
and everything in their evidence (pcap, stream logs, server log slices) carries addresses of
their own worker's block only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from itertools import combinations
from pathlib import Path

from scapy.layers.inet import IP
from scapy.utils import rdpcap

from harness.results import ItemResult
from tests.integration.conftest import InteropRun

IPV4 = re.compile(rb"\b127\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


def _block(address: str) -> int:
    return ipaddress.ip_address(address).packed[1]


def _window(item: ItemResult) -> tuple[float, float]:
    start = dt.datetime.fromisoformat(item.started_at).timestamp()
    waited = sum(step["duration_s"] for step in item.setup)
    return start, start + waited + item.duration_s


# The kernel's source address for a connection a server opens without binding (ejabberd's s2s
# out): no worker owns it, and a capture keeps such a packet only when its other end is one of
# the item's own targets.
UNBOUND_SOURCE = "127.0.0.1"


def _pcap_strangers(run: InteropRun, item: ItemResult, own: set[int]) -> list[str]:
    """Packets of the item's pcap with neither end in the item's own block."""
    packets = [p for p in rdpcap(str(run.out / item.evidence["pcap"])) if IP in p]
    assert packets, f"{item.item_id}: empty capture"
    return [f"{p[IP].src}->{p[IP].dst}" for p in packets if not {_block(p[IP].src), _block(p[IP].dst)} & own]


def _addresses_in_logs(run: InteropRun, item: ItemResult) -> set[str]:
    """Every address the item's stream logs and server log slices mention."""
    found: set[str] = set()
    for rel in item.evidence.values():
        path = run.out / rel
        if path.suffix in (".log", ".out", ".err"):
            found |= {m.decode() for m in IPV4.findall(path.read_bytes())}
    return found - {UNBOUND_SOURCE}


def test_the_parallel_run_gives_the_serial_verdicts_item_by_item(auth_run, auth_serial_run):
    parallel, serial = auth_run.run, auth_serial_run.run
    assert len({item.worker for item in parallel.items}) > 1, "the default run is parallel"
    assert {item.worker for item in serial.items} == {"main"}
    verdicts = {item.item_id: item.outcome for item in serial.items}
    assert verdicts and {item.item_id: item.outcome for item in parallel.items} == verdicts
    assert auth_run.code == auth_serial_run.code


def test_concurrent_items_on_one_product_have_disjoint_evidence(auth_run):
    run = auth_run.run
    items = [item for item in run.items if item.evidence.get("pcap")]
    concurrent = [
        (a, b)
        for a, b in combinations(items, 2)
        if a.targets[0].product == b.targets[0].product
        and a.worker != b.worker
        and _window(a)[0] < _window(b)[1]
        and _window(b)[0] < _window(a)[1]
    ]
    assert concurrent, "no two items on one product ran at the same time"
    own_blocks = {item.item_id: {_block(t.address) for t in item.targets} for item in items}
    for item in items:
        own = own_blocks[item.item_id]
        assert not _pcap_strangers(auth_run, item, own), item.item_id
        seen = _addresses_in_logs(auth_run, item)
        assert seen, f"{item.item_id}: no address in its logs"
        strangers = {a for a in seen if _block(a) not in own}
        assert not strangers, f"{item.item_id} ({item.worker}): evidence mentions {strangers}"
    for a, b in concurrent:
        assert own_blocks[a.item_id].isdisjoint(own_blocks[b.item_id]), (a.item_id, b.item_id)
        assert a.targets[0].address != b.targets[0].address


def test_each_worker_keeps_its_servers_in_a_folder_of_its_own(auth_run):
    workers = {item.worker for item in auth_run.run.items}
    for worker in workers:
        assert list((auth_run.work / worker).glob("targets/*/accounts.txt")), worker
    assert not (auth_run.work / "targets").exists()


def test_the_run_has_one_certificate_authority(auth_run):
    """Every worker's targets got their certificates from the one CA the reports carry."""
    ca = (auth_run.out / "environment" / "run-ca.crt").read_bytes()
    workers = {item.worker for item in auth_run.run.items}
    assert (auth_run.work / "authorities" / "ca" / "ca.crt").read_bytes() == ca
    assert all(not (auth_run.work / w / "environment" / "ca").exists() for w in workers)


def test_a_worker_writes_no_report_of_its_own(auth_run):
    written = sorted(p.name for p in Path(auth_run.out).iterdir() if p.is_file())
    assert written == [
        "behaviour.html",
        "behaviour.md",
        "index.html",
        "junit.xml",
        "matrix.md",
        "results.json",
    ]
