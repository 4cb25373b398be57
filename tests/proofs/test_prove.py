"""``python -m tests.proofs.prove``: an author proves a draft scenario without writing Python."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.engine as engine
from harness.plugin import PROJECT_ROOT
from tests.proofs.prove import main

SCENARIO = PROJECT_ROOT / "scenarios" / "authorization" / "authz.stanza.local-user-not-found.yaml"


@pytest.fixture(autouse=True)
def restore_step_timeout():
    saved = engine.STEP_TIMEOUT_S
    yield
    engine.STEP_TIMEOUT_S = saved


def test_a_draft_outside_the_project_is_proven_by_a_flaw_at_a_decisive_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = tmp_path / SCENARIO.name
    draft.write_text(SCENARIO.read_text())
    assert main([str(draft), "--flaw", "unknown-user-pong"]) == 0
    out = capsys.readouterr().out
    assert "correct double: pass" in out and "decided by step 5 (line 42)" in out
    assert "flaw unknown-user-pong: fail: step 5 (line 42)" in out


def test_a_flaw_caught_before_the_decisive_steps_proves_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SCENARIO), "--flaw", "no-starttls"]) == 1
    assert "not proven: step 1 is not a decisive step ([4, 5, 6])" in capsys.readouterr().out


def test_a_broken_file_and_an_unknown_flaw_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "authz.x.y.yaml"
    broken.write_text("id: authz.x.y\n")
    assert main([str(broken)]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main([str(SCENARIO), "--flaw", "no-such-flaw"])
    assert exit_info.value.code == 2
    assert "not flaws of the double: no-such-flaw" in capsys.readouterr().err
