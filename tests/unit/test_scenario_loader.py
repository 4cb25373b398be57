"""Scenario files: valid ones load; broken ones are refused with file:line, what and how to fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.scenario.loader import ScenarioError, load_all, load_scenario

GOOD = """\
id: auth.example.check
title: An example check that loads
category: authentication
spec: {document: RFC 6120, section: "6.5.10"}
level: MUST
protocol: xmpp
accounts:
  carol: {password: "pässwörd"}
actors:
  alice:
    kind: xmpp-raw
    account: alice
  carol:
    kind: xmpp-raw
    account: carol
steps:
  - connect: {actor: alice, tls: starttls}
  - authenticate: {actor: alice, mechanism: PLAIN, password: "wrong-${random}", expect: failure, decisive: true}
  - expect:
      actor: alice
      match: "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
  - send: {actor: alice, xml: "<message to='${carol.jid}'/>"}
  - expect-any:
      within: 5
      alternatives:
        - {actor: alice, match: "<stream:error/>"}
        - {actor: carol, match: "<m:closed/>"}
  - disconnect: {actor: alice}
"""


def write(tmp_path: Path, text: str, name: str = "auth.example.check") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return str(info.value).splitlines()


def test_a_valid_scenario_loads_with_its_step_lines(tmp_path):
    scenario = load_scenario(write(tmp_path, GOOD))
    assert scenario.id == "auth.example.check" and scenario.level == "MUST"
    assert scenario.roles == {"server": {}}
    assert [s.action for s in scenario.steps] == [
        "connect",
        "authenticate",
        "expect",
        "send",
        "expect-any",
        "disconnect",
    ]
    assert [s.line for s in scenario.steps] == [17, 18, 19, 22, 23, 28]
    assert scenario.steps[1].params == {
        "mechanism": "PLAIN",
        "password": "wrong-${random}",
        "expect": "failure",
    }
    assert scenario.accounts == {"carol": "pässwörd"}
    assert scenario.spec_ref == "RFC 6120 §6.5.10"
    assert len(scenario.sha256) == 64


def test_schema_errors_name_the_line_and_the_allowed_values(tmp_path):
    path = write(tmp_path, GOOD.replace("level: MUST", "level: REQUIRED"))
    assert problems(path) == [
        f"{path}:5: level: 'REQUIRED' is not allowed; use one of MUST, SHOULD, MAY, POLICY"
    ]


def test_missing_key(tmp_path):
    lines = problems(write(tmp_path, GOOD.replace("title: An example check that loads\n", "")))
    assert any(":1: top level: 'title' is a required property; add it" in p for p in lines), lines


def test_unknown_action_is_checked_against_the_actor_kind(tmp_path):
    """The core schema knows no protocol's actions: the step's actor kind says what it can do."""
    lines = problems(
        write(tmp_path, GOOD.replace("  - disconnect: {actor: alice}", "  - sleep: {actor: alice}"))
    )
    assert any(":28: step 6: actor kind xmpp-raw cannot sleep; it can: connect, " in p for p in lines), lines


def test_step_parameters_are_checked_against_the_actor_kind(tmp_path):
    path = write(tmp_path, GOOD.replace("tls: starttls", "tls: startls"))
    (line,) = problems(path)
    assert line == (
        f"{path}:17: step 1 (connect): tls: 'startls' is not allowed; use one of starttls, direct, none"
    )


def test_undeclared_actor_and_bad_placeholder(tmp_path):
    text = GOOD.replace("  - disconnect: {actor: alice}", "  - disconnect: {actor: bob}").replace(
        "${carol.jid}", "${carol.jidd}"
    )
    lines = problems(write(tmp_path, text))
    assert any(":22: step 4: ${carol.jidd}: an actor placeholder is ${carol.X}" in p for p in lines), lines
    assert any(":28: step 6: no actor 'bob'; actors: alice, carol" in p for p in lines), lines


def test_a_pattern_that_does_not_parse_is_reported_at_validation(tmp_path):
    path = write(tmp_path, GOOD.replace("<not-authorized/></failure>", "<not-authorized></failure>"))
    (line,) = problems(path)
    assert line.startswith(f"{path}:19: step 3 (expect): match: pattern is not well-formed XML")


def test_parameters_of_the_wrong_shape_are_reported_and_not_checked_further(tmp_path):
    """An actor kind's own checks (e.g. that a pattern parses) expect the schema's shape."""
    path = write(tmp_path, GOOD.replace('match: "<failure', 'match:\n      note: "<failure'))
    (line,) = problems(path)
    assert line.startswith(f"{path}:21: step 3 (expect): match: None is not of type 'string'")


def test_yaml_syntax_error_and_file_name(tmp_path):
    broken = write(tmp_path, GOOD.replace("level: MUST", "level: MUST: twice"))
    assert problems(broken)[0].startswith(f"{broken}:5: not valid YAML")
    renamed = write(tmp_path, GOOD, name="auth.other")
    assert problems(renamed) == [
        f"{renamed}:1: id 'auth.example.check' differs from the file name; "
        "name the file auth.example.check.yaml"
    ]


def test_duplicate_ids_across_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", GOOD)
    second = write(tmp_path / "b", GOOD)
    scenarios, errors = load_all([first, second])
    assert len(scenarios) == 2 and len(errors) == 1
    assert "id auth.example.check is also used by" in str(errors[0])


def test_validate_command_exit_codes(tmp_path, capsys):
    good = write(tmp_path, GOOD)
    assert main(["validate", str(good)]) == 0
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    write(bad_dir, GOOD.replace("level: MUST", "level: REQUIRED"))
    assert main(["validate", str(bad_dir)]) == 2
    assert f"{bad_dir}/auth.example.check.yaml:5: level" in capsys.readouterr().err
    missing = tmp_path / "missing.yaml"
    assert main(["validate", str(missing)]) == 2
    assert f"{missing}:1: cannot read the file: No such file or directory" in capsys.readouterr().err


def test_shipped_catalogue_is_valid():
    assert main(["validate"]) == 0


PAIR = GOOD.replace(
    "actors:\n  alice:\n    kind: xmpp-raw\n    account: alice\n  carol:\n    kind: xmpp-raw\n",
    "roles:\n  origin: {}\n  receiver:\n    knobs: {s2s_block: '${origin.domain}'}\n"
    "actors:\n  alice:\n    kind: xmpp-raw\n    role: origin\n    account: alice\n"
    "  carol:\n    kind: xmpp-raw\n    role: receiver\n",
)


def test_role_knobs_load_and_may_name_the_other_role(tmp_path):
    scenario = load_scenario(write(tmp_path, PAIR))
    assert scenario.roles["receiver"]["knobs"] == {"s2s_block": "${origin.domain}"}
    assert scenario.is_pair


def test_role_knob_placeholders_are_limited_to_what_is_known_before_start(tmp_path):
    lines = problems(write(tmp_path, PAIR.replace("${origin.domain}", "${alice.jid}")))
    assert any(
        ":12: role receiver, knob s2s_block: ${alice.jid}: a knob value may only use ${ROLE.X}" in line
        for line in lines
    ), lines
