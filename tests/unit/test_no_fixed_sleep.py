"""Nothing sleeps for a fixed time to decide a verdict: the only sleeps in the harness are the
polling intervals of a target's readiness probe and of its teardown, and the window of a
measurement over time (reconnections), never a wait that stands in for an observation."""

from __future__ import annotations

import ast
from pathlib import Path

from harness.plugin import PROJECT_ROOT

# (file, function) -> why it may sleep
ALLOWED = {
    ("harness/targets/managed.py", "_wait"): "polls a starting server's readiness until its deadline",
    ("harness/targets/local.py", "_end_group"): "polls a stopping process group until its grace ends",
    (
        "harness/targets/local.py",
        "end_processes_under",
    ): "polls leftover process groups until their grace ends",
    ("harness/standing.py", "bring_down"): "polls the end of the process that keeps a topology up",
    ("harness/protocols/xmpp/peer.py", "count_connections"): "waits out the window in which a "
    "target's reconnections are counted (RFC 6120 §3.3); the verdict is read from the connection "
    "times, the window only bounds the measurement",
}


def _sleeps(root: Path = PROJECT_ROOT) -> set[tuple[str, str]]:
    """(file, function) of every call named ``sleep`` under ``root/harness``."""
    found = set()
    for path in sorted((root / "harness").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call):
                    name = (
                        node.func.attr
                        if isinstance(node.func, ast.Attribute)
                        else getattr(node.func, "id", "")
                    )
                    if name == "sleep":
                        found.add((str(path.relative_to(root)), func.name))
    return found


def test_only_readiness_and_teardown_polling_sleeps() -> None:
    assert _sleeps() == set(ALLOWED)


def test_the_scan_finds_a_sleep(tmp_path: Path) -> None:
    """The scan itself can fail: a sleep in an actor's method is found."""
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "actor.py").write_text(
        "import asyncio\nclass A:\n    async def expect(self):\n        await asyncio.sleep(1)\n"
    )
    assert _sleeps(tmp_path) == {("harness/actor.py", "expect")}
