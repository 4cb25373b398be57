"""The absence checks of the scenarios (``expect-nothing`` steps) and the barrier each one uses.

``docs/barriers.md`` describes four kinds of absence check, each with the barrier that makes it
sound. The kind follows from the step itself, so the list of every check is derived from the
scenario files (``interop list absence``), never kept by hand:

1. no ``after:``, no ``via:``, one role: the observer's own ping orders what the server sent it
   because of the observer's own stanzas;
2. ``after: [sender, ...]``: the senders' round trips first, then the observer's ping;
3. ``via:`` an entity (a room): the round trips go to that entity, which relays the stanzas;
4. a pair scenario (federation) without ``after:``/``via:``: the stanza crosses a
   server-to-server stream; an earlier ``expect`` on the sending side (its bounce, the stream
   error its stream got) proves the sending side gave up before the observer's ping.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.scenario.model import Scenario, Step


@dataclass(frozen=True)
class AbsenceCheck:
    scenario: str
    step: int  # 1-based, as in verdict reasons
    line: int
    observer: str
    kind: int
    barrier: str  # how this check is ordered, in words
    problem: str = ""  # why the barrier is not sound ("" when it is)


def _kind(is_pair: bool, step: Step) -> int:
    if step.params.get("via"):
        return 3
    if step.after:
        return 2
    return 4 if is_pair else 1


def checks_of(scenario_id: str, is_pair: bool, steps: list[Step]) -> list[AbsenceCheck]:
    """The absence checks among ``steps`` (the loader calls this before the scenario exists)."""
    checks = []
    for index, step in enumerate(steps):
        if step.action != "expect-nothing":
            continue
        kind = _kind(is_pair, step)
        senders = f"after: [{', '.join(step.after)}]"
        proofs = [n + 1 for n, s in enumerate(steps[:index]) if s.action in ("expect", "expect-any")]
        barrier, problem = {
            1: ("the observer's ping", ""),
            2: (f"{senders}, then the observer's ping", ""),
            3: (
                f"{senders} via {step.params.get('via')}, then the observer's ping via it",
                "" if step.after else "via: without after: orders only the observer's side of the room",
            ),
            4: (
                f"step {proofs[-1] if proofs else '?'} (the sending side's proof), then the observer's ping",
                "" if proofs else "no expect before it proves the sending side handled the stanza",
            ),
        }[kind]
        checks.append(AbsenceCheck(scenario_id, index + 1, step.line, step.actor, kind, barrier, problem))
    return checks


def absence_checks(scenarios: list[Scenario]) -> list[AbsenceCheck]:
    """Every ``expect-nothing`` step of ``scenarios``, by scenario id and step."""
    return [
        check
        for scenario in sorted(scenarios, key=lambda s: s.id)
        for check in checks_of(scenario.id, scenario.is_pair, scenario.steps)
    ]


def markdown_table(checks: list[AbsenceCheck]) -> str:
    """The checks as the table ``interop list absence`` prints."""
    rows = ["| scenario | step (line) | observer | kind | barrier |", "| --- | --- | --- | --- | --- |"]
    rows += [
        f"| {c.scenario} | {c.step} ({c.line}) | {c.observer} | {c.kind} | {c.barrier} |" for c in checks
    ]
    return "\n".join(rows)
