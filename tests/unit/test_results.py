"""harness.results: the schema of results.json, round trips, and the exit-code rules."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re

import jsonschema
import pytest

from harness.results import (
    EXIT_FAILED,
    EXIT_OK,
    LEVELS,
    POLICY,
    ItemResult,
    ResultsError,
    RunRecord,
    TargetRecord,
    exit_code,
    exit_problems,
    fails_run,
    load_schema,
    read_results,
    utc_timestamp,
    validate_results,
    write_results,
)
from harness.verdict import Outcome

SHA = "a" * 64


def target(name: str, role: str = "server", **knobs: str) -> TargetRecord:
    return TargetRecord(
        name=name,
        product=name.capitalize(),
        version="1.2.3",
        driver="local",
        domain=f"{name}.test",
        address="127.0.0.2",
        knobs=dict(knobs),
        role=role,
    )


def item(
    scenario: str,
    targets: list[TargetRecord],
    outcome: str | Outcome = "pass",
    *,
    level: str = "MUST",
    category: str = "authentication",
    reason: str = "",
    connected: bool = True,
) -> ItemResult:
    suffix = "->".join(t.name for t in targets)
    item_id = f"{scenario}[{suffix}]"
    return ItemResult(
        item_id=item_id,
        scenario_id=scenario,
        title=f"Title of {scenario}",
        category=category,
        level=level,
        spec={
            "document": "RFC 6120",
            "section": "6.4.5",
            "url": "https://www.rfc-editor.org/rfc/rfc6120#section-6.4.5",
        },
        targets=targets,
        outcome=outcome,
        reason=reason,
        duration_s=0.25,
        started_at="2024-05-01T12:00:01.5Z",
        evidence={
            "alice.xmpp.log": f"items/{item_id}/alice.xmpp.log",
            "pcap": f"items/{item_id}/traffic.pcap",
            "keylog": f"items/{item_id}/tls.keylog",
            "server.log": f"items/{item_id}/server.log",
        },
        scenario_file=f"scenarios/{category}/{scenario}.yaml",
        scenario_sha256=SHA,
        actors_connected=connected,
        decided_by=[{"step": 4, "line": 38, "observed": "received <failure [not-authorized]>"}]
        if outcome == "pass"
        else [],
    )


def run_of(items: list[ItemResult], names: tuple[str, ...] = ("prosody", "ejabberd")) -> RunRecord:
    return RunRecord(
        run_id="20240501-120000-abcd",
        harness_version="0.1.0",
        started_at="2024-05-01T12:00:00Z",
        finished_at="2024-05-01T12:03:00+00:00",
        command=["interop", "run", "--targets", ",".join(names)],
        host={"python": "3.11.7", "platform": "Linux-6.1-x86_64"},
        selection={
            "targets": list(names),
            "categories": [],
            "scenarios": ["auth.*"],
            "knobs": {"c2s_require_encryption": "true", "prosody": {"s2s_secure_auth": "true"}},
        },
        targets=[target(n) for n in names],
        items=items,
    )


def full_run() -> RunRecord:
    p, e = target("prosody"), target("ejabberd", tls="required")
    return run_of(
        [
            item("auth.sasl.wrong-password", [p], "pass"),
            item("auth.sasl.wrong-password", [e], "fail", reason="server accepted a wrong password"),
            item(
                "auth.sasl.scram-plus",
                [p],
                "unsupported",
                level="SHOULD",
                reason="mechanism SCRAM-SHA-1-PLUS not offered",
            ),
            item("auth.sasl.scram-plus", [e], "xpass", level="SHOULD", reason="known failure passed"),
            item(
                "authz.roster.foreign",
                [e],
                "xfail",
                level="MAY",
                category="authorization",
                reason="baseline: EJ-123",
            ),
            item(
                "fed.s2s.dialback",
                [target("prosody", "origin"), target("ejabberd", "receiver")],
                "pass",
                category="federation",
            ),
        ]
    )


def message_of(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


# --- schema -------------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_enums_match_the_code():
    schema = load_schema()
    item_props = schema["$defs"]["item"]["properties"]
    assert set(item_props["outcome"]["enum"]) == {o.value for o in Outcome}
    assert item_props["level"]["enum"] == [*LEVELS, POLICY]
    assert schema["$defs"]["item"]["additionalProperties"] is False
    assert schema["additionalProperties"] is False


def test_good_record_validates():
    validate_results(full_run().to_dict())  # no exception


def test_wrong_outcome_is_rejected_with_its_json_path():
    data = full_run().to_dict()
    data["items"][1]["outcome"] = "passed"
    with pytest.raises(ResultsError) as excinfo:
        validate_results(data)
    msg = message_of(excinfo)
    assert "$.items[1].outcome: 'passed' is not one of" in msg
    assert "'xpass'" in msg


def test_wrong_level_is_rejected():
    data = full_run().to_dict()
    data["items"][0]["level"] = "must"
    with pytest.raises(ResultsError, match=re.escape("$.items[0].level: 'must' is not one of")):
        validate_results(data)


def test_missing_field_is_named():
    data = full_run().to_dict()
    del data["items"][2]["reason"]
    with pytest.raises(ResultsError) as excinfo:
        validate_results(data)
    assert "$.items[2]: 'reason' is a required property" in message_of(excinfo)


def test_missing_top_level_field_is_named():
    data = full_run().to_dict()
    del data["harness_version"]
    with pytest.raises(ResultsError, match=re.escape("$: 'harness_version' is a required property")):
        validate_results(data)


def test_unknown_field_is_rejected():
    data = full_run().to_dict()
    data["items"][0]["colour"] = "green"
    with pytest.raises(ResultsError, match=re.escape("'colour' was unexpected")):
        validate_results(data)


def test_every_problem_is_listed_and_counted():
    data = full_run().to_dict()
    data["items"][0]["outcome"] = "ok"
    data["items"][3]["duration_s"] = -1
    with pytest.raises(ResultsError) as excinfo:
        validate_results(data)
    msg = message_of(excinfo)
    assert msg.startswith("invalid results record (2 problems):")
    assert "$.items[0].outcome" in msg
    assert "$.items[3].duration_s: -1 is less than the minimum of 0" in msg


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["items"][0].update(started_at="2024-05-01 12:00:00"), "$.items[0].started_at"),
        (lambda d: d.update(finished_at="2024-05-01T14:00:00+02:00"), "$.finished_at"),
        (lambda d: d["items"][0].update(scenario_sha256="XYZ"), "$.items[0].scenario_sha256"),
        (lambda d: d["items"][0]["evidence"].update(pcap="/tmp/abs.pcap"), "$.items[0].evidence.pcap"),
        (
            lambda d: d["items"][0]["evidence"].update(pcap="items/../../etc/passwd"),
            "$.items[0].evidence.pcap",
        ),
        (lambda d: d["items"][0].update(reason="two\nlines"), "$.items[0].reason"),
        (lambda d: d["items"][0].update(targets=[]), "$.items[0].targets"),
        (lambda d: d["items"][0].update(targets=d["items"][5]["targets"] * 2), "$.items[0].targets"),
        (lambda d: d["items"][0]["targets"][0].pop("role"), "$.items[0].targets[0]"),
        (lambda d: d["items"][0]["spec"].pop("document"), "$.items[0].spec"),
        (lambda d: d["items"][0].update(item_id="no-brackets"), "$.items[0].item_id"),
        (lambda d: d["items"][0].update(actors_connected="yes"), "$.items[0].actors_connected"),
        (lambda d: d.update(schema_version=2), "$.schema_version"),
        (lambda d: d["selection"].update(shard="first"), "$.selection.shard"),
        (lambda d: d["targets"][0].update(role="server"), "$.targets[0]"),
    ],
)
def test_malformed_records_are_rejected_at_the_right_path(mutate, where):
    data = full_run().to_dict()
    mutate(data)
    with pytest.raises(ResultsError) as excinfo:
        validate_results(data)
    assert f"\n  {where}:" in message_of(excinfo)


def test_duplicate_item_ids_are_rejected():
    data = full_run().to_dict()
    data["items"].append(copy.deepcopy(data["items"][0]))
    with pytest.raises(
        ResultsError,
        match=re.escape(
            "$.items[6].item_id: duplicate item id 'auth.sasl.wrong-password[prosody]' (first at $.items[0])"
        ),
    ):
        validate_results(data)


def test_item_id_must_belong_to_its_scenario():
    data = full_run().to_dict()
    data["items"][0]["item_id"] = "auth.other[prosody]"
    with pytest.raises(
        ResultsError,
        match=re.escape(
            "$.items[0].item_id: 'auth.other[prosody]' does not belong to scenario 'auth.sasl.wrong-password'"
        ),
    ):
        validate_results(data)


def test_item_targets_must_be_run_targets():
    data = full_run().to_dict()
    data["items"][0]["targets"][0]["name"] = "openfire"
    with pytest.raises(
        ResultsError,
        match=re.escape(
            "$.items[0].targets[0].name: 'openfire' is not a target of the run (run targets: prosody, ejabberd)"
        ),
    ):
        validate_results(data)


def test_non_object_is_rejected_readably():
    with pytest.raises(ResultsError, match=re.escape("$: [] is not of type 'object'")):
        validate_results([])


# --- write / read -------------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    run = full_run()
    path = write_results(run, tmp_path / "run1" / "results.json")
    assert path == tmp_path / "run1" / "results.json"
    back = read_results(path)
    assert back == run
    assert back.items[5].pair == ("prosody", "ejabberd")
    assert back.items[1].targets[0].knobs == {"tls": "required"}
    assert back.selection["knobs"]["prosody"] == {"s2s_secure_auth": "true"}


def test_written_json_is_sorted_and_indented(tmp_path):
    path = write_results(full_run(), tmp_path / "results.json")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert list(data) == sorted(data)
    assert data["items"][0]["evidence"]["pcap"] == "items/auth.sasl.wrong-password[prosody]/traffic.pcap"
    assert data["schema_version"] == 1
    assert "role" not in data["targets"][0]
    assert [t["role"] for t in data["items"][5]["targets"]] == ["origin", "receiver"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_write_refuses_an_invalid_record_and_writes_nothing(tmp_path):
    run = full_run()
    run.items[0].outcome = "maybe"
    with pytest.raises(ResultsError, match=re.escape("$.items[0].outcome")):
        write_results(run, tmp_path / "results.json")
    assert not (tmp_path / "results.json").exists()


def test_outcome_enum_members_are_stored_as_strings(tmp_path):
    it = item("auth.x", [target("prosody")], Outcome.UNSUPPORTED, reason="no")
    assert it.outcome == "unsupported" and type(it.outcome) is str
    path = write_results(run_of([it]), tmp_path / "results.json")
    assert json.loads(path.read_text())["items"][0]["outcome"] == "unsupported"


def test_read_rejects_invalid_file_with_path_and_json_path(tmp_path):
    data = full_run().to_dict()
    data["items"][4]["level"] = "SHALL"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsError) as excinfo:
        read_results(path)
    msg = message_of(excinfo)
    assert msg.startswith(f"{path}: invalid results record")
    assert "$.items[4].level: 'SHALL' is not one of" in msg


def test_read_rejects_broken_json_with_line_and_column(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{\n  "run_id": "x",\n  oops\n}')
    with pytest.raises(ResultsError, match=re.escape(f"{path}:3:3: not JSON")):
        read_results(path)


def test_read_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="cannot read"):
        read_results(tmp_path / "nope.json")


def test_run_accepts_target_records_and_lists_item_only_targets():
    run = run_of([item("auth.x", [target("prosody")])], names=("prosody",))
    assert run.targets == [
        {
            "name": "prosody",
            "instance_of": "prosody",
            "product": "Prosody",
            "version": "1.2.3",
            "driver": "local",
            "domain": "prosody.test",
            "address": "127.0.0.2",
            "knobs": {},
        }
    ]
    run.items.append(item("auth.x", [target("jabberd2")]))
    assert run.target_names() == ["prosody", "jabberd2"]


def test_pair_order_follows_roles_not_list_order():
    it = item("fed.x", [target("ejabberd", "receiver"), target("prosody", "origin")], category="federation")
    assert it.is_pair
    assert it.pair == ("prosody", "ejabberd")
    plain = item("fed.y", [target("prosody", "a"), target("ejabberd", "b")], category="federation")
    assert plain.pair == ("prosody", "ejabberd")
    assert item("auth.x", [target("prosody")]).pair is None


def test_utc_timestamp_matches_the_schema():
    stamp = utc_timestamp(dt.datetime(2024, 5, 1, 14, 0, 0, 123, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert stamp == "2024-05-01T12:00:00.000123Z"
    assert re.fullmatch(load_schema()["$defs"]["utc_timestamp"]["pattern"], utc_timestamp())
    with pytest.raises(ValueError):
        utc_timestamp(dt.datetime(2024, 5, 1))


# --- exit code ----------------------------------------------------------------------------------------

P = target("prosody")


def test_exit_ok_when_every_must_passes():
    run = run_of([item("auth.a", [P], "pass"), item("auth.b", [P], "pass", level="SHOULD")])
    assert exit_code(run) == EXIT_OK == 0
    assert exit_problems(run) == []


@pytest.mark.parametrize("outcome", ["xfail", "unsupported", "xpass"])
def test_exit_ok_for_must_xfail_unsupported_xpass(outcome):
    run = run_of([item("auth.a", [P], "pass"), item("auth.b", [P], outcome, reason="r")])
    assert exit_code(run) == 0


def test_exit_fails_on_must_fail():
    run = run_of(
        [item("auth.a", [P], "pass"), item("auth.b", [P], "fail", reason="server offered PLAIN before TLS")]
    )
    assert exit_code(run) == EXIT_FAILED == 1
    assert exit_problems(run) == ["auth.b[prosody] (MUST): fail: server offered PLAIN before TLS"]


def test_exit_fails_on_must_error():
    run = run_of([item("auth.a", [P], "error", reason="timeout")])
    assert exit_code(run) == 1
    assert exit_problems(run) == ["auth.a[prosody] (MUST): error: timeout"]


@pytest.mark.parametrize("level", ["SHOULD", "MAY"])
def test_exit_fails_on_error_at_any_level(level):
    run = run_of([item("auth.a", [P], "pass"), item("auth.b", [P], "error", level=level)])
    assert exit_code(run) == 1
    assert exit_problems(run) == [f"auth.b[prosody] ({level}): error"]


@pytest.mark.parametrize("level", ["SHOULD", "MAY", "POLICY"])
def test_should_may_and_policy_failures_do_not_fail_the_run(level):
    run = run_of([item("auth.a", [P], "pass"), item("auth.b", [P], "fail", level=level, reason="finding")])
    assert exit_code(run) == 0


@pytest.mark.parametrize(
    ("gate", "failing"),
    [("must", ["MUST"]), ("should", ["MUST", "SHOULD"]), ("may", ["MUST", "SHOULD", "MAY"])],
)
def test_the_gate_names_the_levels_whose_failures_fail_the_run(gate, failing):
    """--gate must|should|may: a fail of a named level fails the run; POLICY under no gate."""
    for level in [*LEVELS, POLICY]:
        run = run_of([item("auth.a", [P], "pass"), item("auth.b", [P], "fail", level=level, reason="r")])
        assert exit_code(run, gate) == (1 if level in failing else 0), (gate, level)
        assert fails_run(run.items[1], gate) is (level in failing)
        assert exit_problems(run, gate) == (
            [f"auth.b[prosody] ({level}): fail: r"] if level in failing else []
        )


@pytest.mark.parametrize("gate", ["must", "should", "may"])
def test_under_every_gate_errors_fail_and_known_failures_do_not(gate):
    for outcome, fails in [("error", True), ("xfail", False), ("unsupported", False), ("xpass", False)]:
        for level in [*LEVELS, POLICY]:
            one = item("auth.b", [P], outcome, level=level)
            assert fails_run(one, gate) is fails, (gate, outcome, level)


def test_exit_fails_when_nothing_ran():
    run = run_of([])
    assert exit_code(run) == 1
    assert exit_problems(run) == ["the run executed no item"]


def test_exit_fails_when_no_actor_connected():
    run = run_of(
        [item("auth.a", [P], "pass", connected=False), item("auth.b", [P], "unsupported", connected=False)]
    )
    assert exit_code(run) == 1
    assert exit_problems(run) == ["no actor of any item reached a server"]


def test_one_connected_item_is_enough():
    run = run_of([item("auth.a", [P], "pass", connected=False), item("auth.b", [P], "pass", connected=True)])
    assert exit_code(run) == 0


def test_exit_code_docstring_states_the_rule():
    doc = exit_code.__doc__
    assert "below the gate" in doc and "POLICY failures under every gate" in doc
    assert "xpass" in doc


def test_patterns_are_explained_in_words():
    data = full_run().to_dict()
    data["items"][0]["evidence"]["pcap"] = "/tmp/abs.pcap"
    data["items"][1]["started_at"] = "yesterday"
    data["items"][2]["scenario_sha256"] = "abc"
    data["items"][3]["targets"] = data["items"][5]["targets"] * 2
    with pytest.raises(ResultsError) as excinfo:
        validate_results(data)
    msg = message_of(excinfo)
    assert "$.items[0].evidence.pcap: '/tmp/abs.pcap' is not a path relative to the run directory" in msg
    assert "$.items[1].started_at: 'yesterday' is not an ISO 8601 UTC timestamp" in msg
    assert "$.items[2].scenario_sha256: 'abc' is not a SHA-256 hex digest" in msg
    assert "$.items[3].targets: has 4 entries, at most 2 allowed" in msg


def test_the_gate_the_run_recorded_judges_it_and_a_strict_baseline_fails_an_xpass():
    should_fail = run_of([item("auth.a", [target("prosody")], "fail", level="SHOULD")])
    assert exit_code(should_fail) == EXIT_OK
    should_fail.selection["gate"] = "should"
    assert exit_code(should_fail) == EXIT_FAILED
    assert exit_code(should_fail, "must") == EXIT_OK  # an explicit gate wins
    xpass = run_of([item("auth.a", [target("prosody")], "xpass")])
    assert exit_code(xpass) == EXIT_OK
    xpass.selection["strict_baseline"] = True
    assert exit_problems(xpass) == ["auth.a[prosody] (MUST): xpass"]
    validate_results(xpass.to_dict())
