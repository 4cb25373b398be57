"""External targets as at an interop event: a second harness process plays the vendor
(``interop targets up``), and ``interop run --target-file`` reaches its Prosody through the target
file it wrote. Scenarios that leave state on their accounts (blocks, roster entries and
subscriptions, a vCard, private XML, PEP nodes) run twice in a row on the same few accounts:
every item gets accounts brought to a known state, the same verdict both times, and its
evidence says what was found before it and what it left (docs/interop-events.md)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.targets.local import is_installed
from harness.targets.spec import catalogue
from tests.integration.conftest import ROOT, interop_cli, targets_up

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not is_installed(catalogue(ROOT / "fixtures" / "targets")["prosody"]),
        reason="prosody is not installed (ci/setup.sh)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the local driver runs servers as their own users (root)"),
]

# what each leaves behind on its accounts when nothing clears them: a verdict of the next item
# (or of the same item in the second round) would change with it
LEAVE_STATE = {
    "authz.blocking.block-messages": "pass",  # a block list entry
    "authz.blocking.block-presence": "pass",  # a block and a subscription
    "authz.presence.subscription-requires-approval": "pass",  # roster entries, subscriptions
    "authz.presence.directed-presence-only-to-target": "pass",  # four accounts
    "authz.vcard.only-owner-edits": "pass",  # a vCard
    "authz.private.other-user-forbidden": "pass",  # private XML
    "authz.pep.whitelist-access-model": "fail",  # PEP nodes (Prosody answers <forbidden/>, run locally too)
}
# what a "before" clear must find on every account, once the item before cleared after itself
CLEAN = ("roster items: none", "blocked JIDs: none", "vCard: empty", "private XML fragments: none")


@pytest.fixture
def vendor(tmp_path: Path, work_dir: Path) -> Iterator[Path]:
    """The target file of a Prosody another harness process keeps up (with its default accounts)."""
    with targets_up(tmp_path / "state", work_dir, "--targets", "prosody") as state:
        yield state / "prosody.target.yaml"


def _run(target_file: Path, out: Path) -> dict[str, dict[str, Any]]:
    selection = [arg for scenario in LEAVE_STATE for arg in ("--scenario", scenario)]
    done = interop_cli("run", "--target-file", str(target_file), "--jobs", "1", "--out", str(out), *selection)
    results = out / "results.json"
    assert results.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return {i["scenario_id"]: i for i in json.loads(results.read_text())["items"]}


def _sections(record: str, phase: str) -> list[str]:
    """The ``before``/``after`` sections of an item's account-state record."""
    return re.findall(rf"^{phase} the item: .*\n(?:  .*\n)*", record, re.M)


def test_items_on_a_vendors_accounts_start_from_a_known_state_and_leave_none(
    vendor: Path, tmp_path: Path
) -> None:
    accounts = len(json.loads((vendor.parent / "topology.json").read_text())["targets"][0]["accounts"])
    assert accounts == 5  # as many as the scenario needing most: the pool never runs dry
    rounds = [_run(vendor, tmp_path / f"round{n}") for n in (1, 2)]
    for items in rounds:
        assert {s: i["outcome"] for s, i in items.items()} == LEAVE_STATE, {
            s: i["reason"] for s, i in items.items()
        }
    for item in rounds[1].values():
        record = (tmp_path / "round2" / item["evidence"]["prosody.account-state.log"]).read_text()
        before = _sections(record, "before")
        assert before and all(clean in section for section in before for clean in CLEAN), record
        assert len(_sections(record, "after")) == len(before), record
    left = {
        scenario: (tmp_path / "round1" / item["evidence"]["prosody.account-state.log"]).read_text()
        for scenario, item in rounds[0].items()
    }
    assert "blocked JIDs: 1" in "".join(_sections(left["authz.blocking.block-messages"], "after"))
    assert "emptied" in "".join(_sections(left["authz.vcard.only-owner-edits"], "after"))
    assert re.search(r"roster items: [1-9].*removed", left["authz.presence.subscription-requires-approval"])
    assert "private XML fragments: 1" in left["authz.private.other-user-forbidden"]
