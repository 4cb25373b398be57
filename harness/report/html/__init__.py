"""The HTML report: the matrix a person clicks through to the evidence of every cell.

One module per view, all written with one Jinja environment (:mod:`.pages`):

- ``index.html`` (:mod:`.index_page`): the summary, the targets, one section per category with
  only its own columns (:mod:`.categories`, :mod:`.tables`) and, for pair scenarios, an origin x
  receiver grid each and the pair summary (:mod:`.grids`), as in ``matrix.md``;
- ``behaviour.html`` (:mod:`.behaviour_page`): what each product did, side by side, the same rows
  as ``behaviour.md``;
- ``ranking.html`` (:mod:`.ranking_page`): the ranking under the run's profile and why;
- ``<item folder>/index.html`` (:mod:`.item_pages`): one page per item, evidence inline;
- ``scenarios/<file>.html`` (:mod:`.scenario_pages`): the scenario files the run used, with line
  anchors that "line N" in reasons links to.

Filters, sorting and search (index and behaviour, :mod:`.filters`) are plain inline JavaScript:
the pages work from a file share, offline. Links go only to files that exist.

Everything that came from a target (reasons, stanza text, log lines, versions) is escaped:
Jinja2 autoescaping is on for every template, and :func:`cite_lines` escapes each piece it
joins. No template marks target text ``|safe``.
"""

from __future__ import annotations

from pathlib import Path

from harness.report.html.behaviour_page import write_behaviour
from harness.report.html.index_page import write_index
from harness.report.html.item_pages import write_item_page
from harness.report.html.pages import TEMPLATES, item_dir, item_links
from harness.report.html.ranking_page import write_ranking
from harness.report.html.scenario_pages import cite_lines, copy_scenarios
from harness.results import RunRecord

__all__ = ["TEMPLATES", "cite_lines", "item_dir", "render_html"]


def render_html(run: RunRecord, run_dir: Path, written: set[str] | None = None) -> list[Path]:
    """Write every page of the report; returns them all: ``index.html`` first, then
    ``behaviour.html``, ``ranking.html`` (when the run has a profile), the item pages and the
    scenario pages. The pages the index links are written before it, so it links only what is there.

    ``written``: ids of items whose pages are there already, which are not written again (a live
    report renders as items finish, :mod:`harness.live`); the ids of the pages written join it."""
    run_dir = Path(run_dir)
    scenarios = copy_scenarios(run, run_dir)
    links = item_links(run)
    ranking = write_ranking(run, run_dir, links)  # before the pages that link it
    behaviour = write_behaviour(run, run_dir, links)
    fresh = [i for i in run.items if written is None or i.item_id not in written]
    items = [write_item_page(run, i, run_dir, scenarios.get(i.scenario_sha256)) for i in fresh]
    if written is not None:
        written.update(i.item_id for i in fresh)
    index = write_index(run, run_dir, links)
    views = [behaviour, ranking] if ranking else [behaviour]
    return [index, *views, *items, *(run_dir / s.page for s in scenarios.values())]
