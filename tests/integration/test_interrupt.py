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


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(proc.name)
            except OSError:
                continue
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopped_run_cleans_up(tmp_path: Path, work_dir: Path, sig: signal.Signals) -> None:
    work = work_dir
    env = dict(os.environ, INTEROP_WORKDIR=str(work))
    # retry-limit keeps a target busy long enough on servers without a limit; any item would do.
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--targets",
            "prosody,ejabberd",
            "--category",
            "authentication",
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
        while not _processes_mentioning(str(work / "targets")):
            assert child.poll() is None, child.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no server started within 120 s"
            time.sleep(0.2)  # polling for the child's progress, not a verdict
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
