"""``junit.xml`` from a run's record: one test case per item, with the verdict JUnit can tell.

pytest's own writer knows a test call that passed or failed; it would make every ``error`` a
``<failure>`` and every SHOULD finding a red test. Rendered from the record instead, as every
other report, the file says what the exit code says (``--gate``, :func:`harness.results.fails_run`):

========================================  ==========================================================
verdict                                   test case
========================================  ==========================================================
``pass``                                  passed
``fail`` at a level the gate names        ``<failure>``
``fail`` below the gate, or POLICY        passed, with the property ``finding`` and ``<system-out>``
``error``                                 ``<error>``
``unsupported``                           ``<skipped>``
``xfail``                                 ``<skipped type="xfail">``
``xpass``                                 passed, with the property ``xpass``
========================================  ==========================================================

The classname is the category and the scenario id (``federation.fed.s2s.message-delivery``), the
name the item's target or ``origin->receiver`` pair. The suite is called ``interop`` unless the
run says otherwise (``suite_name``: pytest's ``junit_suite_name``); ``prefix`` goes before every
classname (pytest's ``--junit-prefix``), so that several runs' files can share one CI report.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.results import GATES, ItemResult, RunRecord, fails_run, run_gate
from harness.verdict import Outcome

# Characters XML 1.0 does not allow, e.g. control bytes a server sent that a reason quotes.
SUITE_NAME = "interop"
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def classname(item: ItemResult) -> str:
    return f"{item.category}.{item.scenario_id}"


def case_name(item: ItemResult) -> str:
    """The targets part of the item id: ``prosody``, ``prosody->ejabberd``."""
    return item.item_id.removeprefix(item.scenario_id).removeprefix("[").removesuffix("]")


def _details(item: ItemResult) -> str:
    spec = " §".join(item.spec[k] for k in ("document", "section") if k in item.spec)
    lines = [f"{item.level} {item.outcome}: {item.reason}", f"scenario: {item.scenario_file} ({spec})"]
    lines += [f"evidence: {path}" for path in item.evidence.values()]
    return "\n".join(lines)


def _child(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, tag, {k: _text(v) for k, v in attrs.items()})
    if text is not None:
        node.text = _text(text)
    return node


def _testcase(suite: ET.Element, item: ItemResult, gate: str, strict_baseline: bool, prefix: str) -> str:
    """Add the item's test case; returns what it counts as: passed, failures, errors or skipped."""
    case = _child(
        suite,
        "testcase",
        classname=f"{prefix}.{classname(item)}" if prefix else classname(item),
        name=case_name(item),
        time=f"{item.duration_s:.3f}",
    )
    properties = _child(case, "properties")

    def prop(name: str, value: str) -> None:
        _child(properties, "property", name=name, value=value)

    prop("item", item.item_id)
    prop("level", item.level)
    prop("verdict", item.outcome)
    for target in item.targets:
        prop(f"target.{target.role}", f"{target.name} ({target.product} {target.version})")
    outcome = item.outcome
    if outcome == Outcome.ERROR.value:
        _child(case, "error", _details(item), message=item.reason, type="error")
        return "errors"
    if fails_run(item, gate, strict_baseline) and outcome in (Outcome.FAIL.value, Outcome.XPASS.value):
        _child(case, "failure", _details(item), message=item.reason, type=f"{item.level} {outcome}")
        return "failures"
    if outcome == Outcome.FAIL.value:
        prop("finding", f"{item.level} fail below --gate {gate}: {item.reason}")
        _child(case, "system-out", _details(item))
    elif outcome == Outcome.UNSUPPORTED.value:
        _child(case, "skipped", _details(item), message=f"unsupported: {item.reason}", type="unsupported")
        return "skipped"
    elif outcome == Outcome.XFAIL.value:
        _child(case, "skipped", _details(item), message=f"known failure: {item.reason}", type="xfail")
        return "skipped"
    elif outcome == Outcome.XPASS.value:
        prop("xpass", f"listed as a known failure, but passed: {item.reason}")
    return "passed"


def render_junit(
    run: RunRecord, gate: str | None = None, *, suite_name: str = SUITE_NAME, prefix: str = ""
) -> str:
    """The run as JUnit XML (the xunit2 shape pytest writes: testsuites/testsuite/testcase),
    judged under ``gate`` (default: the run's own) and the run's ``--strict-baseline``."""
    gate = gate or run_gate(run)
    strict = bool(run.selection.get("strict_baseline"))
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r} (one of {', '.join(GATES)})")
    root = ET.Element("testsuites", name=_text(suite_name))
    suite = _child(root, "testsuite", name=suite_name, timestamp=run.started_at)
    counts = {"passed": 0, "failures": 0, "errors": 0, "skipped": 0}
    for item in run.items:
        counts[_testcase(suite, item, gate, strict, prefix)] += 1
    suite.set("tests", str(len(run.items)))
    for key in ("failures", "errors", "skipped"):
        suite.set(key, str(counts[key]))
    suite.set("time", f"{sum(item.duration_s for item in run.items):.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(
    run: RunRecord, path: Path, gate: str | None = None, *, suite_name: str = SUITE_NAME, prefix: str = ""
) -> Path:
    """Write :func:`render_junit` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_junit(run, gate, suite_name=suite_name, prefix=prefix), encoding="utf-8")
    return path
