"""The ranking of the targets under the run's profile (:mod:`harness.profiles`), for matrix.md
and the HTML summary: who leads, by how much, and which cells cost what."""

from __future__ import annotations

from harness.profiles import Cost, Profile, Standing, run_profile, standings
from harness.report.markdown import escape_md, table
from harness.results import RunRecord

COSTS_SHOWN = 5  # the costliest cells per target; the item pages have the rest


def score_text(standing: Standing) -> str:
    return f"{standing.ratio:.0%} ({standing.earned:g}/{standing.possible:g})"


def cost_text(cost: Cost) -> str:
    return f"{cost.item_id} ({cost.outcome}, {cost.level}, -{cost.points:g})"


def ranked(run: RunRecord) -> tuple[Profile, list[Standing]] | None:
    profile = run_profile(run)
    return (profile, standings(run, profile)) if profile else None


def ranking_lines(run: RunRecord) -> list[str]:
    """The Markdown section (empty when the run has no profile)."""
    found = ranked(run)
    if found is None:
        return []
    profile, ranking = found
    lines = [
        "",
        f"## Ranking under the profile {escape_md(profile.title)} ({escape_md(profile.name)})",
        "",
        escape_md(profile.description) if profile.description else "",
        "",
        "Score: points of passed cells over the points the target's cells could earn (weights per "
        "category and level; unsupported cells count on neither side). A target that did not pass "
        "a must-pass scenario ranks after every target that did.",
        "",
    ]
    rows = []
    for rank, standing in enumerate(ranking, 1):
        costs = [escape_md(cost_text(c)) for c in standing.costs[:COSTS_SHOWN]]
        more = len(standing.costs) - COSTS_SHOWN
        rows.append(
            [
                str(rank),
                escape_md(standing.target),
                score_text(standing),
                escape_md("; ".join(standing.missed)) or "none",
                "; ".join(costs) + (f"; and {more} more" if more > 0 else "") or "nothing",
            ]
        )
    lines.append(table(rows, ["rank", "target", "score", "must-pass not passed", "costs most"]))
    return lines
