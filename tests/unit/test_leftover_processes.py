"""The controller's last resort after a worker was cut off: the process groups of the run's
server folder are ended, and nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.targets.local import end_processes_under

SLEEPER = "import time; time.sleep(60)"


def test_groups_naming_the_folder_are_ended_and_others_spared(tmp_path: Path) -> None:
    run_root, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    left = subprocess.Popen([sys.executable, "-c", SLEEPER, str(run_root / "hosts")], start_new_session=True)
    other = subprocess.Popen([sys.executable, "-c", SLEEPER, str(elsewhere)], start_new_session=True)
    try:
        assert end_processes_under(run_root, grace=1) == [left.pid]
        assert left.wait(timeout=5) is not None
        assert other.poll() is None
        assert end_processes_under(run_root, grace=5) == []
    finally:
        for proc in (left, other):
            proc.kill()
            proc.wait()
