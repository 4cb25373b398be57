"""The ranking of the targets under the run's profile (:mod:`harness.profiles`), for matrix.md,
the HTML summary and ``ranking.html``: who leads, by how much, and which cells cost what."""

from __future__ import annotations

from dataclasses import dataclass

from harness.profiles import Cost, Profile, Standing, run_profile, standings
from harness.report.markdown import escape_md, table
from harness.results import LEVELS, POLICY, ItemResult, RunRecord

COSTS_SHOWN = 5  # the costliest cells per target in matrix.md and the summary; ranking.html has all
SCORE_RULE = (
    "Score: points of passed cells over the points the target's cells could earn (weights per "
    "category and level; unsupported cells count on neither side). A target that did not pass "
    "a must-pass scenario ranks after every target that did."
)


def score_text(standing: Standing) -> str:
    return f"{standing.ratio:.0%} ({standing.earned:g}/{standing.possible:g})"


def cost_text(cost: Cost) -> str:
    return f"{cost.item_id} ({cost.outcome}, {cost.level}, -{cost.points:g})"


def ranked(run: RunRecord) -> tuple[Profile, list[Standing]] | None:
    profile = run_profile(run)
    return (profile, standings(run, profile)) if profile else None


@dataclass(frozen=True)
class Missed:
    """A must-pass scenario a target did not pass, with its cells of it (none when it never ran)."""

    text: str  # as the standing says it: "id (outcome)"
    items: list[ItemResult]


def missed(run: RunRecord, standing: Standing) -> list[Missed]:
    """The standing's missed must-pass scenarios, each with the target's cells of that scenario."""
    found = []
    for text in standing.missed:
        scenario_id = text.split(" (", 1)[0]
        cells = [i for i in run.items if i.scenario_id == scenario_id and standing.target in i.selected_names]
        found.append(Missed(text, cells))
    return found


WEIGHT_LEVELS = (*LEVELS, POLICY)


def weight_rows(profile: Profile) -> list[tuple[str, list[float]]]:
    """The profile's weights as a table, in the profile's order: per category it names (``*``:
    every other), the points a passed cell earns at each of :data:`WEIGHT_LEVELS` (a level the
    category leaves out earns 0, as :meth:`Profile.weight` counts it)."""
    return [
        (category, [profile.weight(category, level) for level in WEIGHT_LEVELS])
        for category in profile.weights
    ]


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
        SCORE_RULE,
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
