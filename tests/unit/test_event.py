"""The event file (``interop run --event``): a valid one becomes the run's selection, options given
beside it add to or replace its values, and every broken copy is refused with the line of what
is wrong, by ``interop validate`` and by ``interop run`` before any server starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from harness import options, resources
from harness.cli import build_parser, main
from harness.event import EventError, load_event
from harness.options import PROJECT_ROOT
from harness.results import GATES
from harness.topology import DRIVERS, Topology
from harness.yaml_file import schema

TARGET_FILE = """\
name: vendor-x
product: vendor-x-server
domain: xmpp.vendor-x.test
host: 127.0.0.50
ports: {c2s: 5222, s2s: 5269}
ca_file: x-ca.pem
accounts:
  - {user: test1, password: secret1}
"""
EVENT = """\
event: campus-interop-2026
title: Campus interop day
driver: local
participants:
  - target: prosody
  - target: ejabberd
    knobs: {s2s_tls: required}
  - target_file: vendors/x.yaml
  - external:
      name: vendor-y
      product: vendor-y-server
      domain: xmpp.vendor-y.test
      host: 127.0.0.51
      ports: {c2s: 5222, s2s: 5269}
      ca_file: certs/y-ca.pem
      accounts:
        - {user: test1, password: secret1}
categories: [authentication, federation]
scenarios: ['auth.sasl.*']
gate: should
profile: campus-procurement
"""


def write_event(folder: Path, text: str = EVENT) -> Path:
    """The event in ``folder`` with the files it names (the CA files need only exist here)."""
    (folder / "vendors").mkdir(parents=True, exist_ok=True)
    (folder / "certs").mkdir(exist_ok=True)
    (folder / "vendors" / "x.yaml").write_text(TARGET_FILE)
    (folder / "vendors" / "x-ca.pem").write_text("a CA\n")
    (folder / "certs" / "y-ca.pem").write_text("a CA\n")
    path = folder / "event.yaml"
    path.write_text(text)
    return path


def run_values(*args: str) -> Any:
    return build_parser().parse_args(["run", *args])


def test_a_valid_event_becomes_the_runs_selection(tmp_path: Path) -> None:
    path = write_event(tmp_path)
    values = run_values("--event", str(path))
    chosen = options.selection(values)
    assert chosen.targets == ["prosody", "ejabberd"]
    assert chosen.driver == "local"
    assert chosen.knobs == ["ejabberd:s2s_tls=required"]
    assert chosen.target_files == [tmp_path / "vendors" / "x.yaml"]
    assert [(entry["name"], source) for entry, source in chosen.inline_targets] == [("vendor-y", path)]
    assert chosen.event == {
        "name": "campus-interop-2026",
        "title": "Campus interop day",
        "file": str(path.resolve()),
    }
    # what the plugin reads where it reads the options
    assert (values.category, values.scenario, values.gate, values.profile) == (
        ["authentication", "federation"],
        ["auth.sasl.*"],
        "should",
        "campus-procurement",
    )
    topology = Topology(chosen, resources.CATALOGUE, tmp_path / "run")
    assert topology.names == ["prosody", "ejabberd", "vendor-x", "vendor-y"]
    # each external's ca_file is relative to the file that names it
    assert topology.external["vendor-x"].ca_file == tmp_path / "vendors" / "x-ca.pem"
    assert topology.external["vendor-y"].ca_file == tmp_path / "certs" / "y-ca.pem"


def test_the_documented_example_is_a_valid_event(tmp_path: Path) -> None:
    """docs/interop-events.md's example, with the files it names, loads as it says."""
    docs = (PROJECT_ROOT / "docs" / "interop-events.md").read_text()
    [example] = re.findall(r"^```yaml\n(event:.*?)^```", docs, re.M | re.S)
    path = write_event(tmp_path, example)
    (tmp_path / "vendors" / "y-ca.pem").write_text("a CA\n")
    event = load_event(path)
    assert event.options["targets"] == "prosody,ejabberd"
    assert event.options["target_file"] == [tmp_path / "vendors" / "x.yaml"]
    assert [entry["name"] for entry, _ in event.inline_targets] == ["vendor-y"]


