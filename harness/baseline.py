"""Known failures per product (``<baselines>/<product>.yaml``), for vendors gating CI.

A listed scenario that fails is ``xfail``; one that passes is ``xpass``, reported so that the
baseline gets trimmed (``--strict-baseline`` makes an ``xpass`` fail the run). Errors and
unsupported verdicts are never masked. An entry is a reason, or a mapping with the reason and a
link (a vendor's tracker)::

    known_failures:
      auth.sasl.retry-limit: "no per-stream retry limit yet"
      auth.sasl.invalid-authzid: {reason: "authzid ignored", link: "https://tracker.example/123"}

``interop baseline update`` writes these files from a run (:func:`update_from_run`): every
single-target ``fail`` or ``xfail`` of the product becomes an entry, keeping the reason and link
a person wrote for entries that still fail; entries that passed (``xpass``) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.results import RunRecord
from harness.targets.spec import CatalogueError
from harness.verdict import Outcome, Verdict
from harness.yaml_file import Problem, YamlFileError, line_of, load_file

KEY = "known_failures"


@dataclass(frozen=True)
class KnownFailure:
    reason: str
    link: str = ""

    def describe(self) -> str:
        return f"{self.reason}, {self.link}" if self.link else self.reason

    def to_yaml(self) -> str | dict[str, str]:
        return {"reason": self.reason, "link": self.link} if self.link else self.reason


class BaselineError(YamlFileError, CatalogueError):
    """A baseline file with problems, each with its line; a usage error like any other problem
    of what a run is given (the run does not start)."""


def _entry(value: Any) -> KnownFailure | None:
    """An entry: a reason, or a mapping with the reason and a link; None for anything else."""
    if isinstance(value, str):
        return KnownFailure(value)
    if isinstance(value, dict) and set(value) <= {"reason", "link"} and isinstance(value.get("reason"), str):
        return KnownFailure(value["reason"], str(value.get("link") or ""))
    return None


def read_file(path: Path) -> dict[str, KnownFailure]:
    """The known failures of one file (none without the file); :class:`BaselineError` listing
    every problem with its line."""
    if not path.exists():
        return {}
    data, lines = load_file(path, f"a baseline maps {KEY} to reasons ({KEY}: {{}} for none)", BaselineError)
    failures = data.get(KEY) if isinstance(data, dict) else None
    if not isinstance(failures, dict):
        problem = Problem(line_of(lines, (KEY,)), f"{KEY} must map scenario ids to reasons")
        raise BaselineError(path, [problem])
    known, problems = {}, []
    for scenario_id, value in failures.items():
        entry = _entry(value)
        if entry is None:
            at = line_of(lines, (KEY, scenario_id))
            problems.append(
                Problem(at, f"{KEY}.{scenario_id}: give a reason, or a mapping with reason (and link)")
            )
        else:
            known[str(scenario_id)] = entry
    if problems:
        raise BaselineError(path, problems)
    return known


class Baselines:
    def __init__(self, known: dict[str, dict[str, KnownFailure]]) -> None:
        self.known = known  # product -> scenario id -> why it is known to fail

    @classmethod
    def load(cls, directory: Path) -> Baselines:
        paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
        return cls({path.stem: read_file(path) for path in paths})

    def apply(self, product: str, scenario_id: str, verdict: Verdict) -> Verdict:
        known = self.known.get(product, {}).get(scenario_id)
        if known is None:
            return verdict
        if verdict.outcome is Outcome.FAIL:
            return Verdict(Outcome.XFAIL, f"known failure ({known.describe()}): {verdict.reason}")
        if verdict.outcome is Outcome.PASS:
            return Verdict(
                Outcome.XPASS, f"listed as known failure ({known.describe()}) but passed: trim the baseline"
            )
        return verdict


_FAILING = {Outcome.FAIL.value, Outcome.XFAIL.value}


def update_from_run(run: RunRecord, directory: Path, products: list[str] | None = None) -> list[Path]:
    """Write ``<directory>/<product>.yaml`` for each product of the run's single-target items
    (or only ``products``); returns the files written."""
    failing: dict[str, dict[str, str]] = {}
    for item in run.items:
        if len(item.targets) != 1:
            continue  # federation pairs are not baselined (Baselines.apply sees one product)
        product = item.targets[0].product
        if products and product not in products:
            continue
        found = failing.setdefault(product, {})
        if item.outcome in _FAILING:
            found[item.scenario_id] = item.reason
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for product, now in sorted(failing.items()):
        path = directory / f"{product}.yaml"
        before = read_file(path)
        entries = {
            sid: before[sid] if sid in before else KnownFailure(_first_line(reason))
            for sid, reason in sorted(now.items())
        }
        body = {KEY: {sid: entry.to_yaml() for sid, entry in entries.items()}}
        header = f"# Known failures of {product}, from run {run.run_id} (interop baseline update).\n"
        path.write_text(header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100))
        written.append(path)
    return written


def _first_line(reason: str, limit: int = 160) -> str:
    """A verdict reason as a baseline entry: the first line, shortened."""
    line = reason.splitlines()[0] if reason else "failed"
    return line if len(line) <= limit else line[: limit - 1] + "…"
