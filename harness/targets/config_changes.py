"""What a run changed in a product's packaged configuration, for the reports.

A managed target runs from the files its package installed plus the run's edits (addresses,
ports, paths, the run's certificate, storage: DESIGN.md, "default variant"). Readers of a matrix
must see those edits, and above all the ones that add what the package does not configure at
all (a TLS certificate where the packaged file has none: the product as installed would not
offer TLS). The diff is computed from the files themselves, never kept by hand; an edit that
adds something says so in target.yaml (``adds:``), and the diff shows the packaged side.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

ADDS_KEY = "adds"  # on a files: edit in target.yaml: what the edit adds that the package lacks


@dataclass
class ConfigChanges:
    """The run's edits of one target's packaged files (knob edits are reported as knobs)."""

    diffs: dict[str, str] = field(default_factory=dict)  # dest file -> unified diff
    adds: list[str] = field(default_factory=list)  # "c2s.xml: ..." from the edits' adds:
    left_out: list[str] = field(default_factory=list)  # the adds: edits --variant as-installed omits

    def record(self, dest: str, source: str, packaged: str, edited: str, edits: list[dict[str, Any]]) -> None:
        """Record one file: ``packaged`` (normalized) against ``edited`` (the run's edits only)."""
        diff = difflib.unified_diff(
            _non_blank(packaged),
            _non_blank(edited),
            fromfile=f"{source} (as packaged; comments and layout normalized)",
            tofile=f"{dest} (as the run edited it)",
        )
        text = "".join(diff)
        if text:
            self.diffs[dest] = text
        self.adds += [f"{dest}: {edit[ADDS_KEY]}" for edit in edits if edit.get(ADDS_KEY)]

    def changed_lines(self) -> dict[str, int]:
        """Per file, how many lines the run's edits changed (added or removed lines of the diff)."""
        return {
            dest: sum(
                1 for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))
            )
            for dest, diff in self.diffs.items()
        }

    def diff_text(self, replacements: dict[str, str]) -> str:
        """Every file's diff, with run-specific strings (work folder, address) replaced, so that
        the workers of one run write the same text."""
        text = "".join(self.diffs[dest] for dest in sorted(self.diffs))
        for old, new in replacements.items():
            if old:
                text = text.replace(old, new)
        return text


def _non_blank(text: str) -> list[str]:
    """The lines that say something (blank lines would only blur the diff: difflib's heuristics
    treat such frequent lines as junk and show them as changed)."""
    return [line for line in text.splitlines(keepends=True) if line.strip()]


def without_adds(edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The edits as config_edit applies them (``adds:`` is for the reports only)."""
    return [{k: v for k, v in edit.items() if k != ADDS_KEY} for edit in edits]