def test_options_beside_the_event_add_participants_and_replace_the_rest(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(TARGET_FILE.replace("vendor-x", "vendor-z").replace("x-ca.pem", "vendors/x-ca.pem"))
    values = run_values(
        "--event",
        str(write_event(tmp_path)),
        "--targets",
        "jabberd2",
        "--target-file",
        str(other),
        "--knob",
        "ejabberd:s2s_tls=optional",
        "--category",
        "federation",
        "--gate",
        "may",
    )
    chosen = options.selection(values)
    assert chosen.targets == ["prosody", "ejabberd", "jabberd2"]
    assert chosen.target_files == [tmp_path / "vendors" / "x.yaml", other]
    assert chosen.knobs[-1] == "ejabberd:s2s_tls=optional"  # the last one given wins
    assert (values.category, values.gate, values.scenario) == (["federation"], "may", ["auth.sasl.*"])
    # interop run hands pytest the merged values and the event: merging again changes nothing
    again = options.selection(build_parser().parse_args(["run", *options.pytest_args(values)]))
    assert again == chosen


def test_an_event_of_external_servers_only_runs_no_catalogue_target(tmp_path: Path) -> None:
    text = EVENT.replace("  - target: prosody\n", "").replace(
        "  - target: ejabberd\n    knobs: {s2s_tls: required}\n", ""
    )
    chosen = options.selection(run_values("--event", str(write_event(tmp_path, text))))
    assert Topology(chosen, resources.CATALOGUE, tmp_path / "run").names == ["vendor-x", "vendor-y"]


# each line ten times the one before: the fifth passes the shared loader's limit
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True)
)


def broken(old: str, new: str) -> str:
    assert old in EVENT
    return EVENT.replace(old, new, 1)


# the event's text, a text on the line the error must name, a part of the message
BROKEN = {
    "unknown key": (
        broken("driver: local\n", "driver: local\nvenue: hall 2\n"),
        "venue:",
        "'venue' was unexpected",
    ),
    "unknown product": (broken("target: ejabberd", "target: ejabbred"), "ejabbred", "no catalogue product"),
    "bad knob value": (broken("s2s_tls: required", "s2s_tls: maybe"), "maybe", "unknown value 'maybe'"),
    "unknown knob": (broken("s2s_tls: required", "s2s_tlz: required"), "s2s_tlz", "has no knob s2s_tlz"),
    "missing target file": (broken("vendors/x.yaml", "vendors/nope.yaml"), "nope.yaml", "is not a file"),
    "inline external without host": (
        broken("      host: 127.0.0.51\n", ""),
        "name: vendor-y",  # the entry's first line
        "'host' is a required",
    ),
    "inline external's CA missing": (broken("certs/y-ca.pem", "certs/z-ca.pem"), "z-ca.pem", "is not a file"),
    "participant twice": (broken("name: vendor-y", "name: vendor-x"), "- external:", "named twice"),
    "unknown category": (broken("federation]", "fedration]"), "categories:", "no category 'fedration'"),
    "two kinds in one participant": (
        broken("  - target: prosody\n", "  - {target: prosody, target_file: vendors/x.yaml}\n"),
        "target: prosody",
        "one of target:, target_file: or external:",
    ),
    "unknown variant": (
        broken("gate: should\n", "gate: should\nvariant: harden\n"),
        "variant:",
        "no variant",
    ),
    "unknown profile": (broken("campus-procurement", "campus"), "profile:", "no profile 'campus'"),
    "YAML tag": (broken("gate: should", "gate: !!python/name:os.system"), "gate:", "tags are not allowed"),
    "alias bomb": (ALIAS_BOMB + EVENT, "e: &e", "more than 100000 values"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_event_names_the_line(tmp_path: Path, case: str) -> None:
    text, marker, message = BROKEN[case]
    path = write_event(tmp_path, text)
    line = next(n for n, content in enumerate(text.splitlines(), 1) if marker in content)
    with pytest.raises(EventError) as raised:
        load_event(path)
    assert f"{path}:{line}: " in str(raised.value)
    assert message in str(raised.value)


def test_a_broken_target_file_keeps_its_own_file_and_line(tmp_path: Path) -> None:
    path = write_event(tmp_path)
    (tmp_path / "vendors" / "x.yaml").write_text(TARGET_FILE.replace("host:", "hots:"))
    with pytest.raises(EventError) as raised:
        load_event(path)
    assert f"{tmp_path / 'vendors' / 'x.yaml'}:4: " in str(raised.value)
    assert f"{path}:" not in str(raised.value)  # nothing wrong in the event itself


def test_the_schema_says_what_the_harness_takes() -> None:
    properties = schema("event")["properties"]
    assert tuple(properties["gate"]["enum"]) == tuple(GATES)
    assert tuple(properties["driver"]["enum"]) == DRIVERS


def test_interop_validate_tells_an_event_apart_and_exits_2_on_a_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_event(tmp_path)
    assert main(["validate", str(tmp_path)]) == 0
    assert "1 target files, 1 event files valid" in capsys.readouterr().out
    path = write_event(tmp_path, BROKEN["bad knob value"][0])
    assert main(["validate", str(path)]) == 2
    assert f"{path}:7: knobs:" in capsys.readouterr().err


def test_interop_run_refuses_a_broken_event_before_any_server_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_event(tmp_path, BROKEN["missing target file"][0])
    out = tmp_path / "run"
    assert main(["run", "--event", str(path), "--out", str(out)]) == 2
    assert f"{path}:8: target_file: vendors/nope.yaml is not a file" in capsys.readouterr().err
    assert not out.exists()
