"""harness.report.junit: junit.xml says what the exit code says, verdict by verdict."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.report.junit import render_junit, write_junit
from harness.results import exit_code
from tests.unit.test_results import item, run_of, target

P, E = target("prosody"), target("ejabberd")
ORIGIN, RECEIVER = target("prosody", role="origin"), target("ejabberd", role="receiver")


def _cases(xml: str) -> dict[tuple[str, str], ET.Element]:
    root = ET.fromstring(xml)
    return {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}


def _kind(case: ET.Element) -> str:
    return next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


def _every_verdict():
    return run_of(
        [
            item("auth.a", [P], "pass"),
            item("auth.b", [P], "fail", reason="accepted <invalid-authzid/> \x01"),
            item("auth.c", [P], "fail", level="SHOULD", reason="should finding"),
            item("auth.d", [P], "fail", level="MAY", reason="may finding"),
            item("auth.e", [P], "fail", level="POLICY", reason="policy finding"),
            item("auth.f", [P], "error", level="SHOULD", reason="no answer"),
            item("auth.g", [P], "unsupported", reason="no PLAIN"),
            item("auth.h", [P], "xfail", reason="known"),
            item("auth.i", [P], "xpass", reason="known"),
            item("fed.s2s.j", [ORIGIN, RECEIVER], "pass", category="federation"),
        ]
    )


@pytest.mark.parametrize(
    ("gate", "failures"),
    [("must", {"auth.b"}), ("should", {"auth.b", "auth.c"}), ("may", {"auth.b", "auth.c", "auth.d"})],
)
def test_each_verdict_has_its_junit_element_and_the_gate_decides_failures(gate, failures):
    run = _every_verdict()
    cases = _cases(render_junit(run, gate))
    kinds = {cls.split(".", 1)[1]: _kind(case) for (cls, _), case in cases.items()}
    assert {s for s, kind in kinds.items() if kind == "failure"} == failures
    assert kinds["auth.f"] == "error"  # an error is an <error> at every level, never a <failure>
    assert kinds["auth.g"] == kinds["auth.h"] == "skipped"
    assert kinds["auth.a"] == kinds["auth.i"] == kinds["auth.e"] == "passed"  # POLICY under no gate
    for scenario in {"auth.c", "auth.d"} - failures:  # findings below the gate: passed, but said
        case = next(c for (cls, _), c in cases.items() if cls.endswith(scenario))
        assert kinds[scenario] == "passed"
        assert "below --gate " + gate in _properties(case)["finding"]
        assert "finding" in case.findtext("system-out")
    # the same items fail the JUnit file and the exit code
    assert exit_code(run, gate) == 1
    suite = ET.fromstring(render_junit(run, gate)).find("testsuite")
    assert suite.get("failures") == str(len(failures)) and suite.get("errors") == "1"
    assert suite.get("skipped") == "2" and suite.get("tests") == str(len(run.items))


def test_classname_is_category_and_scenario_name_the_targets():
    cases = _cases(render_junit(_every_verdict()))
    assert ("authentication.auth.a", "prosody") in cases
    assert ("federation.fed.s2s.j", "prosody->ejabberd") in cases
    assert not any(cls.endswith(".yaml") for cls, _ in cases)
    props = _properties(cases[("federation.fed.s2s.j", "prosody->ejabberd")])
    assert props["target.origin"].startswith("prosody") and props["target.receiver"].startswith("ejabberd")
    assert props["item"] == "fed.s2s.j[prosody->ejabberd]" and props["level"] == "MUST"


def test_reasons_stay_text_and_the_file_is_xml(tmp_path: Path):
    path = write_junit(_every_verdict(), tmp_path / "out" / "junit.xml")
    failure = ET.parse(path).getroot().find(".//failure")
    assert failure.get("message") == "accepted <invalid-authzid/> \\x01"
    assert "evidence: items/auth.b[prosody]/traffic.pcap" in failure.text


def test_an_unknown_gate_is_refused():
    with pytest.raises(ValueError, match="unknown gate"):
        render_junit(_every_verdict(), "all")


def test_the_suite_name_and_the_classname_prefix_are_the_runs_to_choose():
    """pytest's ``junit_suite_name`` and ``--junit-prefix`` reach the file (harness.plugin)."""
    default = ET.fromstring(render_junit(_every_verdict())).find("testsuite")
    named = ET.fromstring(render_junit(_every_verdict(), suite_name="vendor <x>", prefix="nightly"))
    suite = named.find("testsuite")
    assert default.get("name") == "interop" and suite.get("name") == named.get("name") == "vendor <x>"
    classnames = {case.get("classname") for case in suite.iter("testcase")}
    assert "nightly.authentication.auth.a" in classnames and "nightly.federation.fed.s2s.j" in classnames
    assert all(name.startswith("nightly.") for name in classnames)
