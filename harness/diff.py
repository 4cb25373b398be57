"""What changed between two runs, cell by cell (``interop diff OLD NEW``), for a vendor's CI.

A cell is an item id (``scenario[target]`` or ``scenario[origin->receiver]``), the same in every
run of the same scenarios and targets. A change is a cell whose verdict differs, or that one of
the runs lacks. A **regression** is a change that makes the new run fail where the old one did
not, by the same rule as the exit code (:func:`harness.results.fails_run` under ``--gate``): a
cell that now fails the run, whatever it was before. Cells that only one run has are listed
(coverage changed) but are regressions only when the new run has them failing.

The Markdown is meant for a CI job summary: a count line, then one table of the changed cells,
regressions first. Target text (reasons) goes through the matrix's escaping, so a hostile
server's text stays text there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.report.markdown import escape_md
from harness.results import DEFAULT_GATE, ItemResult, RunRecord, fails_run, read_results

RESULTS_FILE = "results.json"
ONLY_SHOWN = 20  # cells named per "only in one run" line; a run of another selection has many


def load_run(path: Path) -> RunRecord:
    """A run from its ``results.json`` or from the run folder holding it."""
    return read_results(path / RESULTS_FILE if path.is_dir() else path)


@dataclass(frozen=True)
class Change:
    """One cell whose verdict differs between the runs (None: the run has no such cell)."""

    cell: str
    level: str
    old: ItemResult | None
    new: ItemResult | None
    regression: bool

    @property
    def old_outcome(self) -> str:
        return self.old.outcome if self.old else "absent"

    @property
    def new_outcome(self) -> str:
        return self.new.outcome if self.new else "absent"


def compare(old: RunRecord, new: RunRecord, gate: str = DEFAULT_GATE) -> list[Change]:
    """Every cell whose verdict differs, regressions first, then by cell id."""
    before = {item.item_id: item for item in old.items}
    after = {item.item_id: item for item in new.items}
    changes = []
    for cell in sorted(before.keys() | after.keys()):
        was, now = before.get(cell), after.get(cell)
        if was is not None and now is not None and was.outcome == now.outcome:
            continue
        regression = now is not None and fails_run(now, gate) and (was is None or not fails_run(was, gate))
        level = (now or was).level  # type: ignore[union-attr]  # one of them exists
        changes.append(Change(cell, level, was, now, regression))
    return sorted(changes, key=lambda c: (not c.regression, c.cell))


@dataclass(frozen=True)
class KnobRow:
    """A knob whose value differs for one target among several runs."""

    target: str
    knob: str
    values: list[str]  # per run, "" where the run lacks the target or the knob


def knob_rows(runs: Sequence[RunRecord]) -> list[KnobRow]:
    """What the configurations of the runs differ in, per target of any of them (e.g. default
    against a variant such as hardened): the knob bundle behind the changed cells."""
    per_run = [{t["name"]: t.get("knobs", {}) for t in run.targets} for run in runs]
    rows = []
    for name in sorted(set().union(*per_run)):
        for knob in sorted(set().union(*(targets.get(name, {}) for targets in per_run))):
            values = [str(targets.get(name, {}).get(knob, "")) for targets in per_run]
            if len(set(values)) > 1:
                rows.append(KnobRow(name, knob, values))
    return rows


@dataclass(frozen=True)
class KnobChange:
    """A knob whose value differs for one target between two runs ("" where a run lacks it)."""

    target: str
    knob: str
    old: str
    new: str


def knob_changes(old: RunRecord, new: RunRecord) -> list[KnobChange]:
    """:func:`knob_rows` of two runs, for the targets both have: a target only one run has is a
    change of coverage (its cells are listed as only in that run), not of configuration."""
    shared = {t["name"] for t in old.targets} & {t["name"] for t in new.targets}
    return [
        KnobChange(row.target, row.knob, *row.values) for row in knob_rows([old, new]) if row.target in shared
    ]


def diff_exit_code(changes: list[Change]) -> int:
    """1 when the new run regressed (a CI job gates on it), else 0."""
    return 1 if any(c.regression for c in changes) else 0


def render_markdown(changes: list[Change], old: RunRecord, new: RunRecord) -> str:
    regressions = sum(c.regression for c in changes)
    lines = [
        f"## interop diff: {escape_md(old.run_id)} ({escape_md(old.variant)}) -> "
        f"{escape_md(new.run_id)} ({escape_md(new.variant)})",
        "",
        f"{len(changes)} changed cells, {regressions} regressions "
        f"({len(old.items)} cells before, {len(new.items)} after; a cell only one run has counts too).",
    ]
    knobs = knob_changes(old, new)
    if knobs:
        lines += [
            "",
            "Configuration that differs:",
            "",
            "| target | knob | before | after |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {escape_md(k.target)} | {escape_md(k.knob)} | {escape_md(k.old)} | {escape_md(k.new)} |"
            for k in knobs
        ]
    both = [c for c in changes if c.old is not None and c.new is not None or c.regression]
    lines += [
        "",
        f"{len(both)} cells in both runs changed verdict"
        + (" (and cells new in this run that fail it)" if any(c.old is None for c in both) else "")
        + ":",
    ]
    if both:
        lines += [
            "",
            "| | cell | level | before | after | reason now |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for c in both:
            mark = "REGRESSION" if c.regression else ""
            reason = escape_md(c.new.reason if c.new else "")
            lines.append(
                f"| {mark} | {escape_md(c.cell)} | {c.level} | {c.old_outcome} | {c.new_outcome} | {reason} |"
            )
    for label, side in (
        ("old", [c for c in changes if c.new is None]),
        ("new", [c for c in changes if c.old is None]),
    ):
        if side:
            shown = ", ".join(escape_md(c.cell) for c in side[:ONLY_SHOWN])
            more = f", and {len(side) - ONLY_SHOWN} more" if len(side) > ONLY_SHOWN else ""
            lines += ["", f"Only in the {label} run ({len(side)} cells): {shown}{more}."]
    return "\n".join(lines) + "\n"
