"""What each product actually did, rule by rule: the matrix says pass or fail, this says how, side
by side, so a reader sees that three products break one rule in three ways (or keep it in three
ways: an error, an unsubscribed presence, silence).

One model (:func:`behaviour_sections`) feeds both renderings, ``behaviour.md`` here and
``behaviour.html`` (:mod:`harness.report.html.behaviour_page`), so the two never disagree. A cell
is what the item's verdict rests on: for a ``pass`` the observations of its decisive steps
(``decided_by``), otherwise the verdict and its reason. Single-target scenarios get one column
per target; pair scenarios (federation) one row per ordered pair. The Markdown goes through the
matrix's escaping: most of it is text a target sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.report.markdown import escape_md, table
from harness.report.matrix import NOT_RUN, category_sections, ordered
from harness.results import ItemResult, RunRecord
from harness.verdict import Outcome

INTRO = (
    "What each product did for each rule: for a pass, what the decisive steps saw; otherwise the "
    "verdict and its reason."
)


def detail(item: ItemResult) -> str:
    """What the verdict rests on in one line (not escaped): a pass's observations, else the reason."""
    if item.outcome == Outcome.PASS.value and item.decided_by:
        return "; ".join(str(d.get("observed", "")) for d in item.decided_by)
    return item.reason


def what_happened(item: ItemResult) -> str:
    """The item's behaviour in one line (not escaped): its verdict and :func:`detail`."""
    text = detail(item)
    return f"{item.outcome}: {text}" if text else item.outcome


@dataclass(frozen=True)
class ScenarioRow:
    """One single-target scenario: its first item (id, title, level) and a cell per target."""

    first: ItemResult
    cells: list[ItemResult | None]  # lined up with the section's targets; None: not run


@dataclass(frozen=True)
class BehaviourSection:
    """One category: its single-target scenarios side by side, then its pair items one per row."""

    category: str
    targets: list[str]
    singles: list[ScenarioRow]
    pairs: list[ItemResult]  # by scenario id, then origin and receiver


def _rows(items: list[ItemResult], targets: list[str]) -> list[ScenarioRow]:
    cells: dict[str, dict[str, ItemResult]] = {}
    for item in items:
        cells.setdefault(item.scenario_id, {})[item.targets[0].name] = item
    return [
        ScenarioRow(next(iter(by_target.values())), [by_target.get(name) for name in targets])
        for _, by_target in sorted(cells.items())
    ]


def behaviour_sections(run: RunRecord) -> list[BehaviourSection]:
    """The run's categories in the reports' order, each with its rows of behaviour."""
    order = run.target_names()
    sections = []
    for category, _, singles, pairs in category_sections(run):
        targets = ordered((i.targets[0].name for i in singles), order)
        by_pair = sorted(pairs, key=lambda i: (i.scenario_id, i.target_names))
        sections.append(BehaviourSection(category, targets, _rows(singles, targets), by_pair))
    return sections


def _cell(item: ItemResult | None) -> str:
    return escape_md(what_happened(item)) if item else NOT_RUN


def render_behaviour(run: RunRecord) -> str:
    """``behaviour.md``: a heading per category, a table of its scenarios, a table of its pairs."""
    lines = [
        f"# What each product did: run {escape_md(run.run_id)}",
        "",
        f"{INTRO} The verdicts themselves are in matrix.md.",
    ]
    for section in behaviour_sections(run):
        lines += ["", f"## {escape_md(section.category)}"]
        if section.singles:
            rows = [[escape_md(r.first.scenario_id)] + [_cell(c) for c in r.cells] for r in section.singles]
            lines += ["", table(rows, ["id"] + [escape_md(t) for t in section.targets])]
        if section.pairs:
            rows = [
                [escape_md(i.scenario_id), escape_md(" -> ".join(i.target_names)), _cell(i)]
                for i in section.pairs
            ]
            lines += ["", table(rows, ["id", "origin -> receiver", "what happened"])]
    return "\n".join(lines) + "\n"
