"""Prove a scenario able to fail, from the command line, before it has an entry in the proofs.

    python -m tests.proofs.prove path/to/scenario.yaml                  # against the correct double
    python -m tests.proofs.prove path/to/scenario.yaml --flaw NAME ...  # and under each flaw
    python -m tests.proofs.prove --list-flaws                           # the double's flaws

The scenario file may live anywhere (a draft outside ``scenarios/``). The command runs it with the
engine against the test double (:mod:`tests.doubles`), first correct, then once per ``--flaw``,
and prints each verdict with the step that decided it. Exit 0 when the scenario is proven: a
``pass`` resting on its decisive steps against the correct double, and a ``fail`` at a decisive
step under every flaw given. ``tests/proofs/test_can_fail.py`` then keeps the proof (add a
``Proof`` entry). Scenarios with an actor that plays a server, or role knobs the double does not
honour, need real servers (``tests/integration/test_federation_proofs.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import harness.engine as engine
from harness.engine import ItemRun, run_item
from harness.scenario.loader import ScenarioError, load_scenario
from harness.scenario.model import Scenario
from harness.verdict import Outcome
from tests.doubles.target import DOMAIN, DoubleServices, running_double
from tests.doubles.xmpp_server import FLAWS, Pki, pki_from_ca

# the double answers on loopback within milliseconds: a missing answer need not wait 10 s
STEP_TIMEOUT_S = 2.0


def run_on_double(
    scenario: Scenario, pki: Pki, flaws: tuple[str, ...], workdir: Path, **config: Any
) -> ItemRun:
    """``scenario`` against a fresh double with ``flaws`` (``config``: other ``DoubleConfig``
    fields); every role is that same double."""
    workdir.mkdir(parents=True, exist_ok=True)
    with running_double(pki, flaws, log_file=workdir / "double.log", **config) as target:
        return run_item(
            scenario, {role: target for role in scenario.roles}, workdir / "evidence", DoubleServices(pki)
        )


def failing_step(scenario: Scenario, run: ItemRun) -> int | None:
    """The 1-based step a ``fail`` reason names (``step N (line L): ...``)."""
    head = run.verdict.reason.split(" ", 2)
    return int(head[1]) if len(head) > 2 and head[0] == "step" and head[1].isdigit() else None


def prove(scenario: Scenario, flaws: list[str], workdir: Path) -> bool:
    pki = pki_from_ca(workdir / "pki", DOMAIN)
    decisive = {n for n, step in enumerate(scenario.steps, 1) if step.decisive}
    proven = True
    run = run_on_double(scenario, pki, (), workdir / "correct")
    print(
        f"correct double: {run.verdict.outcome.value}"
        + (f": {run.verdict.reason}" if run.verdict.reason else "")
    )
    for decision in run.decided_by:
        print(f"  decided by step {decision.step} (line {decision.line}): {decision.observed}")
    if run.verdict.outcome is not Outcome.PASS:
        print(
            "  not proven: the scenario must pass against the correct double (or the double lacks the feature)"
        )
        proven = False
    for flaw in flaws:
        run = run_on_double(scenario, pki, (flaw,), workdir / flaw)
        step = failing_step(scenario, run)
        print(f"flaw {flaw}: {run.verdict.outcome.value}: {run.verdict.reason}")
        if run.verdict.outcome is not Outcome.FAIL:
            print("  not proven: the scenario must fail under this flaw")
            proven = False
        elif step not in decisive:
            print(f"  not proven: step {step} is not a decisive step ({sorted(decisive)})")
            proven = False
    print(f"evidence: {workdir}")
    return proven


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.proofs.prove", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenario", nargs="?", type=Path, help="the scenario file")
    parser.add_argument("--flaw", action="append", default=[], help="a flaw of the double (repeatable)")
    parser.add_argument("--list-flaws", action="store_true", help="print the double's flaws and exit")
    args = parser.parse_args(argv)
    if args.list_flaws:
        for name, rule in sorted(FLAWS.items()):
            print(f"{name:40} {rule}")
        return 0
    if args.scenario is None:
        parser.error("give a scenario file (or --list-flaws)")
    unknown = [flaw for flaw in args.flaw if flaw not in FLAWS]
    if unknown:
        parser.error(f"not flaws of the double: {', '.join(unknown)} (see --list-flaws)")
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    engine.STEP_TIMEOUT_S = STEP_TIMEOUT_S
    workdir = Path(tempfile.mkdtemp(prefix=f"prove-{scenario.id}-"))
    return 0 if prove(scenario, args.flaw, workdir) else 1


if __name__ == "__main__":
    sys.exit(main())
