"""Known failures per product (``fixtures/baselines/<product>.yaml``), for vendors gating CI.

A listed scenario that fails is ``xfail``; one that passes is ``xpass``, reported so that the
baseline gets trimmed. Errors and unsupported verdicts are never masked.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.targets.spec import CatalogueError
from harness.verdict import Outcome, Verdict


class Baselines:
    def __init__(self, known: dict[str, dict[str, str]]) -> None:
        self.known = known  # product -> scenario id -> why it is known to fail

    @classmethod
    def load(cls, directory: Path) -> Baselines:
        known: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
            data = yaml.safe_load(path.read_text()) or {}
            failures = data.get("known_failures") or {}
            if not isinstance(failures, dict):
                raise CatalogueError(f"{path}: known_failures must map scenario ids to reasons")
            known[path.stem] = {str(k): str(v) for k, v in failures.items()}
        return cls(known)

    def apply(self, product: str, scenario_id: str, verdict: Verdict) -> Verdict:
        why = self.known.get(product, {}).get(scenario_id)
        if why is None:
            return verdict
        if verdict.outcome is Outcome.FAIL:
            return Verdict(Outcome.XFAIL, f"known failure ({why}): {verdict.reason}")
        if verdict.outcome is Outcome.PASS:
            return Verdict(Outcome.XPASS, f"listed as known failure ({why}) but passed: trim the baseline")
        return verdict
