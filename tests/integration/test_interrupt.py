"""A run stopped from outside (Ctrl-C, SIGTERM) leaves no server process and no mount behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT


def _processes_mentioning(marker: str, *more: str) -> list[str]:
    """Processes whose command line contains ``marker`` and every one of ``more``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if all(m.encode() in cmdline for m in (marker, *more)):
                found.append(proc.name)
    return found


@pytest.mark.parametrize(
    ("sig", "targets", "category", "wait_for"),
    [
        (signal.SIGINT, "prosody,ejabberd", "authentication", ()),
        (signal.SIGTERM, "prosody,ejabberd", "authentication", ()),
        # the first pair (ejabberd, ejabberd-2) starts in two threads: the signals come while a
        # readiness command runs in one of them (a process the target's stop must end too)
        (signal.SIGINT, "ejabberd", "federation", ("started",)),
    ],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice-during-parallel-start"],
)
def test_stopped_run_cleans_up(
    tmp_path: Path,
    work_dir: Path,
    sig: signal.Signals,
    targets: str,
    category: str,
    wait_for: tuple[str, ...],
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
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        # Wait until the run's servers are really up: a server process lives in the work dir.
        while not _processes_mentioning(str(work / "targets"), *wait_for):
            assert child.poll() is None, child.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no server started within 120 s"
            time.sleep(0.2)  # polling for the child's progress, not a verdict
        child.send_signal(sig)
        if category == "federation":
            time.sleep(0.5)  # the second Ctrl-C of an impatient user, during the clean-up
            child.send_signal(sig)
        output, _ = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode != 0
    assert _processes_mentioning(str(work)) == [], output.decode()[-3000:]
    mounts = [p for p in Path("/proc").glob("[0-9]*/mountinfo")]
    leaked = []
    for mountinfo in mounts:
        try:
            if str(work) in mountinfo.read_text():
                leaked.append(mountinfo)
        except OSError:
            continue
    assert leaked == []
