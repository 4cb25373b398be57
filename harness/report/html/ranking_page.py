"""``ranking.html``: the targets ranked under the run's profile, with why: per target the
must-pass scenarios it missed and every cell that cost it points (weight, level, verdict), each
linked to its item page, and the profile's weights. Written only when the run has a profile."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from harness.profiles import ANY_CATEGORY
from harness.report.html.pages import RANKING, REASON_SHOWN, write_page
from harness.report.matrix import truncate
from harness.report.ranking import SCORE_RULE, WEIGHT_LEVELS, missed, ranked, score_text, weight_rows
from harness.results import RunRecord


def write_ranking(run: RunRecord, run_dir: Path, links: dict[str, str]) -> Path | None:
    """Write ``ranking.html``; None (and no page) when the run has no profile."""
    found = ranked(run)
    if found is None:
        return None
    profile, standings = found
    return write_page(
        run_dir / RANKING,
        "ranking.html.j2",
        run=run,
        profile=profile,
        standings=standings,
        missed=partial(missed, run),
        items={item.item_id: item for item in run.items},
        links=links,
        score_rule=SCORE_RULE,
        score_text=score_text,
        truncate=lambda text: truncate(text, REASON_SHOWN),
        levels=WEIGHT_LEVELS,
        weights=weight_rows(profile),
        any_category=ANY_CATEGORY,
        ranking_page=RANKING,
    )
