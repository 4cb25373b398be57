"""``behaviour.html``: what each product did, rule by rule, side by side, from the same model as
``behaviour.md`` (:func:`harness.report.behaviour.behaviour_sections`); each cell links to its
item page, and the index's filters, search and sorting work here too."""

from __future__ import annotations

from pathlib import Path

from harness.report.behaviour import INTRO, behaviour_sections, detail, what_happened
from harness.report.html.filters import filter_context, search_text
from harness.report.html.pages import BEHAVIOUR, RANKING, existing, write_page
from harness.results import ItemResult, RunRecord


def _search(first: ItemResult, cells: list[ItemResult | None]) -> str:
    return search_text(first, (what_happened(i) for i in cells if i))


def write_behaviour(run: RunRecord, run_dir: Path, links: dict[str, str]) -> Path:
    sections = behaviour_sections(run)
    return write_page(
        run_dir / BEHAVIOUR,
        "behaviour.html.j2",
        run=run,
        sections=sections,
        intro=INTRO,
        detail=detail,
        search=_search,
        ranking_page=existing(run_dir, RANKING),
        **filter_context(run, [s.category for s in sections], links),
    )
