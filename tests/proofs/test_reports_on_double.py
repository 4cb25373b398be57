"""JUnit and Allure tell the truth: a parallel ``interop run`` against doubles, read back.

Two doubles (one correct, one flawed) and a target where nothing answers run three scenarios
(MUST, SHOULD, POLICY with knobs no external target has): every verdict but xfail, and one
scenario on several targets. Allure must show one test per item (its own ``historyId`` and
``testCaseId``, the scenario and target as parameters), the statuses failed/broken/skipped/passed,
the capture as a pcap and the run in its Environment panel; ``junit.xml`` an ``<error>`` for an
error and a ``<failure>`` only for levels the gate names, under classnames without ``.yaml``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.plugin import PROJECT_ROOT
from harness.results import RunRecord, read_results
from tests.doubles.target import DOMAIN, next_host, running_double
from tests.doubles.xmpp_server import Pki, pki_from_ca
from tests.proofs.test_can_fail import DOUBLE_ACCOUNTS, double_target_file, interop_on_double

MUST, SHOULD, POLICY = (
    "auth.sasl.wrong-password",
    "auth.tls.starttls-required",
    "auth.register.admin-address-not-claimable",
)
# the flawed double fails the MUST and the SHOULD scenario
FLAWS = ("accept-any-password", "tls-optional")


@dataclass
class Reports:
    run: RunRecord
    out: Path
    transcript: str

    def allure(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in (self.out / "allure-results").glob("*-result.json")]

    def junit(self, path: Path | None = None) -> dict[str, ET.Element]:
        root = ET.parse(path or self.out / "junit.xml").getroot()
        return {f"{c.get('classname')}[{c.get('name')}]": c for c in root.iter("testcase")}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


def _closed_port(host: str) -> int:
    """A port on ``host`` that nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def reports(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reports]:
    workdir = tmp_path_factory.mktemp("reports")
    with ExitStack() as stack:
        good = stack.enter_context(running_double(pki, (), accounts=dict(DOUBLE_ACCOUNTS)))
        bad = stack.enter_context(running_double(pki, FLAWS, accounts=dict(DOUBLE_ACCOUNTS)))
        host = next_host()
        port = _closed_port(host)  # every item on this target is an error
        gone = double_target_file(
            good,
            pki,
            "gone",
            workdir,
            product="xmpp-nothing",
            host=host,
            ports={"c2s": port, "c2s_tls": port},
        )
        done, out = interop_on_double(
            bad,
            pki,
            "bad",
            workdir,
            "--target-file",
            str(double_target_file(good, pki, "good", workdir)),
            "--target-file",
            str(gone),
            "--jobs",
            "2",
            *(arg for s in (MUST, SHOULD, POLICY) for arg in ("--scenario", s)),
        )
    transcript = f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (out / "results.json").exists(), transcript
    yield Reports(read_results(out / "results.json"), out, transcript)


def test_the_run_has_every_verdict_it_needs(reports: Reports) -> None:
    verdicts = {i.item_id: i.outcome for i in reports.run.items}
    assert verdicts == {
        f"{MUST}[double-good]": "pass",
        f"{MUST}[double-bad]": "fail",
        f"{MUST}[double-gone]": "error",
        f"{SHOULD}[double-good]": "pass",
        f"{SHOULD}[double-bad]": "fail",
        f"{SHOULD}[double-gone]": "error",
        f"{POLICY}[double-good]": "unsupported",
        f"{POLICY}[double-bad]": "unsupported",
        f"{POLICY}[double-gone]": "unsupported",
    }, reports.transcript
    assert len({i.worker for i in reports.run.items}) > 1, "a parallel run"


def test_allure_has_one_test_per_item_with_its_parameters(reports: Reports) -> None:
    results = reports.allure()
    assert len(results) == len(reports.run.items)
    assert len({r["historyId"] for r in results}) == len(results)
    assert len({r["testCaseId"] for r in results}) == len(results)
    named = {
        (p["scenario"], p["server"])
        for p in ({q["name"]: q["value"] for q in r["parameters"]} for r in results)
    }
    expected = {(s, t) for s in (MUST, SHOULD, POLICY) for t in ("double-good", "double-bad", "double-gone")}
    assert named == {(repr(s), repr(t)) for s, t in expected}


