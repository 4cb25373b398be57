#!/usr/bin/env python3
"""Benchmark: how long the absence checks (``expect-nothing`` steps, barriers included) take.

Absence is proven with ordering barriers (round trips), never by waiting, so an absence check
should cost about one or two round trips. This script prints the figures; no test asserts a time.

    ci/benchmark.py                          # runs the authorization category on the local targets
    ci/benchmark.py -- --targets prosody     # extra `interop run` arguments after --
    ci/benchmark.py --results reports/RUN/results.json   # figures of a run that already happened

It uses the timings every item records in results.json (``steps``: action and duration of each
step that ran).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from tabulate import tabulate

from harness.interrupts import run_to_the_end
from harness.results import ItemResult, read_results

ABSENCE_ACTION = "expect-nothing"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def absence_times(item: ItemResult) -> list[float]:
    return [float(step["duration_s"]) for step in item.steps if step["action"] == ABSENCE_ACTION]


def per_target(items: list[ItemResult]) -> list[list[object]]:
    """One row per target: how many absence checks, their total, median, mean and slowest time,
    and their share of the time all steps took."""
    checks: dict[str, list[float]] = defaultdict(list)
    all_steps: dict[str, float] = defaultdict(float)
    for item in items:
        target = "->".join(item.selected_names)
        checks[target] += absence_times(item)
        all_steps[target] += sum(float(step["duration_s"]) for step in item.steps)
    rows: list[list[object]] = []
    for target in sorted(checks):
        times = checks[target]
        if not times:
            rows.append([target, 0, "-", "-", "-", "-", "-"])
            continue
        share = sum(times) / all_steps[target] * 100 if all_steps[target] else 0.0
        rows.append(
            [
                target,
                len(times),
                _ms(sum(times)),
                _ms(statistics.median(times)),
                _ms(statistics.fmean(times)),
                _ms(max(times)),
                f"{share:.1f}",
            ]
        )
    return rows


def per_item(items: list[ItemResult]) -> list[list[object]]:
    rows: list[list[object]] = []
    for item in sorted(items, key=lambda i: i.item_id):
        times = absence_times(item)
        if times:
            rows.append([item.item_id, item.outcome, len(times), _ms(sum(times)), _ms(max(times))])
    return rows


def report(results: Path) -> None:
    run = read_results(results)
    print(f"run {run.run_id}: {len(run.items)} items ({results})\n")
    print("Absence checks per item (ms):")
    print(tabulate(per_item(run.items), headers=["item", "verdict", "checks", "total", "slowest"]))
    print("\nAbsence checks per target (ms; share: of the time all steps took):")
    headers = ["target", "checks", "total", "median", "mean", "slowest", "share %"]
    print(tabulate(per_target(run.items), headers=headers))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, help="results.json of a finished run (no new run)")
    parser.add_argument("interop_args", nargs="*", help="after --: extra `interop run` arguments")
    args = parser.parse_args(argv)
    if args.results is None:
        out = Path(tempfile.mkdtemp(prefix="benchmark-"))
        command = ["interop", "run", "--category", "authorization", "--out", str(out), *args.interop_args]
        print("$ " + " ".join(command), flush=True)
        finished = run_to_the_end(command)  # Ctrl-C: interop stops its servers first
        if not (out / "results.json").exists():
            print(f"the run wrote no results (exit {finished.returncode})", file=sys.stderr)
            return 1
        args.results = out / "results.json"
    report(args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
