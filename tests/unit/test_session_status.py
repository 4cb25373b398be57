"""harness.plugin.session_status: a scenario session exits with the run's exit code, so that
``pytest scenarios/`` and ``interop run`` agree; pytest's own status stands only where the run's
record cannot judge (the session did not end normally, or failed outside any item record)."""

from __future__ import annotations

import dataclasses

import pytest

from harness.plugin import session_status
from harness.results import RunRecord
from tests.unit.test_results import item, run_of, target

P = target("prosody")
FAILED, OK = pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.OK


def run(*items, **selection) -> RunRecord:
    record = run_of(list(items))
    return dataclasses.replace(record, selection={**record.selection, **selection})


def test_the_gate_decides_not_pytests_failed_count() -> None:
    finding = run(item("auth.a", [P], "fail", level="SHOULD"))
    assert session_status(FAILED, finding, []) == 0  # pytest failed the item; the gate does not
    assert session_status(FAILED, run(item("auth.a", [P], "fail", level="SHOULD"), gate="should"), []) == 1
    assert session_status(FAILED, run(item("auth.a", [P], "error", level="MAY")), []) == 1


def test_a_known_failure_that_passed_fails_only_a_strict_run() -> None:
    xpass = item("auth.a", [P], "xpass")
    assert session_status(OK, run(xpass), []) == 0
    assert session_status(OK, run(xpass, strict_baseline=True), []) == 1


def test_pytests_status_stands_where_the_record_cannot_judge() -> None:
    passing = run(item("auth.a", [P]))
    assert session_status(OK, passing, []) == 0
    assert session_status(FAILED, passing, ["scenarios/auth/a.yaml::auth.a[prosody]"]) == FAILED
    for status in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        assert session_status(status, passing, []) == status
