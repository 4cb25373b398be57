"""A plain ``pytest scenarios/`` exits as ``interop run`` does: by the run's gate, not by pytest's
count of failed items; and its ``--junitxml`` follows the gate too, named by pytest's junit options.

The flawed double fails a SHOULD scenario, which pytest reports as a failed item under every
gate; the exit status must be 0 under ``--gate must`` (a finding) and 1 under ``--gate should``.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.plugin import PROJECT_ROOT
from harness.results import exit_code, read_results
from tests.doubles.target import DOMAIN, running_double
from tests.doubles.xmpp_server import Pki, pki_from_ca
from tests.proofs.test_can_fail import DOUBLE_ACCOUNTS, double_target_file
from tests.proofs.test_reports_on_double import FLAWS, SHOULD


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


@pytest.mark.parametrize(("gate", "code"), [("must", 0), ("should", 1)])
def test_plain_pytest_exits_by_the_gate(pki: Pki, tmp_path: Path, gate: str, code: int) -> None:
    out = tmp_path / "run"
    with running_double(pki, FLAWS, accounts=dict(DOUBLE_ACCOUNTS)) as bad:
        target_file = double_target_file(bad, pki, "bad", tmp_path)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "scenarios/", "-p", "no:cacheprovider", "-q"]
            + ["--target-file", str(target_file), "--scenario", SHOULD, "--gate", gate, "--out", str(out)]
            + [
                "--junitxml",
                str(out / "junit.xml"),
                "-o",
                "junit_suite_name=vendor-ci",
                "--junit-prefix",
                "nightly",
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    transcript = f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = read_results(out / "results.json")
    assert [(i.scenario_id, i.outcome) for i in run.items] == [(SHOULD, "fail")], transcript
    assert "1 failed" in done.stdout, transcript  # pytest's own count, whatever the gate
    assert done.returncode == code == exit_code(run), transcript
    assert f"--gate {gate}: the run {'fails' if code else 'passes'}" in done.stdout, transcript
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite.get("name") == "vendor-ci" and suite.get("failures") == str(code), transcript
    assert [c.get("classname") for c in suite.iter("testcase")] == [f"nightly.authentication.{SHOULD}"]
