"""Absence checks: their kind and barrier follow from the scenario files, and the loader refuses a
barrier that cannot order what it checks (docs/barriers.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.plugin import PROJECT_ROOT
from harness.scenario.absence import absence_checks, markdown_table
from harness.scenario.loader import ScenarioError, load_all, load_scenario, scenario_files


def test_every_kind_is_described_and_every_project_check_has_a_sound_barrier() -> None:
    scenarios, errors = load_all(scenario_files(PROJECT_ROOT / "scenarios"))
    assert not errors
    checks = absence_checks(scenarios)
    assert checks, "no absence check found: the scan is broken"
    assert not [c for c in checks if c.problem]
    described = set(
        map(int, re.findall(r"^## ([1-4])\. ", (PROJECT_ROOT / "docs" / "barriers.md").read_text(), re.M))
    )
    assert {c.kind for c in checks} <= described == {1, 2, 3, 4}
    table = markdown_table(checks)
    assert table.count("\n") == len(checks) + 1 and "| fed.s2s.message-delivery | 7 (" in table


SCENARIO = """\
id: {id}
title: An absence check
category: federation
spec: {{document: RFC 6120, section: "10.1"}}
level: MUST
protocol: xmpp
{roles}actors:
  alice: {{kind: xmpp-raw, account: alice{role_a}}}
  bob: {{kind: xmpp-raw, account: bob{role_b}}}
steps:
  - send: {{actor: alice, xml: "<message to='${{bob.jid}}'/>"}}
{steps}"""


def _write(tmp_path: Path, steps: str, pair: bool) -> Path:
    scenario_id = "fed.absence.pair" if pair else "authz.absence.one"
    path = tmp_path / f"{scenario_id}.yaml"
    path.write_text(
        SCENARIO.format(
            id=scenario_id,
            roles="roles: {origin: {}, receiver: {}}\n" if pair else "",
            role_a=", role: origin" if pair else "",
            role_b=", role: receiver" if pair else "",
            steps=steps,
        )
    )
    return path


@pytest.mark.parametrize(
    ("steps", "pair", "problem"),
    [
        (
            "  - expect-nothing: {actor: bob, via: room@x, match: '<message/>', decisive: true}\n",
            False,
            "step 2: expect-nothing: via: without after:",
        ),
        (
            "  - expect-nothing: {actor: bob, match: '<message/>', decisive: true}\n",
            True,
            "step 2: expect-nothing: no expect before it proves the sending side",
        ),
    ],
)
def test_the_loader_refuses_a_barrier_that_orders_nothing(
    tmp_path: Path, steps: str, pair: bool, problem: str
) -> None:
    with pytest.raises(ScenarioError, match=problem):
        load_scenario(_write(tmp_path, steps, pair))


def test_kinds_follow_from_the_steps(tmp_path: Path) -> None:
    one = load_scenario(
        _write(
            tmp_path,
            "  - expect-nothing: {actor: alice, match: '<message/>'}\n"
            "  - expect-nothing: {actor: bob, after: [alice], match: '<message/>', decisive: true}\n"
            "  - expect-nothing: {actor: bob, after: [alice], via: room@x, match: '<message/>'}\n",
            False,
        )
    )
    pair = load_scenario(
        _write(
            tmp_path,
            "  - expect: {actor: alice, match: '<message type=\"error\"/>'}\n"
            "  - expect-nothing: {actor: bob, match: '<message/>', decisive: true}\n",
            True,
        )
    )
    assert [(c.step, c.kind) for c in absence_checks([one, pair])] == [(2, 1), (3, 2), (4, 3), (3, 4)]
    assert absence_checks([pair])[0].barrier == "step 2 (the sending side's proof), then the observer's ping"
