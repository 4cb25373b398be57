"""The order of the harness's own suite: fast and sensitive first, long real runs last.

Unit tests and the proofs run first, on a quiet machine (some bound their waits tightly: the
proofs shorten step deadlines to 2 s). Then the integration tests: those that need no category
run go while the category runs start in the background (``tests/integration/conftest.py``), and
the tests that read those runs come last.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import runs_needed


def _stage(item: pytest.Item) -> int:
    parts = item.path.parts
    if "integration" not in parts:
        return 0
    return 2 if runs_needed(item) else 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_stage)  # stable: within a stage, pytest's order
