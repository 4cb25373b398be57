"""An external target's accounts: mapped per item, cleared before and after each item by the
protocol's keeper, recorded in the item's evidence (harness/targets/external.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import resources
from harness.actors import ActorContext, register_account_keeper
from harness.cli import accounts_for_every_scenario
from harness.protocols.xmpp.account_state import PRIVATE_STORAGE
from harness.scenario.loader import load_all, scenario_files
from harness.targets.external import ExternalTarget
from harness.verdict import TargetError, Unsupported

PROTOCOL = "test-keeper"
CALLS: list[str] = []  # jids the keeper was called for, in order
REFUSED: set[str] = set()  # jids the keeper cannot bring to a known state


@register_account_keeper(PROTOCOL)
async def _keeper(ctx: ActorContext) -> list[str]:
    assert ctx.account is not None
    CALLS.append(ctx.account.jid)
    if ctx.account.jid in REFUSED:
        raise TargetError("removing roster item x@y: refused (not-allowed)")
    return [f"roster items: none ({ctx.account.password})"]


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()
    REFUSED.clear()


def external(tmp_path: Path, users: list[str]) -> ExternalTarget:
    data = {
        "name": "vendor-x",
        "product": "x",
        "domain": "x.test",
        "host": "127.0.0.50",
        "ports": {"c2s": 5222},
        "verify": False,
        "protocol": PROTOCOL,
        "accounts": [{"user": u, "password": f"pw-{u}"} for u in users],
    }
    return ExternalTarget(data, tmp_path / "x.target.yaml")


def test_each_item_takes_the_first_accounts_it_needs(tmp_path: Path) -> None:
    target = external(tmp_path, ["t1", "t2", "t3"])
    target.begin_item(["pdp-alice", "pdp-bob"])
    assert target.account("pdp-alice").jid == "t1@x.test"
    assert target.account("pdp-bob").jid == "t2@x.test"
    assert target.account("pdp-alice").jid == "t1@x.test"  # one name, one account within an item
    assert CALLS == ["t1@x.test", "t2@x.test"]  # cleared before first use, once
    target.begin_item(["blk-bob", "blk-alice", "blk-carol"])
    assert target.account("blk-bob").jid == "t1@x.test"  # the next item starts over
    assert target.account("blk-alice").jid == "t2@x.test"
    assert target.account("blk-carol").jid == "t3@x.test"


def test_an_item_needing_more_accounts_than_listed_is_an_error_naming_both(tmp_path: Path) -> None:
    target = external(tmp_path, ["t1", "t2"])
    for _ in range(3):  # however many items ran before, an item needing 2 gets them
        target.begin_item(["a", "b"])
        target.account("a")
        target.account("b")
        target.end_item()
    with pytest.raises(
        TargetError, match=r"needs 3 accounts on vendor-x \(a, b, c\) but its target file lists 2"
    ):
        target.begin_item(["a", "b", "c"])
    assert CALLS.count("t1@x.test") == 6  # before and after each of the three items


def test_a_declared_password_stays_unsupported(tmp_path: Path) -> None:
    target = external(tmp_path, ["t1"])
    target.begin_item(["saslprep-nfd"])
    with pytest.raises(Unsupported, match="declared password"):
        target.account("saslprep-nfd", "café")
    assert CALLS == []


def test_an_account_that_cannot_be_cleared_is_an_error_with_the_reason(tmp_path: Path) -> None:
    target = external(tmp_path, ["t1", "t2"])
    REFUSED.add("t1@x.test")
    target.begin_item(["alice"])
    with pytest.raises(TargetError, match=r"cannot bring t1@x.test to a known state: removing roster item"):
        target.account("alice")


def test_the_item_evidence_records_both_clears_of_its_own_accounts_only(tmp_path: Path) -> None:
    target = external(tmp_path, ["t1", "t2", "t3"])
    target.begin_item(["first-item"])
    target.account("first-item")
    target.end_item()
    target.copy_log_slice(target.log_cursor(), tmp_path)
    cursor = target.log_cursor()  # the engine takes it before the item begins
    target.begin_item(["alice", "bob"])
    target.account("alice")
    target.account("bob")
    CALLS.clear()
    target.end_item()  # the engine: once the item's actors are closed
    assert CALLS == ["t1@x.test", "t2@x.test"]  # after the item: what it created is removed
    (tmp_path / "item").mkdir()  # the engine's evidence folder
    written = target.copy_log_slice(cursor, tmp_path / "item")
    record = (tmp_path / "item" / "vendor-x.account-state.log").read_text()
    assert [p.name for p in written] == ["vendor-x.account-state.log"]
    assert "first-item" not in record
    assert re.findall(r"^(\w+) the item: (\S+)", record, re.M) == [
        ("before", "alice"),
        ("before", "bob"),
        ("after", "t1@x.test"),
        ("after", "t2@x.test"),
    ]
    assert "pw-t1" in record  # the engine redacts every listed password (accounts() names them all)
    assert {a.password for a in target.accounts()} == {"pw-t1", "pw-t2", "pw-t3"}
    target.stop()
    assert target.log_files() == []


def test_a_failed_clear_after_the_item_is_recorded_and_not_raised(tmp_path: Path) -> None:
    target = external(tmp_path, ["t1"])
    cursor = target.log_cursor()
    target.begin_item(["alice"])
    target.account("alice")
    REFUSED.add("t1@x.test")
    target.end_item()
    target.copy_log_slice(cursor, tmp_path)
    assert "FAILED: removing roster item" in (tmp_path / "vendor-x.account-state.log").read_text()


def test_the_default_accounts_of_targets_up_serve_every_shipped_scenario(tmp_path: Path) -> None:
    """Every scenario's accounts map onto the accounts ``targets up`` lists by default."""
    users, largest = accounts_for_every_scenario()
    target = external(tmp_path, users)
    scenarios, _ = load_all(scenario_files(resources.SCENARIOS))
    assert largest in {s.id for s in scenarios}
    for scenario in scenarios:
        for role in scenario.roles:
            names = [a.account for a in scenario.actors.values() if a.role == role and a.account]
            target.begin_item(list(dict.fromkeys(names)))
            for name in dict.fromkeys(names):
                if name not in scenario.accounts:
                    target.account(name)


def test_every_private_xml_fragment_the_scenarios_store_is_cleared() -> None:
    stored = set()
    for path in scenario_files(resources.SCENARIOS):
        text = path.read_text()
        stored |= set(re.findall(r"jabber:iq:private'>\s*<(\w+) xmlns='([^']+)'", text))
    assert stored and stored <= set(PRIVATE_STORAGE)
