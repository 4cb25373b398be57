"""docs/barriers.md lists every absence check of every scenario, with its barrier."""

from __future__ import annotations

import re

from harness.plugin import PROJECT_ROOT
from harness.scenario.loader import load_all, scenario_files


def _documented() -> set[tuple[str, int, str]]:
    text = (PROJECT_ROOT / "docs" / "barriers.md").read_text()
    rows = re.findall(r"^\| ([a-z][\w.-]+) \| (\d+) \| (\w+) \| [1-4] \| .+ \|$", text, re.MULTILINE)
    return {(scenario, int(step), actor) for scenario, step, actor in rows}


def _checks() -> set[tuple[str, int, str]]:
    scenarios, errors = load_all(scenario_files(PROJECT_ROOT / "scenarios"))
    assert not errors
    return {
        (s.id, index + 1, step.actor)
        for s in scenarios
        for index, step in enumerate(s.steps)
        if step.action == "expect-nothing"
    }


def test_every_absence_check_has_its_barrier_documented() -> None:
    checks = _checks()
    documented = _documented()
    assert checks, "no absence check found: the scan is broken"
    assert checks - documented == set(), "add these to docs/barriers.md"
    assert documented - checks == set(), "docs/barriers.md lists checks that do not exist (renumbered?)"
