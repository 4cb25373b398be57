"""The index's category tables: one row per scenario, one column per target (single-target
scenarios) or per ordered pair (pair scenarios), only for the targets or pairs that ran."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from harness.report.html.filters import search_text
from harness.results import ItemResult


@dataclass(frozen=True)
class Column:
    """A column of a category table: one target, or one ordered pair (origin, receiver)."""

    targets: tuple[str, ...]

    @property
    def label(self) -> str:
        return " → ".join(self.targets)


@dataclass
class Row:
    """One scenario of a category table; ``cells`` line up with the table's columns."""

    first: ItemResult
    cells: list[list[ItemResult]]

    @property
    def search(self) -> str:
        """What the search box matches: id, title, spec, level and every full reason."""
        return search_text(self.first, (i.reason for cell in self.cells for i in cell))


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]


def _column_of(item: ItemResult) -> tuple[str, ...]:
    return tuple(item.pair) if item.pair else (item.targets[0].name,)


def table(items: list[ItemResult], order: list[str]) -> Table:
    """Rows per scenario (sorted by id), columns only for the targets or pairs that ran."""
    index = {name: i for i, name in enumerate(order)}
    keys = sorted(
        {_column_of(i) for i in items}, key=lambda k: [index.get(n, len(index)) for n in k] + list(k)
    )
    columns = [Column(key) for key in keys]
    cells: dict[str, dict[tuple[str, ...], list[ItemResult]]] = defaultdict(lambda: defaultdict(list))
    for item in items:
        cells[item.scenario_id][_column_of(item)].append(item)
    rows = [
        Row(next(iter(by_column.values()))[0], [by_column.get(c.targets, []) for c in columns])
        for _, by_column in sorted(cells.items())
    ]
    return Table(columns, rows)
