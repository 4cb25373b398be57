"""The harness as a user gets it: its wheel installed in a fresh venv, run from an unrelated folder.

The wheel must hold the shipped scenarios, target catalogue, baselines and profiles (found with
``harness.resources``), and the installed ``interop`` must list, validate and run them, and a
user's own scenario folder, without the clone. Builds the wheel and installs it with its
dependencies (from the package index, through pip's cache): about a minute.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from harness.plugin import PROJECT_ROOT
from harness.results import read_results
from harness.scenario.loader import scenario_files
from tests.doubles.target import DOMAIN, running_double
from tests.doubles.xmpp_server import Pki, pki_from_ca
from tests.proofs.test_can_fail import DOUBLE_ACCOUNTS, double_target_file

pytestmark = pytest.mark.package

# what the build reads; the rest of the clone (tests, docs, reports, build/) stays out of it
BUILD_INPUTS = ("pyproject.toml", "README.md", "harness", "scenarios", "fixtures")
# repository folder -> where the wheel holds it (pyproject.toml, package-dir)
SHIPPED = {"harness": "harness", "scenarios": "harness/scenarios", "fixtures": "harness/fixtures"}
SCENARIO = "auth.sasl.plain-over-tls"


def _run(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built (as ``pip wheel`` does, in an isolated build environment) from a copy of
    the build's inputs, so no stale ``build/`` of the clone can slip into it."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (PROJECT_ROOT / name).is_dir():
            shutil.copytree(PROJECT_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(PROJECT_ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", out, source, cwd=source)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def interop(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``interop`` of a fresh venv (no system site-packages) holding the wheel."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)  # pip --python installs into it: no pip of its own to set up
    python = env / "bin" / "python"
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", wheel, cwd=env, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return env / "bin" / "interop"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder that is neither the clone nor the venv: the installed harness must not need either."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _repository_files() -> set[str]:
    return {
        f"{shipped}/{path.relative_to(PROJECT_ROOT / folder).as_posix()}"
        for folder, shipped in SHIPPED.items()
        for path in (PROJECT_ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_holds_every_file_of_harness_scenarios_and_fixtures(wheel: Path) -> None:
    """Code, scenarios, catalogue (templates and Dockerfiles too), baselines and profiles: a
    package missing from pyproject.toml's list, or a file type package-data misses, fails here."""
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    assert sorted(_repository_files() - held) == []
    assert not [name for name in held if "__pycache__" in name]


def test_installed_interop_lists_and_validates_from_anywhere(interop: Path, elsewhere: Path) -> None:
    listed = _run(interop, "list", cwd=elsewhere)
    assert listed.returncode == 0, listed.stderr
    assert SCENARIO in listed.stdout and re.search(r"^prosody ", listed.stdout, re.M)

    validated = _run(interop, "validate", cwd=elsewhere)
    assert validated.returncode == 0, validated.stderr
    scenarios = len(scenario_files(PROJECT_ROOT / "scenarios"))
    entries = len(list((PROJECT_ROOT / "fixtures" / "targets").glob("*/target.yaml")))
    profiles = len(list((PROJECT_ROOT / "fixtures" / "profiles").glob("*.yaml")))
    shipped = f"{scenarios} scenario files, {entries} catalogue entries, {profiles} profiles valid"
    assert validated.stdout.strip() == shipped  # every shipped file is in the wheel and valid

    vendor = elsewhere / "vendor-targets"  # --catalogue: a vendor's product beside the shipped ones
    shutil.copytree(PROJECT_ROOT / "fixtures" / "targets" / "prosody-image", vendor / "xserver")
    entry = vendor / "xserver" / "target.yaml"  # a product is named as its folder
    entry.write_text(entry.read_text().replace("product: prosody-image", "product: xserver", 1))
    targets = _run(interop, "list", "targets", "--catalogue", vendor, cwd=elsewhere)
    assert targets.returncode == 0, targets.stderr
    assert re.search(r"^xserver ", targets.stdout, re.M) and re.search(r"^prosody ", targets.stdout, re.M)


def test_installed_interop_rejects_a_broken_scenario_with_its_line(interop: Path, elsewhere: Path) -> None:
    """``validate DIR`` and ``run --scenarios DIR`` (a folder of any name): exit 2, file:line,
    before any server is asked for."""
    broken = elsewhere / "my-checks" / f"{SCENARIO}.yaml"
    broken.parent.mkdir()
    text = (PROJECT_ROOT / "scenarios" / "authentication" / broken.name).read_text()
    broken.write_text(text.replace("level: MAY", "level: MAYBE"))
    line = text.splitlines().index("level: MAY") + 1
    for args in (("validate", broken.parent), ("run", "--scenarios", broken.parent)):
        done = _run(interop, *args, cwd=elsewhere)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{broken}:{line}: level: 'MAYBE' is not allowed" in done.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


def test_installed_interop_runs_shipped_and_own_scenarios_on_the_double(
    interop: Path, elsewhere: Path, pki: Pki
) -> None:
    """A shipped scenario and a user's own (another id, in a folder of any name) against the
    test double as an external target: both collected, both pass, exit 0."""
    own_id = "mine.sasl.plain-over-tls"
    own = elsewhere / "my-checks" / f"{own_id}.yaml"
    own.parent.mkdir()
    text = (PROJECT_ROOT / "scenarios" / "authentication" / f"{SCENARIO}.yaml").read_text()
    own.write_text(text.replace(f"id: {SCENARIO}", f"id: {own_id}"))
    out = elsewhere / "run"
    with running_double(pki, accounts=dict(DOUBLE_ACCOUNTS)) as target:
        target_file = double_target_file(target, pki, "correct", elsewhere)
        done = _run(
            interop, "run", "--target-file", target_file, "--scenarios", own.parent,
            "--scenario", SCENARIO, "--scenario", own_id, "--out", out,
            cwd=elsewhere,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run = read_results(out / "results.json")
    assert sorted((i.scenario_id, i.outcome) for i in run.items) == [(SCENARIO, "pass"), (own_id, "pass")]
