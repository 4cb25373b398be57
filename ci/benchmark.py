#!/usr/bin/env python3
"""Benchmark: where a run's time goes, serial against parallel, and what absence checks cost.

    ci/benchmark.py                          # authorization on the local targets, --jobs 1 and --jobs auto
    ci/benchmark.py --jobs 6 --category federation
    ci/benchmark.py -- --targets prosody     # extra `interop run` arguments after --
    ci/benchmark.py --results A/results.json [--results B/results.json]   # figures of finished runs

One invocation runs the same selection twice, one item at a time (``--jobs 1``) and concurrently
(``--jobs N``), and prints both side by side: wall time, the sum of the items' own time, the time
spent between items by cause (target starts, restarts with other knobs, federation resets, and
the rest: collection, teardown, idle workers), the speed-up as a ratio of the two wall times,
each target's start and reset times, and the absence checks (``expect-nothing`` steps, barriers
included), which should cost about a round trip or two. No test asserts a time: these are figures
to read. They come from what every item records in results.json (``steps`` and ``setup``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from harness.interrupts import run_to_the_end
from harness.results import ItemResult, RunRecord, read_results

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


@dataclass
class Measured:
    """One run's results and how long its command took from outside (None: not timed here)."""

    label: str
    run: RunRecord
    wall_s: float | None = None

    @property
    def wall(self) -> float:
        if self.wall_s is not None:
            return self.wall_s
        started, finished = (
            dt.datetime.fromisoformat(t) for t in (self.run.started_at, self.run.finished_at)
        )
        return (finished - started).total_seconds()

    @property
    def workers(self) -> int:
        return len({item.worker for item in self.run.items}) or 1

    def setup(self, cause: str) -> float:
        """How long items waited for ``cause``: an item's targets start (restart, reset) side by
        side, so an item waits for the slowest of them."""
        return sum(
            max((s["duration_s"] for s in item.setup if s["cause"] == cause), default=0.0)
            for item in self.run.items
        )

    def items(self) -> float:
        return sum(item.duration_s for item in self.run.items)


SETUP_CAUSES = ("start", "restart", "reset")


def where_time_goes(runs: list[Measured]) -> str:
    """Wall time, item time and the time between items by cause, one column per run."""
    rows: list[list[object]] = [
        ["items", *(len(m.run.items) for m in runs)],
        ["workers", *(m.workers for m in runs)],
        ["wall time (s)", *(f"{m.wall:.1f}" for m in runs)],
        ["sum of item time (s)", *(f"{m.items():.1f}" for m in runs)],
    ]
    rows += [
        [f"between items: {cause} (s)", *(f"{m.setup(cause):.1f}" for m in runs)] for cause in SETUP_CAUSES
    ]
    rows.append(
        [
            "between items: other (s)",
            *(f"{m.wall * m.workers - m.items() - sum(m.setup(c) for c in SETUP_CAUSES):.1f}" for m in runs),
        ]
    )
    rows.append(["verdicts", *(_verdicts(m.run) for m in runs)])
    return tabulate(rows, headers=["", *(m.label for m in runs)])


def _verdicts(run: RunRecord) -> str:
    counts: dict[str, int] = defaultdict(int)
    for item in run.items:
        counts[item.outcome] += 1
    return " ".join(f"{o} {n}" for o, n in sorted(counts.items()))


def target_setup(run: RunRecord) -> str:
    """Per target and cause: how often, median and slowest seconds."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for item in run.items:
        for step in item.setup:
            times[(step["target"], step["cause"])].append(float(step["duration_s"]))
    rows = [
        [target, cause, len(t), f"{statistics.median(t):.2f}", f"{max(t):.2f}"]
        for (target, cause), t in sorted(times.items())
    ]
    return tabulate(rows, headers=["target", "cause", "times", "median s", "slowest s"])


def same_verdicts(a: RunRecord, b: RunRecord) -> list[str]:
    """Items whose verdict differs between two runs of the same selection (or that one lacks)."""
    va = {i.item_id: i.outcome for i in a.items}
    vb = {i.item_id: i.outcome for i in b.items}
    return [
        f"{k}: {va.get(k, 'absent')} / {vb.get(k, 'absent')}"
        for k in sorted(va.keys() | vb.keys())
        if va.get(k) != vb.get(k)
    ]


def report(runs: list[Measured]) -> None:
    for m in runs:
        print(f"{m.label}: run {m.run.run_id}, {len(m.run.items)} items")
    print("\nWhere the time goes:")
    print(where_time_goes(runs))
    if len(runs) == 2:
        ratio = runs[0].wall / runs[1].wall
        print(f"\nspeed-up {runs[0].label} / {runs[1].label}: {ratio:.2f}x (wall time ratio)")
        differ = same_verdicts(runs[0].run, runs[1].run)
        print(f"verdicts: {'identical item by item' if not differ else f'{len(differ)} differ'}")
        for line in differ:
            print(f"  {line}")
    last = runs[-1].run
    print(f"\nTarget start, restart and reset times ({runs[-1].label}):")
    print(target_setup(last))
    print(f"\nAbsence checks per item (ms, {runs[-1].label}):")
    print(tabulate(per_item(last.items), headers=["item", "verdict", "checks", "total", "slowest"]))
    print("\nAbsence checks per target (ms; share: of the time all steps took):")
    headers = ["target", "checks", "total", "median", "mean", "slowest", "share %"]
    print(tabulate(per_target(last.items), headers=headers))


def timed_run(jobs: str, selection: list[str]) -> Measured | None:
    out = Path(tempfile.mkdtemp(prefix=f"benchmark-jobs{jobs}-"))
    command = ["interop", "run", "--jobs", jobs, "--out", str(out), *selection]
    print("$ " + " ".join(command), flush=True)
    started = time.monotonic()
    finished = run_to_the_end(command, stdout=sys.stderr)  # Ctrl-C: interop stops its servers first
    wall = time.monotonic() - started
    if not (out / "results.json").exists():
        print(f"the run wrote no results (exit {finished.returncode})", file=sys.stderr)
        return None
    return Measured(f"--jobs {jobs}", read_results(out / "results.json"), wall)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results",
        type=Path,
        action="append",
        default=[],
        help="results.json of a finished run (no new run)",
    )
    parser.add_argument("--jobs", default="auto", help="workers of the parallel run (default auto)")
    parser.add_argument("--category", action="append", default=[], help="default: authorization")
    parser.add_argument("interop_args", nargs="*", help="after --: extra `interop run` arguments")
    args = parser.parse_args(argv)
    if args.results:
        report([Measured(str(path.parent.name), read_results(path)) for path in args.results])
        return 0
    selection = [f"--category={c}" for c in args.category or ["authorization"]] + args.interop_args
    runs = [timed_run("1", selection), timed_run(args.jobs, selection)]
    if None in runs:
        return 1
    report([m for m in runs if m is not None])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
