"""Target selection and knobs: usage errors are caught before anything starts."""

from pathlib import Path

import pytest

from harness.baseline import Baselines, KnownFailure
from harness.targets.spec import CatalogueError, Knob, TargetSpec, value_list
from harness.topology import Selection, Topology, parse_knobs
from harness.verdict import Outcome, Unsupported, Verdict


def _spec(product: str, knobs: dict[str, Knob]) -> TargetSpec:
    return TargetSpec(
        product=product,
        title=product,
        protocol="xmpp",
        folder=Path("/x") / product,
        package=None,
        user="nobody",
        ports={"c2s": 5222},
        features=frozenset(),
        files=[],
        setup=[],
        processes=[],
        ready={},
        accounts={},
        version=None,
        logs=[],
        knobs=knobs,
    )


TLS = Knob("c2s_require_encryption", "", "true", {"false": [{"file": "f", "append": "x"}]})
REG = Knob("registration", "", "closed", {"open": []})
SPECS = {
    "a": _spec("a", {"c2s_require_encryption": TLS, "registration": REG}),
    "b": _spec("b", {"c2s_require_encryption": TLS}),
}


def test_unqualified_knob_applies_to_every_target_that_has_it():
    assert parse_knobs(["registration=open"], SPECS) == {"a": {"registration": "open"}, "b": {}}
    assert parse_knobs(["c2s_require_encryption=false"], SPECS) == {
        "a": {"c2s_require_encryption": "false"},
        "b": {"c2s_require_encryption": "false"},
    }


def test_qualified_knob_applies_to_one_target():
    assert parse_knobs(["b:c2s_require_encryption=false"], SPECS) == {
        "a": {},
        "b": {"c2s_require_encryption": "false"},
    }


@pytest.mark.parametrize(
    "option, message",
    [
        ("registration", "write NAME=VALUE"),
        ("nosuch=1", "no selected target has a knob 'nosuch'"),
        ("c:registration=open", "no selected target 'c'"),
        ("b:registration=open", "b has no knob 'registration'"),
    ],
)
def test_bad_knob_options_are_usage_errors(option, message):
    with pytest.raises(CatalogueError, match=message):
        parse_knobs([option], SPECS)


def test_knob_values_are_checked_and_defaults_filled():
    spec = SPECS["a"]
    assert spec.knob_values({}) == {"c2s_require_encryption": "true", "registration": "closed"}
    with pytest.raises(CatalogueError, match="unknown value 'maybe'"):
        spec.knob_values({"registration": "maybe"})


def test_baseline_turns_fail_into_xfail_and_flags_a_pass():
    baselines = Baselines({"a": {"auth.x": KnownFailure("issue 12")}})
    assert baselines.apply("a", "auth.x", Verdict(Outcome.FAIL, "boom")).outcome is Outcome.XFAIL
    assert baselines.apply("a", "auth.x", Verdict(Outcome.PASS)).outcome is Outcome.XPASS
    assert baselines.apply("a", "auth.x", Verdict(Outcome.ERROR, "e")).outcome is Outcome.ERROR
    assert baselines.apply("b", "auth.x", Verdict(Outcome.FAIL, "boom")).outcome is Outcome.FAIL


def test_variant_knobs_apply_and_explicit_knobs_win():
    spec = _spec("a", {"c2s_require_encryption": TLS, "registration": REG})
    spec = TargetSpec(
        **{
            **spec.__dict__,
            "variants": {"hardened": ("", {"registration": "closed", "c2s_require_encryption": "true"})},
        }
    )
    chosen = parse_knobs(["a:registration=open"], {"a": spec}, "hardened")
    assert chosen == {"a": {"registration": "open", "c2s_require_encryption": "true"}}


def test_a_variant_a_target_does_not_define_is_a_usage_error():
    with pytest.raises(CatalogueError, match="a has no variant 'hardened'; its variants: none"):
        parse_knobs([], {"a": SPECS["a"]}, "hardened")


def test_shipped_targets_define_a_valid_hardened_variant():
    from harness.targets.spec import catalogue

    for name, spec in catalogue(Path(__file__).resolve().parents[2] / "fixtures" / "targets").items():
        assert "hardened" in spec.variants, name
        spec.knob_values(spec.variant_knobs("hardened"))  # every knob and value exists


CATALOGUE = Path(__file__).resolve().parents[2] / "fixtures" / "targets"


def _topology(tmp_path: Path, *names: str) -> Topology:
    return Topology(Selection(targets=list(names)), CATALOGUE, tmp_path)


def test_pairs_include_a_target_with_its_second_instance(tmp_path):
    topology = _topology(tmp_path, "prosody", "ejabberd")
    assert list(topology.pairs()) == [
        ("prosody", "prosody-2"),
        ("prosody", "ejabberd"),
        ("ejabberd", "prosody"),
        ("ejabberd", "ejabberd-2"),
    ]
    second = topology.describe("prosody-2")
    assert (second["product"], second["domain"]) == ("prosody", "prosody-2.test")
    assert topology.instance_of("prosody-2") == "prosody"
    assert topology.instance_of("ejabberd") == "ejabberd"


def test_role_knobs_resolve_the_other_role_and_missing_knobs_are_unsupported(tmp_path):
    topology = _topology(tmp_path, "prosody", "jabberd2")
    names = {"origin": "jabberd2", "receiver": "prosody-2"}
    roles = {"origin": {}, "receiver": {"knobs": {"s2s_block": "${origin.name}.example,${origin.domain}"}}}
    assert topology.role_knobs(roles, names) == {
        "origin": {},
        "receiver": {"s2s_block": "jabberd2.example,jabberd2.test"},
    }
    with pytest.raises(
        Unsupported, match="jabberd2 has no knob no_such_knob .the scenario needs it on origin, for XEP-0045"
    ):
        topology.role_knobs(
            {"origin": {"knobs": {"no_such_knob": "x"}}, "receiver": {}}, names, "XEP-0045 §7.2"
        )
    with pytest.raises(
        Unsupported, match="prosody-2 cannot set knob s2s_auth=bogus .* its values: certificate,"
    ):
        topology.role_knobs({"origin": {}, "receiver": {"knobs": {"s2s_auth": "bogus"}}}, names)


def test_a_knob_with_any_value_gives_its_wildcard_edits():
    block = Knob("s2s_block", "", "", {"*": [{"file": "f", "append": "{{ value_list | join(' ') }}"}]})
    assert block.edits_for("") == []
    assert block.edits_for("a.test, b.test") == [{"file": "f", "append": "{{ value_list | join(' ') }}"}]
    assert value_list("a.test, ,b.test") == ["a.test", "b.test"]
    with pytest.raises(CatalogueError, match="unknown value 'x'"):
        REG.edits_for("x")
