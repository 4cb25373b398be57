"""One section of the index per category, with only its own columns: its table of single-target
scenarios, its table of pair scenarios with their grids, and its scores and leaders (computed
as ``matrix.md`` computes them, so the two reports never disagree)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.report.html.grids import Grid, PairSummary, grid, summary
from harness.report.html.tables import Table, table
from harness.report.matrix import category_sections, format_score, ordered, score
from harness.report.overview import leaders
from harness.results import RunRecord


@dataclass
class CategoryView:
    name: str
    singles: Table | None
    pairs: Table | None
    grids: list[Grid] = field(default_factory=list)
    pair_summary: PairSummary | None = None
    scores: dict[str, str] = field(default_factory=dict)  # target -> its formatted score, in order
    leaders: list[str] = field(default_factory=list)


def category_views(run: RunRecord) -> list[CategoryView]:
    """The run's categories in the reports' order, each with its own tables and scores."""
    order = run.target_names()
    scores = score(run)
    views = []
    for name, items, singles, pairs in category_sections(run):
        pair_table = table(pairs, order) if pairs else None
        views.append(
            CategoryView(
                name,
                table(singles, order) if singles else None,
                pair_table,
                grids=[grid(row, order) for row in pair_table.rows] if pair_table else [],
                pair_summary=summary(pairs, order) if pairs else None,
                scores={
                    target: format_score(scores[target][name])
                    for target in ordered((n for i in items for n in i.selected_names), order)
                },
                leaders=leaders(scores, name),
            )
        )
    return views
