"""Scoring profiles (``--profile NAME|FILE``): how much each kind of check weighs for a reader,
and which rules are deal-breakers, so that every report can rank the targets and say why.

A profile (``fixtures/profiles/<name>.yaml`` or a user's own file, schema
``harness/schemas/profile.schema.json``) gives points per category and level for a passed item
and a list of scenarios that must pass. A target's standing is the points it earned over the
points its items could earn: ``unsupported`` items (an optional feature absent) count on neither
side, a pair item counts for both of its targets. A target that did not pass a must-pass
scenario (or never ran it) ranks after every target that passed them all. The run records the
profile it was given, so ``interop report`` ranks the same way later.

Nothing here knows a protocol or a product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.resources import PROFILES
from harness.results import ItemResult, RunRecord
from harness.verdict import Outcome
from harness.yaml_file import Problem, YamlFileError, load_file, schema, schema_problems

ANY_CATEGORY = "*"
DOCS = "docs/verdicts.md#profiles"
_EARNS = {Outcome.PASS.value, Outcome.XPASS.value}


class ProfileError(YamlFileError):
    """A profile file with problems, each with its line."""


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    weights: dict[str, dict[str, float]]
    must_pass: list[str] = field(default_factory=list)
    description: str = ""

    def weight(self, category: str, level: str) -> float:
        return float(self.weights.get(category, self.weights.get(ANY_CATEGORY, {})).get(level, 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "weights": self.weights,
            "must_pass": self.must_pass,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(
            data["name"],
            data["title"],
            data["weights"],
            list(data.get("must_pass", [])),
            data.get("description", ""),
        )


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES.glob("*.yaml"))


def load_profile(name_or_file: str) -> Profile:
    """A shipped profile by name, or a profile file; :class:`ProfileError` with file:line."""
    path = Path(name_or_file)
    if not path.suffix:
        path = PROFILES / f"{name_or_file}.yaml"
        if not path.is_file():
            raise ProfileError(
                path,
                [
                    Problem(
                        1, f"no profile {name_or_file!r}; shipped: {', '.join(profile_names())}, or a file"
                    )
                ],
            )
    if not path.is_file():
        raise ProfileError(path, [Problem(1, "no such file")])
    data, lines = load_file(path, "a profile needs title and weights", ProfileError)
    problems = schema_problems(data, lines, schema("profile"), DOCS)
    if problems:
        raise ProfileError(path, problems)
    return Profile.from_dict({**data, "name": path.stem})


@dataclass
class Cost:
    """A cell that did not earn its points."""

    item_id: str
    level: str
    outcome: str
    points: float


@dataclass
class Standing:
    target: str
    earned: float = 0.0
    possible: float = 0.0
    missed: list[str] = field(default_factory=list)  # must-pass scenarios not passed ("id (outcome)")
    costs: list[Cost] = field(default_factory=list)  # largest first

    @property
    def ratio(self) -> float:
        return self.earned / self.possible if self.possible else 0.0

    @property
    def qualified(self) -> bool:
        return not self.missed


def _involves(item: ItemResult, target: str) -> bool:
    return target in item.selected_names


def standings(run: RunRecord, profile: Profile) -> list[Standing]:
    """Every target of the run under ``profile``, best first (qualified before the rest)."""
    ranked = []
    for target in run.target_names():
        mine = [item for item in run.items if _involves(item, target)]
        if not mine:
            continue
        standing = Standing(target)
        for item in mine:
            if item.outcome == Outcome.UNSUPPORTED.value:
                continue
            points = profile.weight(item.category, item.level)
            standing.possible += points
            if item.outcome in _EARNS:
                standing.earned += points
            elif points:
                standing.costs.append(Cost(item.item_id, item.level, item.outcome, points))
        for scenario_id in profile.must_pass:
            outcomes = [item.outcome for item in mine if item.scenario_id == scenario_id]
            if not outcomes:
                standing.missed.append(f"{scenario_id} (not run)")
            elif any(o not in _EARNS for o in outcomes):
                standing.missed.append(f"{scenario_id} ({', '.join(sorted(set(outcomes) - _EARNS))})")
        standing.costs.sort(key=lambda c: (-c.points, c.item_id))
        ranked.append(standing)
    return sorted(ranked, key=lambda s: (not s.qualified, -s.ratio, s.target))


def run_profile(run: RunRecord) -> Profile | None:
    """The profile the run was given (recorded in its selection), if any."""
    data = run.selection.get("profile")
    return Profile.from_dict(data) if isinstance(data, dict) else None
