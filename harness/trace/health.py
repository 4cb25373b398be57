"""Server health per item: the lines of a target's log slice that say the server itself went
wrong (an error it logged, a crash report), counted whatever the verdict. A product that logs a
crash on a valid request is worth knowing even when the item passes.

What counts is the catalogue's word (``health:`` in ``target.yaml``: a regular expression for
error lines, one for crash lines, and optionally which logs to read, so that a line written to
two logs counts once); the core knows no product's log format. A target without ``health:`` is
not counted (reports say so rather than show zero).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

EXAMPLES = 3  # lines kept per kind, for the reports; the log slice has them all


@dataclass(frozen=True)
class LogHealth:
    error: re.Pattern[str] | None
    crash: re.Pattern[str] | None
    logs: tuple[str, ...] = ()  # log names to read (as in target.yaml logs:); empty: all

    @classmethod
    def parse(cls, section: dict[str, Any], where: str) -> LogHealth:
        """From a ``health:`` section; ValueError naming ``where`` for a bad one."""
        unknown = set(section) - {"error", "crash", "logs"}
        if unknown:
            raise ValueError(f"{where}: health: unknown keys {sorted(unknown)}; use error, crash, logs")
        try:
            patterns = {k: re.compile(section[k]) if section.get(k) else None for k in ("error", "crash")}
        except re.error as exc:
            raise ValueError(f"{where}: health: not a regular expression: {exc}") from None
        return cls(patterns["error"], patterns["crash"], tuple(str(n) for n in section.get("logs") or ()))

    def reads(self, log_name: str) -> bool:
        return not self.logs or log_name in self.logs


def count(health: LogHealth, slices: dict[str, str]) -> dict[str, Any]:
    """``{errors, crashes, examples}`` over the log slices (log name -> text) health reads."""
    found: dict[str, list[str]] = {"errors": [], "crashes": []}
    for name, text in slices.items():
        if not health.reads(name):
            continue
        for line in text.splitlines():
            if health.crash is not None and health.crash.search(line):
                found["crashes"].append(line)
            elif health.error is not None and health.error.search(line):
                found["errors"].append(line)
    examples = [line[:300] for line in found["crashes"][:EXAMPLES] + found["errors"][:EXAMPLES]]
    return {"errors": len(found["errors"]), "crashes": len(found["crashes"]), "examples": examples}
