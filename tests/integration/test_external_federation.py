"""Federation across servers the harness did not start, as at an interop event: a second harness
process (``interop targets up --guests jabberd2``) plays the event and two vendors (Prosody and
ejabberd), and one run federates both external targets with each other and with a jabberd2 it
starts itself (docs/interop-events.md, "Federation at an event"). No cell may be an ``error``,
and every verdict must be the one the local driver gives the same pair of products, except where
a scenario needs a knob on an external receiver (unsupported there, with the knob named)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.targets.local import is_installed
from harness.targets.spec import catalogue
from tests.integration.conftest import ROOT, InteropRun, interop_cli, targets_up

PRODUCTS = ("prosody", "ejabberd", "jabberd2")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(is_installed(catalogue(ROOT / "fixtures" / "targets")[p]) for p in PRODUCTS),
        reason="prosody, ejabberd and jabberd2 must be installed (ci/setup.sh)",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the local driver runs servers as their own users (root)"),
]

# delivery both ways, dialback with a peer server the harness plays (its certificate from the
# event's CA, its name from the event's plan), and a policy that needs a knob on the receiver
SCENARIOS = ("fed.s2s.message-delivery", "fed.dialback.verify", "fed.policy.blocked-domain")
SELECTION = [arg for scenario in SCENARIOS for arg in ("--scenario", scenario)]
VENDORS = ("prosody", "ejabberd")


@pytest.fixture
def event(tmp_path: Path, work_dir: Path) -> Iterator[Path]:
    """The state folder of a ``targets up`` that plays the event and two vendors."""
    with targets_up(
        tmp_path / "event", work_dir, "--targets", ",".join(VENDORS), "--guests", "jabberd2"
    ) as state:
        yield state


def _verdicts(out: Path) -> dict[str, tuple[str, str]]:
    results = json.loads((out / "results.json").read_text())
    return {item["item_id"]: (item["outcome"], item["reason"] or "") for item in results["items"]}


def test_external_pairs_agree_with_the_local_matrix(event: Path, tmp_path: Path, fed_run: InteropRun) -> None:
    """The reference: the federation category run of the same three products on the local
    driver, which the integration suite runs anyway (``fed_run``)."""
    files = [arg for vendor in VENDORS for arg in ("--target-file", str(event / f"{vendor}.target.yaml"))]
    done = interop_cli("run", *files, "--targets", "jabberd2", "--out", str(tmp_path / "ext"), *SELECTION)
    assert (tmp_path / "ext" / "results.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]

    external, reference = _verdicts(tmp_path / "ext"), _verdicts(fed_run.out)
    assert len(external) == len(SCENARIOS) * 7  # 6 ordered pairs of 3 targets, jabberd2 with its second
    assert {i: v for i, v in external.items() if v[0] == "error"} == {}
    differences = {i: (v, reference[i]) for i, v in external.items() if v[0] != reference[i][0]}
    for item, ((outcome, reason), _) in differences.items():
        receiver = item.split("->")[1].rstrip("]")
        assert item.startswith("fed.policy.blocked-domain[") and receiver in VENDORS, (item, outcome, reason)
        assert (outcome, reason) == (
            "unsupported",
            f"{receiver} has no knob s2s_block (the scenario needs it on receiver, for RFC 6120 §10.4.3)",
        )
    # the dialback items had a peer server on an external receiver, and the event's names
    assert external["fed.dialback.verify[prosody->ejabberd]"][0] == "pass"
    assert external["fed.s2s.message-delivery[ejabberd->jabberd2]"][0] == "pass"
    assert sorted(differences) == [
        "fed.policy.blocked-domain[ejabberd->prosody]",
        "fed.policy.blocked-domain[jabberd2->ejabberd]",
        "fed.policy.blocked-domain[jabberd2->prosody]",
        "fed.policy.blocked-domain[prosody->ejabberd]",
    ]
