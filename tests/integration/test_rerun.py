"""``interop rerun`` of a federation cell from a real run: the same pair, driver and knobs, a
run folder of the same shape, the same verdict (the cell is not flaky), and the command shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.results import read_results, safe_name
from tests.integration.conftest import ROOT, InteropRun

ITEM = "fed.s2s.message-delivery[prosody->ejabberd]"


def test_a_pair_cell_runs_again_on_the_same_pair(fed_run: InteropRun, tmp_path: Path, work_dir: Path) -> None:
    first = next(i for i in fed_run.run.items if i.item_id == ITEM)
    out = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "rerun", ITEM, "--from", str(fed_run.out), "--out", str(out)],
        cwd=ROOT,
        env=dict(os.environ, INTEROP_WORKDIR=str(work_dir)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == (0 if first.outcome == "pass" else 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    again = read_results(out / "results.json")
    assert [i.item_id for i in again.items] == [ITEM]
    redone = again.items[0]
    assert [(t.role, t.instance_of, t.driver) for t in redone.targets] == [
        (t.role, t.instance_of, t.driver) for t in first.targets
    ]
    assert [t.knobs for t in redone.targets] == [t.knobs for t in first.targets]
    assert redone.outcome == first.outcome, redone.reason
    assert (out / "items" / safe_name(ITEM) / "traffic.pcap").is_file()
    assert f"interop rerun: rerun: {redone.outcome}" in proc.stdout
    assert "warning" not in proc.stderr  # the scenario file is the one the first run used
