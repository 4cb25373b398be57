"""What each product actually did, rule by rule (``behaviour.md``): the matrix says pass or fail,
this says how, side by side, so a reader sees that three products break one rule in three ways
(or keep it in three ways: an error, an unsubscribed presence, silence).

A cell is what the item's verdict rests on: for a ``pass`` the observations of its decisive
steps (``decided_by``), otherwise the verdict and its reason. Single-target scenarios get one
column per target; pair scenarios (federation) one row per ordered pair. Everything goes through
the matrix's escaping: most of it is text a target sent.
"""

from __future__ import annotations

from collections import defaultdict

from harness.report.markdown import escape_md, table
from harness.report.matrix import NOT_RUN, category_sections, ordered
from harness.results import ItemResult, RunRecord
from harness.verdict import Outcome

INTRO = (
    "What each product did for each rule: for a pass, what the decisive steps saw; otherwise the "
    "verdict and its reason. The verdicts themselves are in matrix.md."
)


def what_happened(item: ItemResult) -> str:
    """The item's behaviour in one line (not escaped)."""
    if item.outcome == Outcome.PASS.value and item.decided_by:
        return "pass: " + "; ".join(str(d.get("observed", "")) for d in item.decided_by)
    return f"{item.outcome}: {item.reason}" if item.reason else item.outcome


def _singles(items: list[ItemResult], order: list[str]) -> str:
    columns = ordered((i.targets[0].name for i in items), order)
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    for item in items:
        cells[item.scenario_id][item.targets[0].name] = escape_md(what_happened(item))
    rows = [[escape_md(sid)] + [cells[sid].get(name, NOT_RUN) for name in columns] for sid in sorted(cells)]
    return table(rows, ["id"] + [escape_md(c) for c in columns])


def _pairs(items: list[ItemResult]) -> str:
    rows = [
        [escape_md(i.scenario_id), escape_md(" -> ".join(i.target_names)), escape_md(what_happened(i))]
        for i in sorted(items, key=lambda i: (i.scenario_id, i.target_names))
    ]
    return table(rows, ["id", "origin -> receiver", "what happened"])


def render_behaviour(run: RunRecord) -> str:
    order = run.target_names()
    lines = [f"# What each product did: run {escape_md(run.run_id)}", "", INTRO]
    for category, _, singles, pairs in category_sections(run):
        lines += ["", f"## {escape_md(category)}"]
        if singles:
            lines += ["", _singles(singles, order)]
        if pairs:
            lines += ["", _pairs(pairs)]
    return "\n".join(lines) + "\n"
