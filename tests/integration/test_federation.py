"""Federation on the real Debian servers: every pair scenario over the 9 ordered pairs, with
evidence from both sides, and no server-to-server state carried from one item into the next."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from harness.engine import run_item
from harness.scenario.loader import load_scenario
from harness.topology import Selection, Topology
from tests.integration.conftest import LOCAL_TARGETS, ROOT, error_cells

PAIRS = {(o, r) for o, r in itertools.product(LOCAL_TARGETS, repeat=2)}


def test_every_federation_scenario_ran_on_the_nine_ordered_pairs(fed_run, fed_scenarios):
    """Pair scenarios over the 9 ordered pairs; one whose only role is the receiver (a peer played
    by the harness meets it) on each target."""
    got = {(i.scenario_id, i.pair or tuple(i.selected_names)) for i in fed_run.run.items}
    want = {(s.id, pair) for s in fed_scenarios if s.is_pair for pair in PAIRS}
    want |= {(s.id, (t,)) for s in fed_scenarios if not s.is_pair for t in LOCAL_TARGETS}
    assert len(PAIRS) == 9 and any(not s.is_pair for s in fed_scenarios)
    assert want - got == set(), f"missing items: {sorted(want - got)}"


def test_no_error_cells(fed_run):
    assert error_cells(fed_run) == []


def test_same_product_pairs_use_a_second_instance_on_its_own_domain(fed_run):
    for item in (i for i in fed_run.run.items if i.is_pair):
        origin, receiver = (next(t for t in item.targets if t.role == r) for r in ("origin", "receiver"))
        assert origin.name != receiver.name and origin.domain != receiver.domain, item.item_id
        assert receiver.instance_of in LOCAL_TARGETS and origin.instance_of == origin.name
        if origin.product == receiver.product:
            assert receiver.name == f"{origin.name}-2", item.item_id
            assert f"[{origin.name}->{origin.name}-2]" in item.item_id


def test_evidence_from_both_sides(fed_run):
    """Both servers' log slices, the actors' stream logs and the pcap of the pair's traffic."""
    for item in fed_run.run.items:
        if not item.evidence:  # a role's target lacks the knob: decided before anything ran
            assert item.outcome == "unsupported" and "knob" in item.reason, item.item_id
            continue
        names = set(item.evidence)
        for target in item.targets:
            assert any(n.startswith(f"{target.name}.") for n in names), (item.item_id, target.name)
        assert any(n.endswith(".xmpp.log") for n in names), item.item_id
        pcap = fed_run.out / item.evidence["pcap"]
        assert pcap.stat().st_size > 24, f"{item.item_id}: empty capture"


def test_matrix_has_a_grid_per_scenario_and_a_pair_summary(fed_run, fed_scenarios):
    matrix = (fed_run.out / "matrix.md").read_text()
    for scenario in (s for s in fed_scenarios if s.is_pair):
        section = matrix.split(f"### {scenario.id}:")[1].split("###")[0]
        header = next(line for line in section.splitlines() if line.startswith("| origin"))
        assert sorted(c.strip() for c in header.strip("|").split("|")[1:]) == sorted(LOCAL_TARGETS)
        rows = [line for line in section.splitlines() if line.startswith("| ") and "origin" not in line]
        assert len(rows) == 3, section
    assert "### Pairs: passed/total over all pair scenarios of this category" in matrix


# -- no state carried from one item into the next ------------------------------------------------


def syns_to(pcap: Path, address: str, port: int) -> int:
    """New TCP connections (SYN without ACK) to ``address:port`` in a capture."""
    return sum(
        1
        for packet in rdpcap(str(pcap))
        if packet.haslayer(TCP)
        and packet[IP].dst == address
        and packet[TCP].dport == port
        and packet[TCP].flags & 0x12 == 0x02
    )


@pytest.mark.parametrize(
    ("origin", "receiver"), [("prosody", "ejabberd"), ("ejabberd", "jabberd2"), ("jabberd2", "prosody")]
)
def test_reset_makes_the_origin_open_a_new_stream(origin, receiver, tmp_path, work_dir, monkeypatch):
    """Without a reset the second item rides the first one's stream (no new connection, so
    the cell would not test stream set-up); after the origin's reset it must connect again."""
    monkeypatch.setenv("INTEROP_WORKDIR", str(work_dir))
    scenario = load_scenario(ROOT / "scenarios" / "federation" / "fed.s2s.message-delivery.yaml")
    topology = Topology(Selection(targets=[origin, receiver]), ROOT / "fixtures" / "targets", tmp_path)
    names = {"origin": origin, "receiver": receiver}
    try:
        syns = {}
        for label, reset in (("fresh", True), ("kept", False), ("origin-reset", None)):
            targets = topology.targets(names, reset=bool(reset))
            if reset is None:
                targets["origin"].reset_peer_state()
            run = run_item(scenario, targets, tmp_path / label, topology)
            assert run.verdict.outcome.value == "pass", (label, run.verdict.reason)
            syns[label] = syns_to(run.evidence["pcap"], targets["receiver"].address, 5269)
        assert syns["fresh"] >= 1 and syns["origin-reset"] >= 1, syns
        assert syns["kept"] == 0, syns
    finally:
        topology.close()


# -- authentication modes are knobs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "receiver", "knobs", "delivered", "log_says"),
    [
        # ejabberd accepting certificates only refuses jabberd2, which has dialback only
        ("jabberd2", "ejabberd", {"s2s_auth": "certificate"}, False, None),
        # the same pair in ejabberd's packaged mode ("either") goes through by dialback
        ("jabberd2", "ejabberd", {}, True, "Accepted inbound s2s dialback authentication jabberd2.test"),
        # prosody accepting dialback only: ejabberd, which prefers EXTERNAL, falls back to it
        (
            "ejabberd",
            "prosody",
            {"s2s_auth": "dialback"},
            True,
            "Accepted outbound s2s dialback authentication",
        ),
        # prosody's packaged mode: ejabberd authenticates with its certificate (SASL EXTERNAL)
        ("ejabberd", "prosody", {}, True, "Accepting SASL EXTERNAL identity from ejabberd.test"),
    ],
)
def test_authentication_mode_knobs_change_how_a_pair_authenticates(
    origin, receiver, knobs, delivered, log_says, tmp_path, work_dir, monkeypatch
):
    monkeypatch.setenv("INTEROP_WORKDIR", str(work_dir))
    scenario = load_scenario(ROOT / "scenarios" / "federation" / "fed.s2s.message-delivery.yaml")
    topology = Topology(Selection(targets=[origin, receiver]), ROOT / "fixtures" / "targets", tmp_path)
    try:
        targets = topology.targets({"origin": origin, "receiver": receiver}, {"receiver": knobs}, reset=True)
        assert {k: targets["receiver"].knobs[k] for k in knobs} == knobs
        run = run_item(scenario, targets, tmp_path / "item", topology)
        assert (run.verdict.outcome.value == "pass") is delivered, run.verdict.reason
        if log_says:
            slices = [p for p in run.evidence.values() if p.name.startswith((f"{origin}.", f"{receiver}."))]
            assert any(log_says in p.read_text(errors="replace") for p in slices), (log_says, slices)
    finally:
        topology.close()
