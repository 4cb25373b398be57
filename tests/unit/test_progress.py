"""Progress as a CI log shows it: a line per finished non-pass item, and status lines."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from harness.progress import RunProgress


def _report(nodeid: str, outcome: str, reason: str = "") -> SimpleNamespace:
    item = {"item_id": nodeid.rpartition("::")[2], "outcome": outcome, "reason": reason}
    return SimpleNamespace(nodeid=nodeid, interop_item=item, outcome="passed")


def test_plain_lines_when_the_output_is_not_a_terminal() -> None:
    out = io.StringIO()
    progress = RunProgress(Console(file=out, force_terminal=False, width=300))
    ids = [f"s.yaml::s.x[{t}]" for t in ("a", "b", "c")]
    progress.pytest_xdist_node_collection_finished(None, ids)
    for nodeid in ids:
        progress.pytest_runtest_logstart(nodeid, None)
    assert "running longest: s.x[a]" in progress.status()
    progress.pytest_runtest_logreport(_report(ids[0], "pass"))
    progress.pytest_runtest_logreport(_report(ids[1], "fail", "step 3 (line 9): expected <success/>"))
    progress.pytest_runtest_logreport(_report(ids[2], "unsupported", "no knob muc"))
    progress.pytest_sessionfinish(None)
    lines = out.getvalue().splitlines()
    assert "FAIL        s.x[b]: step 3 (line 9): expected <success/>" in lines
    assert "UNSUPPORTED s.x[c]: no knob muc" in lines
    assert not any("s.x[a]:" in line for line in lines), "a pass gets no line of its own"
    assert sum("3/3 items" in line for line in lines) == 1
    assert lines[-1].startswith("3/3 items · pass 1 fail 1 unsupported 1 error 0 · 0:00 elapsed")


def test_reports_of_other_tests_are_left_to_pytest() -> None:
    progress = RunProgress(Console(file=io.StringIO(), force_terminal=False))
    plain = SimpleNamespace(nodeid="tests/x.py::t", outcome="passed")
    progress.pytest_runtest_logreport(plain)
    assert progress.done == 0
    assert progress.pytest_report_teststatus(plain, None) is None
    assert progress.pytest_report_teststatus(_report("s::s.x[a]", "pass"), None) == ("passed", "", "")