def test_allure_statuses_follow_the_verdicts(reports: Reports) -> None:
    status = {"pass": "passed", "fail": "failed", "error": "broken", "unsupported": "skipped"}
    verdicts = {i.item_id: i.outcome for i in reports.run.items}
    seen = {r["name"]: r["status"] for r in reports.allure()}
    assert seen == {item: status[outcome] for item, outcome in verdicts.items()}


def test_allure_descriptions_stay_text_and_pcaps_are_pcaps(reports: Reports) -> None:
    results = {r["name"]: r for r in reports.allure()}
    assert "\\<not\\-authorized/\\>" in results[f"{MUST}[double-bad]"]["description"]
    attachments = results[f"{MUST}[double-bad]"]["attachments"]
    pcaps = [a for a in attachments if a["name"] == "pcap"]
    assert [a["type"] for a in pcaps] == ["application/vnd.tcpdump.pcap"], attachments
    assert pcaps[0]["source"].endswith(".pcap")
    assert (reports.out / "allure-results" / pcaps[0]["source"]).stat().st_size > 24


def test_allure_environment_names_the_run(reports: Reports) -> None:
    text = (reports.out / "allure-results" / "environment.properties").read_text()
    entries = dict(line.split("=", 1) for line in text.splitlines())
    assert entries["driver"] == "local" and entries["variant"] == "default"
    assert entries["double-bad.product"] == "xmpp-double" and entries["double-bad.version"] == "test"
    assert entries["double-gone.product"] == "xmpp-nothing" and "double-gone.knobs" in entries


def test_junit_errors_are_errors_and_only_gated_fails_are_failures(reports: Reports) -> None:
    cases = reports.junit()
    assert len(cases) == len(reports.run.items)
    assert not any(c.get("classname").endswith(".yaml") for c in cases.values())

    def kind(key: str) -> list[str]:
        return [child.tag for child in cases[key] if child.tag in ("failure", "error", "skipped")]

    assert kind(f"authentication.{MUST}[double-bad]") == ["failure"]
    assert (
        kind(f"authentication.{MUST}[double-gone]")
        == kind(f"authentication.{SHOULD}[double-gone]")
        == ["error"]
    )
    assert kind(f"authentication.{SHOULD}[double-bad]") == []  # a finding under --gate must
    finding = cases[f"authentication.{SHOULD}[double-bad]"].find("properties/property[@name='finding']")
    assert finding is not None and "below --gate must" in finding.get("value")
    assert kind(f"authentication.{POLICY}[double-good]") == ["skipped"]
    assert sum(kind(key) == ["failure"] for key in cases) == 1


def test_merge_renders_junit_under_another_gate(reports: Reports, tmp_path: Path) -> None:
    merged = tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "merge", "--gate", "should", "--out", str(merged)]
        + [str(reports.out / "results.json")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    failures = {
        key for key, case in reports.junit(merged / "junit.xml").items() if case.find("failure") is not None
    }
    assert failures == {f"authentication.{MUST}[double-bad]", f"authentication.{SHOULD}[double-bad]"}


@pytest.mark.parametrize(("gate", "code"), [("must", 0), ("should", 1)])
def test_the_gate_decides_the_exit_code(pki: Pki, tmp_path: Path, gate: str, code: int) -> None:
    with running_double(pki, FLAWS, accounts=dict(DOUBLE_ACCOUNTS)) as bad:
        done, out = interop_on_double(bad, pki, "bad", tmp_path, "--scenario", SHOULD, "--gate", gate)
    run = read_results(out / "results.json")
    assert [(i.scenario_id, i.outcome) for i in run.items] == [(SHOULD, "fail")], done.stdout[-2000:]
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    failures = ET.parse(out / "junit.xml").getroot().findall(".//failure")
    assert len(failures) == code
