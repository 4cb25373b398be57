"""``index.html``: the summary (verdict totals, exit code, run time, scores per target, category
and level, who leads each category, the profile's short ranking, server health, every problem
that failed the run, what the run changed in packaged configurations), the targets, then one
section per category with its filterable tables and grids."""

from __future__ import annotations

from pathlib import Path

from harness.report.health import INTRO as HEALTH_INTRO
from harness.report.health import run_health
from harness.report.html.categories import category_views
from harness.report.html.filters import filter_context
from harness.report.html.pages import BEHAVIOUR, INDEX, RANKING, REASON_SHOWN, existing, write_page
from harness.report.matrix import (
    CONFIG_CHANGES_INTRO,
    NOT_VERIFIED,
    config_changes,
    entry_state,
    spec_text,
    truncate,
    variant_text,
)
from harness.report.overview import LEAD_RULE, key_log_text, run_seconds, seconds_text, totals
from harness.report.ranking import COSTS_SHOWN, SCORE_RULE, cost_text, ranked, score_text
from harness.results import ItemResult, RunRecord, exit_code, exit_problems

PROBLEMS_SHOWN = 10  # problems listed open in the summary; the rest are one click away, counted


def _problems(run: RunRecord, links: dict[str, str]) -> list[tuple[str, str | None]]:
    """Every reason the run failed, with the page of the item it names (None for run-wide ones)."""
    return [(problem, links.get(problem.split(" (", 1)[0])) for problem in exit_problems(run)]


def _cell_reason(item: ItemResult) -> str:
    return truncate(item.reason, REASON_SHOWN)


def write_index(run: RunRecord, run_dir: Path, links: dict[str, str]) -> Path:
    """Write ``index.html``; it links ``behaviour.html`` and ``ranking.html`` when they are there."""
    categories = category_views(run)
    return write_page(
        run_dir / INDEX,
        "index.html.j2",
        run=run,
        categories=categories,
        totals=totals(run),
        exit_code=exit_code(run),
        problems=_problems(run, links),
        problems_shown=PROBLEMS_SHOWN,
        duration=seconds_text(run_seconds(run)),
        lead_rule=LEAD_RULE,
        spec_text=spec_text,
        cell_reason=_cell_reason,
        entry_state=entry_state,
        not_verified=NOT_VERIFIED,
        config_changes=[(c, existing(run_dir, c.diff)) for c in config_changes(run)],
        variant=variant_text(run),
        key_log=key_log_text(run),
        config_changes_intro=CONFIG_CHANGES_INTRO,
        file_link=lambda rel: existing(run_dir, rel),
        behaviour_page=existing(run_dir, BEHAVIOUR),
        ranking_page=existing(run_dir, RANKING),
        ranking=ranked(run),
        score_rule=SCORE_RULE,
        health=run_health(run),
        health_intro=HEALTH_INTRO,
        score_text=score_text,
        cost_text=cost_text,
        costs_shown=COSTS_SHOWN,
        **filter_context(run, [c.name for c in categories], links),
    )
