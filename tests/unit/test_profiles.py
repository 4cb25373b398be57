"""Scoring profiles: shipped ones load, a bad one says file:line, and the ranking follows the
weights, leaves unsupported cells out, puts a missed must-pass last and says what cost what."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.cli import main
from harness.profiles import Profile, ProfileError, load_profile, profile_names, standings
from harness.report import write_reports
from harness.results import write_results
from tests.unit.test_results import item, run_of, target

P, E, J = (dataclasses.replace(target(n), product=n) for n in ("prosody", "ejabberd", "jabberd2"))
PROFILE = Profile(
    "test",
    "Test <b>profile</b>",
    {"*": {"MUST": 3, "SHOULD": 1, "POLICY": 0}, "federation": {"MUST": 5}},
    must_pass=["auth.tls"],
)


def ranked_run():
    return run_of(
        [
            item("auth.tls", [P]),
            item("auth.tls", [E], "fail", reason="<script>x</script>"),
            item("auth.should", [P], "fail", level="SHOULD"),
            item("auth.should", [E], level="SHOULD"),
            item("auth.opt", [P], "unsupported"),
            item("auth.policy", [E], "fail", level="POLICY"),
            item("fed.pair", [P, E], "fail", category="federation"),
        ],
        names=("prosody", "ejabberd", "jabberd2"),
    )


def test_the_shipped_profiles_load() -> None:
    assert {"campus-procurement", "compliance"} <= set(profile_names())
    campus = load_profile("campus-procurement")
    assert campus.weight("federation", "MUST") > campus.weight("authentication", "MUST") > 0
    assert load_profile("compliance").weight("robustness", "POLICY") == 0


def test_a_bad_profile_names_its_line_and_what_would_be_right(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("title: Mine\nweights:\n  '*': {MUST: 3}\n  federation: {MUSTT: 2}\n")
    with pytest.raises(
        ProfileError, match=r"mine.yaml:4: weights.federation: .*allowed keys here: MAY, MUST"
    ):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="no profile 'nosuch'; shipped: campus-procurement, compliance"):
        load_profile("nosuch")


def test_ranking_follows_weights_and_must_pass() -> None:
    prosody, ejabberd = standings(ranked_run(), PROFILE)
    assert prosody.target == "prosody" and prosody.qualified
    assert (prosody.earned, prosody.possible) == (3, 3 + 1 + 5)  # the unsupported cell on neither side
    assert [c.item_id for c in prosody.costs] == ["fed.pair[prosody->ejabberd]", "auth.should[prosody]"]
    assert ejabberd.missed == ["auth.tls (fail)"] and (ejabberd.earned, ejabberd.possible) == (
        1,
        3 + 1 + 0 + 5,
    )
    scored = standings(ranked_run(), dataclasses.replace(PROFILE, must_pass=[]))
    assert [s.target for s in scored] == ["prosody", "ejabberd"]  # jabberd2 ran nothing: not ranked


def test_a_must_pass_scenario_that_did_not_run_is_missed() -> None:
    run = run_of([item("auth.other", [P])], names=("prosody",))
    assert standings(run, PROFILE)[0].missed == ["auth.tls (not run)"]


def test_every_report_ranks_and_a_report_can_rank_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ranked_run()
    run.selection["profile"] = PROFILE.to_dict()
    write_results(run, tmp_path / "results.json")
    write_reports(run, tmp_path)
    matrix = (tmp_path / "matrix.md").read_text()
    assert "## Ranking under the profile Test &lt;b&gt;profile&lt;/b&gt; (test)" in matrix
    assert "| 1      | prosody  | 33% (3/9)" in matrix or "| 1 | prosody | 33% (3/9)" in " ".join(
        matrix.split()
    )
    index = (tmp_path / "index.html").read_text()
    assert "Ranking under the profile Test &lt;b&gt;profile&lt;/b&gt; (test)" in index
    assert "auth.tls (fail)" in index
    assert main(["report", str(tmp_path / "results.json"), "--profile", "compliance"]) == 0
    assert "Ranking under the profile Standards compliance" in (tmp_path / "matrix.md").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("weights: {}\n")
    assert main(["report", str(tmp_path / "results.json"), "--profile", str(bad)]) == 2
    assert "bad.yaml:1" in capsys.readouterr().err
