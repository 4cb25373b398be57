"""Federation grids of the index, as in ``matrix.md``: per pair scenario an origin x receiver grid
of its cells, and per category a grid of passed/total over all its pair scenarios."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harness.report.html.tables import Row
from harness.report.matrix import ordered, pair_summary
from harness.results import ItemResult

Pair = tuple[str, str]


@dataclass
class Grid:
    """One pair scenario as an origin x receiver grid (rows: origins, columns: receivers)."""

    row: Row
    origins: list[str]
    receivers: list[str]
    cells: dict[Pair, list[ItemResult]]


@dataclass
class PairSummary:
    """Passed/total per (origin, receiver) over every pair scenario of a category."""

    origins: list[str]
    receivers: list[str]
    cells: dict[Pair, str]


def _by_pair(items: list[ItemResult]) -> dict[Pair, list[ItemResult]]:
    cells: dict[Pair, list[ItemResult]] = defaultdict(list)
    for item in items:
        if item.pair:
            cells[item.pair].append(item)
    return dict(cells)


def grid(row: Row, order: list[str]) -> Grid:
    """The grid of one pair scenario: only the origins and receivers that ran it."""
    cells = _by_pair([i for cell in row.cells for i in cell])
    return Grid(row, ordered((p[0] for p in cells), order), ordered((p[1] for p in cells), order), cells)


def summary(items: list[ItemResult], order: list[str]) -> PairSummary:
    """The pair summary of a category's pair items."""
    per_pair = _by_pair(items)
    return PairSummary(
        ordered((p[0] for p in per_pair), order),
        ordered((p[1] for p in per_pair), order),
        {pair: pair_summary(group) for pair, group in per_pair.items()},
    )
