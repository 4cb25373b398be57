"""A run stopped from outside (Ctrl-C, SIGTERM) leaves no server process and no mount behind, and
keeps the results of the items that finished: one by one, and in parallel (the default), where
the signal reaches either the run's process alone or, as a terminal's Ctrl-C does, its whole
process group (the workers too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results import read_results
from harness.targets.local import processes_naming
from tests.integration.conftest import ROOT


@pytest.mark.parametrize(
    ("sig", "targets", "category", "wait_for", "jobs", "group"),
    [
        (signal.SIGINT, "prosody,ejabberd", "authentication", (), "1", False),
        (signal.SIGTERM, "prosody,ejabberd", "authentication", (), "1", False),
        # the first pair (ejabberd, ejabberd-2) starts in two threads: the signals come while a
        # readiness command runs in one of them (a process the target's stop must end too)
        (signal.SIGINT, "ejabberd", "federation", ("started",), "1", False),
        # in parallel: every worker's servers are up, and the signal reaches the run's process
        # only, or every process of its group (a terminal's Ctrl-C)
        (signal.SIGINT, "prosody,ejabberd", "federation", (), "3", False),
        (signal.SIGINT, "prosody,ejabberd", "federation", (), "3", True),
        (signal.SIGTERM, "prosody,ejabberd", "authorization", (), "3", True),
    ],
    ids=[
        "ctrl-c",
        "sigterm",
        "ctrl-c-twice-during-parallel-start",
        "parallel-ctrl-c-to-the-run",
        "parallel-ctrl-c-to-the-group",
        "parallel-sigterm-to-the-group",
    ],
)
def test_stopped_run_cleans_up(
    tmp_path: Path,
    work_dir: Path,
    sig: signal.Signals,
    targets: str,
    category: str,
    wait_for: tuple[str, ...],
    jobs: str,
    group: bool,
) -> None:
    work = work_dir
    env = dict(os.environ, INTEROP_WORKDIR=str(work))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--targets",
            targets,
            "--category",
            category,
            "--out",
            str(tmp_path / "out"),
            "--jobs",
            jobs,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=group,  # its own process group, to signal as a terminal does
    )
    signal_it = (lambda s: os.killpg(child.pid, s)) if group else child.send_signal
    workers = int(jobs) if jobs != "1" else 0
    try:
        deadline = time.monotonic() + 120
        # Wait until the run's servers are really up: a server process lives in the work dir
        # (in parallel: until every worker has one, and an item has finished).
        while not _servers_up(work, workers, tmp_path / "out", wait_for):
            assert child.poll() is None, child.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no server started within 120 s"
            time.sleep(0.2)  # polling for the child's progress, not a verdict
        signal_it(sig)
        if category == "federation" and not workers:
            time.sleep(0.5)  # the second Ctrl-C of an impatient user, during the clean-up
            signal_it(sig)
        output, _ = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert processes_naming(str(work)) == [], output.decode()[-3000:]
    mounts = [p for p in Path("/proc").glob("[0-9]*/mountinfo")]
    leaked = []
    for mountinfo in mounts:
        try:
            if str(work) in mountinfo.read_text():
                leaked.append(mountinfo)
        except OSError:
            continue
    assert leaked == []
    if workers:  # the items that finished before the signal are in the run's results
        results = read_results(tmp_path / "out" / "results.json")
        assert results.items, output.decode()[-3000:]
        assert {item.worker for item in results.items} <= {f"gw{i}" for i in range(workers)}


def _servers_up(work: Path, workers: int, out: Path, wait_for: tuple[str, ...]) -> bool:
    if not workers:
        return bool(processes_naming(str(work / "targets"), *wait_for))
    every_worker = all(processes_naming(str(work / f"gw{i}" / "targets")) for i in range(workers))
    # more finished items than workers: some worker finished two, so it had reported the first
    return every_worker and len(list((out / "items").glob("*/traffic.pcap"))) > workers
