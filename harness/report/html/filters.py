"""What the filterable pages (``index.html``, ``behaviour.html``) share: the filter form's choices,
what the search box matches, how cells sort, and the names their cell macro reads.

The pages' script (``_filters.js.j2``) works on their markup alone: ``section.category`` per
category, ``table.matrix`` tables, ``.filterable`` rows with ``data-level`` and ``data-search``,
``td.item`` cells with ``data-verdict`` and ``data-targets``. A page built that way filters,
searches and sorts with no code of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.report.matrix import NOT_RUN, ordered, spec_text
from harness.results import LEVELS, POLICY, ItemResult, RunRecord

# sort rank of a cell: what needs reading first sorts first
VERDICT_RANK = {"fail": 0, "error": 1, "xpass": 2, "xfail": 3, "unsupported": 4, "pass": 5}
LEVEL_RANK = {level: rank for rank, level in enumerate((*LEVELS, POLICY))}


def search_text(first: ItemResult, texts: Iterable[str]) -> str:
    """What the search box matches for a row: its scenario's id, title, spec and level, and
    ``texts`` (the full reasons or behaviour of its cells), lower-cased."""
    return " ".join([first.scenario_id, first.title, spec_text(first.spec), first.level, *texts]).lower()


def _present(values: Iterable[str], order: Iterable[str]) -> list[str]:
    """The values that occur, in ``order`` first, then the rest sorted (filter choices)."""
    return ordered(set(values), list(order))


def filter_context(run: RunRecord, categories: list[str], links: dict[str, str]) -> dict[str, Any]:
    """The names ``_filters.html.j2`` and the cell macro of ``_macros.html.j2`` read."""
    return {
        "links": links,
        "not_run": NOT_RUN,
        "verdict_rank": VERDICT_RANK,
        "level_rank": LEVEL_RANK,
        "filter_categories": categories,
        "filter_levels": _present((i.level for i in run.items), LEVEL_RANK),
        "filter_verdicts": _present((i.outcome for i in run.items), VERDICT_RANK),
        "filter_targets": _present((n for i in run.items for n in i.selected_names), run.target_names()),
    }
