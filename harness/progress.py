"""What a person watching a run sees while it goes.

One line that keeps changing on a terminal (rich): items done of the total, the verdicts so far,
time elapsed and an estimate of what remains, and the item that has been running longest now.
Every finished item that did not pass gets a line of its own with its reason, above it. When
the output is not a terminal (a CI log) the same facts come as plain lines: one per non-pass
item, and a status line every :data:`STATUS_EVERY_S` seconds of progress.

It runs where results arrive (the controller of a parallel run, or the one process of a serial
run) and reads the verdict each item's report carries (``report.interop_item``), so it shows
what the reports will say. pytest's own per-item characters are left out meanwhile; its
summary at the end is unchanged.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import pytest
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

STATUS_EVERY_S = 30.0
VERDICTS = ("pass", "fail", "unsupported", "error", "xfail", "xpass")


class RunProgress:
    """The pytest plugin object that shows progress (see the module documentation)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(file=sys.stdout, highlight=False)
        self.live = self.console.is_terminal
        self.total = 0
        self.done = 0
        self.verdicts: Counter[str] = Counter()
        self.running: dict[str, float] = {}  # nodeid -> when it started
        self.started = time.monotonic()
        self._last_status = self.started
        self._bar: Progress | None = None
        self._task: Any = None

    # -- what the run tells ------------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._set_total(len(session.items))

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._set_total(len(ids))  # every worker collects the whole run

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.running[nodeid] = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        item = getattr(report, "interop_item", None)
        if item is None:
            return
        self.running.pop(report.nodeid, None)
        self.done += 1
        self.verdicts[item["outcome"]] += 1
        if item["outcome"] != "pass":
            self._say(f"{item['outcome'].upper():11} {item['item_id']}: {item['reason']}")
        self._update()

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.running.pop(nodeid, None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        """pytest's per-item letters are replaced by this display (its counts stay)."""
        if getattr(report, "interop_item", None) is None:
            return None
        word = {"passed": "passed", "failed": "failed"}.get(report.outcome, "skipped")
        if hasattr(report, "wasxfail"):
            word = "xfailed" if report.skipped else "xpassed"
        return word, "", ""

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.done:
            self._say(self.status())

    # -- what it shows -----------------------------------------------------------------------

    def status(self) -> str:
        """One line: done/total, verdicts so far, elapsed, remaining, the longest running item."""
        elapsed = time.monotonic() - self.started
        left = (elapsed / self.done * (self.total - self.done)) if self.done and self.total else None
        parts = [
            f"{self.done}/{self.total} items",
            self.verdict_counts(),
            f"{_clock(elapsed)} elapsed",
            f"~{_clock(left)} left" if left is not None else "",
            self.slowest_running(),
        ]
        return " · ".join(p for p in parts if p)

    def verdict_counts(self) -> str:
        return " ".join(f"{v} {self.verdicts[v]}" for v in VERDICTS if self.verdicts[v] or v in VERDICTS[:4])

    def slowest_running(self) -> str:
        if not self.running:
            return ""
        nodeid, since = min(self.running.items(), key=lambda kv: kv[1])
        return f"running longest: {nodeid.rpartition('::')[2]} ({time.monotonic() - since:.0f} s)"

    def _set_total(self, total: int) -> None:
        self.total = total
        self.started = self._last_status = time.monotonic()
        if self.live and self._bar is None and total:
            self._bar = Progress(
                BarColumn(),
                MofNCompleteColumn(),
                _Live(self.verdict_counts),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                _Live(self.slowest_running),
                console=self.console,
                transient=False,
            )
            self._task = self._bar.add_task("items", total=total)
            self._bar.start()

    def _update(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        elif time.monotonic() - self._last_status >= STATUS_EVERY_S and self.done < self.total:
            self._last_status = time.monotonic()
            self._say(self.status())

    def _say(self, line: str) -> None:
        """A line: cut to the terminal's width on a terminal (the reports have the whole
        reason), whole in a log."""
        if self.live:
            self.console.print(Text(line), no_wrap=True, overflow="ellipsis")
        else:
            self.console.print(Text(line), soft_wrap=True)


class _Live(ProgressColumn):
    """A column whose text is computed at every refresh (verdicts, the longest running item)."""

    def __init__(self, text: Any) -> None:
        super().__init__()
        self._text = text

    def render(self, task: Task) -> Text:
        return Text(self._text())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"
