"""Integration fixtures: real runs of each category on the three local servers (and with docker).

The runs go through the ``interop`` command exactly as a user starts it; tests then read what
it wrote. Server directories are kept (``INTEROP_WORKDIR``) so tests can check the accounts'
passwords never reached the reports.

The category runs the selected tests need start in the background when the first integration
test starts, :data:`CONCURRENT_RUNS` at a time, and the tests that read them run last
(``tests/conftest.py`` orders the suite): while those runs go, the integration tests that need
none run beside them. Each run is still the user's command in a process of its own, with its
own work folder, loopback blocks and containers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
    pid: int = 0  # the interop process (the owner its containers are labelled with)


def interop(
    args: list[str], out: Path, work: Path, timeout: float = 1800, env: dict[str, str] | None = None
) -> InteropRun:
    """Run ``interop run`` in a child process with its own run and work directories (and more
    environment variables ``env``)."""
    env = dict(os.environ, INTEROP_WORKDIR=str(work), **(env or {}))
    pids: list[int] = []
    proc = run_to_the_end(
        [sys.executable, "-m", "harness.cli", "run", "--out", str(out), *args],
        timeout,
        started=pids.append,
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
        pids[0],
    )


def interop_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``interop ARGS`` in a child process, to its end (output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def targets_up(state: Path, work: Path, *args: str) -> Iterator[Path]:
    """``interop targets up ARGS --state STATE`` in a child process (a second harness playing
    vendors), once its topology is written; ended with ``targets down`` afterwards. Yields STATE."""
    up = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "targets", "up", *args, "--state", str(state)],
        cwd=ROOT,
        env=dict(os.environ, INTEROP_WORKDIR=str(work)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (state / "topology.json").exists():
            assert up.poll() is None, up.stdout.read().decode()[-3000:] if up.stdout else ""
            assert time.monotonic() < deadline, "targets up did not finish within 120 s"
            time.sleep(0.2)  # polling for the child's progress, not a verdict
        yield state
        assert interop_cli("targets", "down", "--state", str(state)).returncode == 0
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


# (category, driver, --jobs or None for the default): a category run the tests read
RunKey = tuple[str, str, str | None]
CONCURRENT_RUNS = 2  # each run already runs its items in parallel workers
RUN_FIXTURES: dict[str, RunKey] = {
    "auth_run": ("authentication", "local", None),
    "authz_run": ("authorization", "local", None),
    "fed_run": ("federation", "local", None),
    "robust_run": ("robustness", "local", None),
    "auth_serial_run": ("authentication", "local", "1"),
}
DOCKER_FIXTURE = "both_drivers"  # parametrized by category: the local and the docker run


def runs_needed(item: pytest.Item) -> list[RunKey]:
    """The category runs a test reads."""
    keys = [RUN_FIXTURES[name] for name in getattr(item, "fixturenames", ()) if name in RUN_FIXTURES]
    if DOCKER_FIXTURE in getattr(item, "fixturenames", ()):
        category = item.callspec.params[DOCKER_FIXTURE]
        keys += [(category, "local", None), (category, "docker", None)]
    return keys


class CategoryRuns:
    """Category runs in background threads (see the module documentation)."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._pool = ThreadPoolExecutor(CONCURRENT_RUNS, thread_name_prefix="category-run")
        self._runs: dict[RunKey, Future[InteropRun]] = {}
        self._work: list[Path] = []

    def start(self, key: RunKey) -> None:
        if key not in self._runs:
            self._runs[key] = self._pool.submit(self._run, *key)

    def get(self, key: RunKey) -> InteropRun:
        self.start(key)
        result = self._runs[key].result()
        assert result.run is not None, f"no results.json; interop printed:\n{result.stdout[-4000:]}"
        return result

    def _run(self, category: str, driver: str, jobs: str | None) -> InteropRun:
        base = self._factory.mktemp(f"{category}-{driver}-jobs{jobs or 'auto'}-matrix")
        work = reachable_work_dir()
        self._work.append(work)
        args = ["--driver", driver, "--category", category, "--targets", ",".join(LOCAL_TARGETS)]
        args += ["--jobs", jobs] if jobs else []
        return interop(args, base / "out", work, timeout=2400)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for work in self._work:
            shutil.rmtree(work, ignore_errors=True)


# the longest first: the tests that read them wait for them at the end of the session
_ORDER = {("federation", "docker"): 0, ("federation", "local"): 1, ("authorization", "docker"): 2}


@pytest.fixture(scope="session")
def category_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CategoryRuns]:
    runs = CategoryRuns(tmp_path_factory)
    needed = {key for item in request.session.items for key in runs_needed(item)}
    for key in sorted(needed, key=lambda k: (_ORDER.get(k[:2], 3), k[2] is None, k)):
        runs.start(key)
    yield runs
    runs.close()


@pytest.fixture(scope="session", autouse=True)
def _category_runs_started(category_runs: CategoryRuns) -> None:
    """The background runs start with the first integration test."""


def reachable_work_dir() -> Path:
    """A server work directory the servers' users can reach (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="interop-test-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def work_dir() -> Iterator[Path]:
    path = reachable_work_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def auth_run(category_runs: CategoryRuns) -> InteropRun:
    return category_runs.get(RUN_FIXTURES["auth_run"])


@pytest.fixture(scope="session")
def authz_run(category_runs: CategoryRuns) -> InteropRun:
    """The authorization category on the three local servers."""
    return category_runs.get(RUN_FIXTURES["authz_run"])


@pytest.fixture(scope="session")
def fed_run(category_runs: CategoryRuns) -> InteropRun:
    """The federation category: every pair scenario over the 9 ordered pairs."""
    return category_runs.get(RUN_FIXTURES["fed_run"])


@pytest.fixture(scope="session")
def robust_run(category_runs: CategoryRuns) -> InteropRun:
    """The robustness category on the three local servers."""
    return category_runs.get(RUN_FIXTURES["robust_run"])


@pytest.fixture(scope="session")
def auth_serial_run(category_runs: CategoryRuns) -> InteropRun:
    """The authentication category one item at a time (``--jobs 1``)."""
    return category_runs.get(RUN_FIXTURES["auth_serial_run"])


def error_cells(run: InteropRun) -> list[str]:
    """The items of a run that ended in ``error`` (a category run should have none)."""
    assert run.run is not None, run.stdout[-2000:]
    return [f"{i.item_id}: {i.reason}" for i in run.run.items if i.outcome == "error"]


def missing_items(run: InteropRun, scenarios: list[Scenario]) -> list[tuple[str, str]]:
    """(scenario, target) of single-target scenarios that did not run on every local target."""
    assert run.run is not None, run.stdout[-2000:]
    got = {(i.scenario_id, i.selected_names[0]) for i in run.run.items if not i.is_pair}
    return sorted({(s.id, t) for s in scenarios if not s.is_pair for t in LOCAL_TARGETS} - got)


def scenarios_of(category: str) -> list[Scenario]:
    scenarios, errors = load_all(scenario_files(ROOT / "scenarios"))
    assert not errors
    return [s for s in scenarios if s.category == category]


@pytest.fixture(scope="session")
def auth_scenarios() -> list[Scenario]:
    return scenarios_of("authentication")


@pytest.fixture(scope="session")
def fed_scenarios() -> list[Scenario]:
    return scenarios_of("federation")


@pytest.fixture(scope="session")
def authz_scenarios() -> list[Scenario]:
    return scenarios_of("authorization")


@pytest.fixture(scope="session")
def robust_scenarios() -> list[Scenario]:
    return scenarios_of("robustness")
