"""The history of cells over several runs (``interop history RUN...``): one page, one row per
cell, one column per run in time order, so a vendor sees when a cell changed and what it said.

Rows that changed across the runs come first (the ones to read); each verdict links to the
item's page in its run folder when that page exists, and its reason shows on hover. Target
text stays escaped (Jinja2 autoescaping, as in every report).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.diff import knob_rows
from harness.report.html import TEMPLATES, item_dir
from harness.results import ItemResult, RunRecord


@dataclass(frozen=True)
class HistoryCell:
    outcome: str  # "" when the run has no such cell
    reason: str = ""
    link: str | None = None


@dataclass(frozen=True)
class HistoryRow:
    cell: str
    level: str
    cells: list[HistoryCell]

    @property
    def changed(self) -> bool:
        return len({c.outcome for c in self.cells}) > 1


def history_rows(runs: list[tuple[RunRecord, Path]], out: Path) -> list[HistoryRow]:
    """One row per cell of any run; links are relative to the folder of ``out``."""
    by_run = [{item.item_id: item for item in run.items} for run, _ in runs]
    rows = []
    for cell in sorted(set().union(*by_run)):
        cells = [
            _cell(items.get(cell), folder, out.parent)
            for items, (_, folder) in zip(by_run, runs, strict=True)
        ]
        level = next(items[cell].level for items in by_run if cell in items)
        rows.append(HistoryRow(cell, level, cells))
    return sorted(rows, key=lambda row: (not row.changed, row.cell))


def _cell(item: ItemResult | None, run_dir: Path, base: Path) -> HistoryCell:
    if item is None:
        return HistoryCell("")
    page = run_dir / item_dir(item) / "index.html"
    link = os.path.relpath(page, base) if page.is_file() else None
    return HistoryCell(item.outcome, item.reason, link)


def render_history(runs: list[tuple[RunRecord, Path]], out: Path) -> Path:
    """Write the history page of ``runs`` (record, run folder) to ``out``, oldest run first."""
    runs = sorted(runs, key=lambda pair: pair[0].started_at)
    rows = history_rows(runs, out)
    page = TEMPLATES.get_template("history.html.j2").render(
        runs=[run for run, _ in runs],
        rows=rows,
        changed=sum(row.changed for row in rows),
        knobs=knob_rows([run for run, _ in runs]),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
