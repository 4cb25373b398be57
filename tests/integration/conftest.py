"""Integration fixtures: one real run of the authentication matrix on the three local servers.

The run goes through the ``interop`` command exactly as a user starts it; tests then read what
it wrote. Server directories are kept (``INTEROP_WORKDIR``) so tests can check the accounts'
passwords never reached the reports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.interrupts import run_to_the_end
from harness.results import RunRecord, read_results
from harness.scenario.loader import load_all, scenario_files
from harness.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[2]
LOCAL_TARGETS = ("prosody", "ejabberd", "jabberd2")


@dataclass
class InteropRun:
    code: int
    out: Path
    work: Path
    stdout: str
    run: RunRecord | None


def interop(
    args: list[str], out: Path, work: Path, timeout: float = 1800, env: dict[str, str] | None = None
) -> InteropRun:
    """Run ``interop run`` in a child process with its own run and work directories (and more
    environment variables ``env``)."""
    env = dict(os.environ, INTEROP_WORKDIR=str(work), **(env or {}))
    proc = run_to_the_end(
        [sys.executable, "-m", "harness.cli", "run", "--out", str(out), *args],
        timeout,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    results = out / "results.json"
    return InteropRun(
        proc.returncode,
        out,
        work,
        proc.stdout + proc.stderr,
        read_results(results) if results.exists() else None,
    )


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A server work directory the servers' users can reach (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="interop-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def category_run(
    factory: pytest.TempPathFactory, category: str, driver: str = "local", jobs: str | None = None
) -> Iterator[InteropRun]:
    """``interop run --category CATEGORY`` on the three Debian servers (with the default --jobs,
    or ``jobs``), its work dir removed after."""
    base = factory.mktemp(f"{category}-{driver}-jobs{jobs or 'auto'}-matrix")
    work = Path(tempfile.mkdtemp(prefix="interop-test-"))
    work.chmod(0o755)
    args = ["--driver", driver, "--category", category, "--targets", ",".join(LOCAL_TARGETS)]
    args += ["--jobs", jobs] if jobs else []
    result = interop(args, base / "out", work, timeout=2400)
    assert result.run is not None, f"no results.json; interop printed:\n{result.stdout[-4000:]}"
    yield result
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def auth_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropRun]:
    yield from category_run(tmp_path_factory, "authentication")


def scenarios_of(category: str) -> list[Scenario]:
    scenarios, errors = load_all(scenario_files(ROOT / "scenarios"))
    assert not errors
    return [s for s in scenarios if s.category == category]


@pytest.fixture(scope="session")
def auth_scenarios() -> list[Scenario]:
    return scenarios_of("authentication")


@pytest.fixture(scope="session")
def fed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropRun]:
    """The federation category: every pair scenario over the 9 ordered pairs."""
    yield from category_run(tmp_path_factory, "federation")


@pytest.fixture(scope="session")
def fed_scenarios() -> list[Scenario]:
    return scenarios_of("federation")


@pytest.fixture(scope="session")
def authz_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropRun]:
    """The authorization category on the three local servers."""
    yield from category_run(tmp_path_factory, "authorization")


@pytest.fixture(scope="session")
def authz_scenarios() -> list[Scenario]:
    return scenarios_of("authorization")
