"""The target catalogue is checked when it loads: schema, standard knobs, knob edits, templates,
with the line of every problem; ``interop validate`` covers it, and docs/knobs.md follows the
standard-knob table."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from harness import resources
from harness.cli import main
from harness.plugin import PROJECT_ROOT
from harness.scenario.loader import PLACEHOLDER, load_all, scenario_files
from harness.targets.knobs import STANDARD, knob_problem, markdown
from harness.targets.spec import CatalogueError, CatalogueFileError, catalogue, load_spec, read_target_file


def _broken_prosody(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """A copy of the prosody entry with the first ``old`` made ``new``; the line ``new`` starts on."""
    folder = tmp_path / "prosody"
    shutil.copytree(resources.CATALOGUE / "prosody", folder)
    text = (folder / "target.yaml").read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    (folder / "target.yaml").write_text(text)
    return folder, text[: text.index(new)].count("\n") + 1


def test_every_shipped_entry_loads() -> None:
    products = catalogue(resources.CATALOGUE)
    assert {"prosody", "ejabberd", "jabberd2"} <= set(products)
    for spec in products.values():
        assert set(spec.knobs) <= set(STANDARD), spec.product


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("user: prosody\n", "usr: prosody\nuser: prosody\n", "('usr' was unexpected); allowed keys here:"),
        ("  timeout: 30", "  timeout: soon", "ready.timeout: 'soon' is not of type 'number'"),
        ("  mam:\n", "  archive:\n", "knobs.archive: 'archive' is not a standard knob; standard knobs: c2s_"),
        (
            "      open:\n",
            "      public:\n",
            "knobs.registration.values.public: 'public' is not one of open, closed",
        ),
        (
            '    default: "off"\n',
            "    default: off\n",
            "knobs.direct_tls.default: False is not of type 'string'",
        ),
        (
            "        - file: prosody.cfg.lua\n",
            "        - file: prosody.conf\n",
            "'prosody.conf' is not the dest of a files entry (conf.d/localhost.cfg.lua, prosody.cfg.lua)",
        ),
        (
            """replace: '^authentication = "internal_hashed"$'""",
            """replace: '^authentication = ("internal_hashed"$'""",
            "knobs.sasl_external.values.on.0.replace: not a regular expression: missing ), unterminated",
        ),
        (
            "          insert_before: '^----------- Virtual hosts -----------$'\n          text: 'c2s_req",
            "          xml_add: 'x'\n          element: 'c2s_req",
            "knobs.c2s_require_encryption.values.false.0.xml_add: not an edit of a text file; its edits: "
            "replace, append, insert_before",
        ),
        (
            "'c2s_direct_tls_ports = { {{ ports.c2s_tls }} }",
            "'c2s_direct_tls_ports = { {{ ports.c2s_tls } }",
            "knobs.direct_tls.values.on.0.text: not a valid Jinja2 template: unexpected '}'",
        ),
        ("      registration: closed\n", "      registration: shut\n", "unknown value 'shut'"),
        ("  tcp: [c2s, s2s]", "  tcp: [c2s, s2s2]", "ready.tcp.1: no port 's2s2'; the entry's ports: c2s,"),
    ],
)
def test_a_broken_entry_names_the_line_and_what_would_be_right(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    folder, line = _broken_prosody(tmp_path, old, new)
    with pytest.raises(CatalogueFileError) as caught:
        load_spec(folder)
    assert [p.line for p in caught.value.problems] == [line], str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{folder / 'target.yaml'}:{line}: ")


def test_a_run_edit_may_not_name_a_file_nor_a_knob_edit_say_what_it_adds(tmp_path: Path) -> None:
    folder, line = _broken_prosody(tmp_path, "        count: 1\n", "        file: x.lua\n        count: 1\n")
    with pytest.raises(CatalogueFileError, match=f":{line}: files.0.edits.0.file: only a knob's edits"):
        load_spec(folder)


def test_every_problem_of_an_entry_is_reported_at_once(tmp_path: Path) -> None:
    folder, _ = _broken_prosody(tmp_path, "  mam:\n", "  archive:\n")
    text = (folder / "target.yaml").read_text().replace("  tcp: [c2s, s2s]", "  tcp: [c2s, s2s2]")
    (folder / "target.yaml").write_text(text)
    with pytest.raises(CatalogueFileError) as caught:
        load_spec(folder)
    assert len(caught.value.problems) == 2 and isinstance(caught.value, CatalogueError)


def test_a_list_knob_takes_only_a_list_of_its_items() -> None:
    spec = catalogue(resources.CATALOGUE)["prosody"]
    assert (
        spec.knob_values({"s2s_block": "a.test, b-2.test", "admins": "root@a.test"})["admins"]
        == "root@a.test"
    )
    with pytest.raises(CatalogueError, match="knob s2s_block: 'not a domain': not a domain list item"):
        spec.knob_values({"s2s_block": "a.test,not a domain"})
    with pytest.raises(CatalogueError, match="'a.test': not a JID list item"):
        spec.knob_values({"admins": "a.test"})


def test_the_knobs_shipped_scenarios_ask_for_are_standard() -> None:
    """Placeholders stand for a domain or a name, known when the run starts."""
    scenarios, errors = load_all(scenario_files(resources.SCENARIOS))
    assert not errors
    asked = [
        (s.id, name, PLACEHOLDER.sub("example.test", value))
        for s in scenarios
        for role in s.roles.values()
        for name, value in (role or {}).get("knobs", {}).items()
    ]
    assert asked, "no scenario asks for a knob: the test checks nothing"
    assert [(sid, knob_problem(name, value)) for sid, name, value in asked if knob_problem(name, value)] == []


def test_a_knob_outside_the_table_is_refused() -> None:
    assert knob_problem("muc", "on") is None
    assert "not a standard knob" in str(knob_problem("muc_service", "on"))
    assert "'yes' is not one of on, off" in str(knob_problem("muc", "yes"))


def test_docs_knobs_md_is_generated_from_the_table() -> None:
    expected = markdown(catalogue(resources.CATALOGUE))
    assert (PROJECT_ROOT / "docs" / "knobs.md").read_text() == expected, (
        "docs/knobs.md is out of date: interop knobs > docs/knobs.md"
    )
    assert all(f"| `{name}` |" in expected for name in STANDARD)


def _target_file(tmp_path: Path, drop: str = "", **changes: object) -> Path:
    """An external target file; ``drop``: a key to leave out, ``changes``: other values."""
    (tmp_path / "ca.pem").write_text("not checked here")
    data = {
        "name": "vendor-x",
        "product": "x",
        "domain": "x.test",
        "host": "127.0.0.50",
        "ports": {"c2s": 5222},
        "ca_file": "ca.pem",
        "accounts": [{"user": "test1", "password": "secret1"}],
    }
    path = tmp_path / "vendor-x.yaml"
    data = {key: value for key, value in {**data, **changes}.items() if key != drop}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_target_file_is_checked_against_its_schema(tmp_path: Path) -> None:
    assert read_target_file(_target_file(tmp_path))["host"] == "127.0.0.50"
    typo = _target_file(tmp_path, domian="typo")
    line = typo.read_text().splitlines().index("domian: typo") + 1
    with pytest.raises(
        CatalogueFileError, match=f":{line}: top level: .*'domian' was unexpected.*: accounts, ca_file,"
    ):
        read_target_file(typo)
    with pytest.raises(CatalogueFileError, match="'ca_file' is a required property"):
        read_target_file(_target_file(tmp_path, drop="ca_file"))
    with pytest.raises(CatalogueFileError, match="ca_file: nothere.pem is not a file"):
        read_target_file(_target_file(tmp_path, ca_file="nothere.pem"))


def test_interop_validate_covers_scenarios_catalogue_and_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    counted = {kind: n for n, kind in re.findall(r"(\d+) (scenario files|catalogue entries|profiles)", out)}
    assert counted["catalogue entries"] == str(len(catalogue(resources.CATALOGUE)))
    assert int(counted["scenario files"]) > 50 and int(counted["profiles"]) >= 1


def test_interop_validate_a_folder_an_entry_and_a_target_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, line = _broken_prosody(tmp_path / "vendor", "  mam:\n", "  archive:\n")
    assert main(["validate", str(tmp_path / "vendor")]) == 2
    assert f"{folder / 'target.yaml'}:{line}: knobs.archive:" in capsys.readouterr().err
    assert main(["validate", "--catalogue", str(tmp_path / "vendor"), str(_target_file(tmp_path))]) == 2
    assert f"{folder / 'target.yaml'}:{line}:" in capsys.readouterr().err
    assert main(["validate", str(_target_file(tmp_path)), str(resources.CATALOGUE / "ejabberd")]) == 0
    assert "1 catalogue entries, 1 target files valid" in capsys.readouterr().out
    assert main(["validate", str(_target_file(tmp_path, verify="no"))]) == 2
    assert "vendor-x.yaml:" in capsys.readouterr().err


def test_interop_validate_knows_a_baseline_and_refuses_a_folder_without_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "prosody.yaml", tmp_path / "ejabberd.yaml"
    good.write_text("known_failures:\n  auth.sasl.retry-limit: no retry limit yet\n")
    bad.write_text("# a vendor's baseline\nknown_failures:\n  auth.sasl.retry-limit: [1, 2]\n")
    assert main(["validate", str(good)]) == 0
    assert "1 baselines valid" in capsys.readouterr().out
    assert main(["validate", str(tmp_path)]) == 2
    assert f"{bad}:3: known_failures.auth.sasl.retry-limit" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 2
    assert "no YAML file there" in capsys.readouterr().err
