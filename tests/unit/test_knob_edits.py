"""Knob edits as the local driver renders them: list-valued knobs and ``for_each``."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from harness.plugin import PROJECT_ROOT
from harness.targets.config_edit import apply_edits
from harness.targets.local import LocalTarget
from harness.targets.spec import CatalogueError, load_spec


def _target(spec, tmp_path: Path, knobs: dict[str, str]) -> LocalTarget:
    env = SimpleNamespace(ca=SimpleNamespace(cert_path=tmp_path / "ca.crt"), work_dir=tmp_path)
    target = LocalTarget(spec, "t", "t.test", "127.0.0.11", knobs, env)  # type: ignore[arg-type]
    target._context = {"domain": "t.test", "knobs": target.knobs}
    return target


def test_for_each_makes_one_edit_per_item(tmp_path: Path) -> None:
    spec = load_spec(PROJECT_ROOT / "fixtures" / "targets" / "ejabberd")
    target = _target(spec, tmp_path, {"admins": "admin@t.test, root@t.test"})
    edits = target._knob_edits("ejabberd.yml")
    packaged = "acl:\n  admin:\n    user:\n      - ''\n  local:\n    user_regexp: ''\n"
    result = yaml.safe_load(apply_edits(packaged, "yaml", edits, "ejabberd.yml"))
    assert result["acl"]["admin"] == {"user": ["admin@t.test", "root@t.test"]}
    assert result["acl"]["local"] == {"user_regexp": ""}


def test_for_each_in_xml_replaces_the_list(tmp_path: Path) -> None:
    spec = load_spec(PROJECT_ROOT / "fixtures" / "targets" / "jabberd2")
    target = _target(spec, tmp_path, {"admins": "a@t.test,b@t.test"})
    packaged = "<sm><aci><acl type='all'><jid>admin@t.test</jid></acl></aci></sm>"
    out = apply_edits(packaged, "xml", target._knob_edits("sm.xml"), "sm.xml")
    assert "<jid>a@t.test</jid><jid>b@t.test</jid>" in out and "admin@t.test" not in out


def test_for_each_other_than_value_list_is_refused_when_the_catalogue_loads(tmp_path: Path) -> None:
    folder = tmp_path / "ejabberd"
    shutil.copytree(PROJECT_ROOT / "fixtures" / "targets" / "ejabberd", folder)
    text = (folder / "target.yaml").read_text()
    (folder / "target.yaml").write_text(text.replace("for_each: value_list", "for_each: values"))
    line = text[: text.index("for_each: value_list")].count("\n") + 1
    with pytest.raises(
        CatalogueError, match=f":{line}: knobs.admins.values.\\*.1.for_each: 'values' is not allowed"
    ):
        load_spec(folder)


def test_the_runs_own_edits_are_recorded_as_a_diff_against_the_packaged_file(tmp_path: Path) -> None:
    """Knob edits stay out of the diff (they are the knobs); ``adds:`` is reported, not applied."""
    spec = load_spec(PROJECT_ROOT / "fixtures" / "targets" / "jabberd2")
    spec = dataclasses.replace(spec, files=[f for f in spec.files if f.get("dest") == "c2s.xml"])
    target = _target(spec, tmp_path, {"c2s_require_encryption": "true"})
    target.run_dir = tmp_path / "run"
    target._context.update(
        run_dir=str(target.run_dir),
        address=target.address,
        ports=target.ports,
        cert=SimpleNamespace(pem_path=f"{tmp_path}/certs/t.pem"),
    )
    packaged = {
        "/etc/jabberd2/c2s.xml": "<c2s><!-- packaged --><pidfile>/run/c2s.pid</pidfile><router><ip>127.0.0.1</ip>"
        "<port>5347</port></router><log><file>/var/log/c2s.log</file></log><local><id register-enable='mu'>"
        "localhost.localdomain</id><ip>0.0.0.0</ip><port>5222</port></local><authreg><sqlite><dbname>/x.db"
        "</dbname></sqlite></authreg></c2s>",
    }
    target._packaged_text = lambda path: packaged[path]  # type: ignore[method-assign]
    target._render_files()
    diff, summary = target.config_diff()
    assert "-" + packaged["/etc/jabberd2/c2s.xml"][:5] in diff  # the packaged side, one line of XML
    assert f"{tmp_path}" not in diff and "<work folder>/run/c2s.pid" in diff
    assert "pemfile=" in diff and "require-starttls" not in diff  # the knob's edit is not the run's
    assert "require-starttls" in (target.run_dir / "c2s.xml").read_text()  # ... but it is applied
    assert "adds=" not in (target.run_dir / "c2s.xml").read_text()
    assert summary["files"]["c2s.xml"] > 0
    assert summary["adds"] == [
        "c2s.xml: " + next(e["adds"] for e in target.spec.files[0]["edits"] if "adds" in e)
    ]


def test_as_installed_leaves_out_the_edits_that_add_what_the_package_lacks(tmp_path: Path) -> None:
    spec = load_spec(PROJECT_ROOT / "fixtures" / "targets" / "jabberd2")
    spec = dataclasses.replace(spec, files=[f for f in spec.files if f.get("dest") == "c2s.xml"])
    env = SimpleNamespace(ca=SimpleNamespace(cert_path=tmp_path / "ca.crt"), work_dir=tmp_path)
    target = LocalTarget(spec, "t", "t.test", "127.0.0.11", {}, env, as_installed=True)  # type: ignore[arg-type]
    target.run_dir = tmp_path / "run"
    target._context = {
        "domain": "t.test",
        "knobs": target.knobs,
        "run_dir": str(target.run_dir),
        "address": target.address,
        "ports": target.ports,
        "cert": SimpleNamespace(pem_path=f"{tmp_path}/t.pem"),
    }
    packaged = "<c2s><pidfile>/p</pidfile><router><ip>1</ip><port>2</port></router><log><file>/l</file></log>"
    packaged += "<local><id>localhost</id><ip>0</ip><port>5222</port></local><authreg><sqlite><dbname>/x"
    packaged += "</dbname></sqlite></authreg></c2s>"
    target._packaged_text = lambda path: packaged  # type: ignore[method-assign]
    target._render_files()
    rendered = (target.run_dir / "c2s.xml").read_text()
    assert "pemfile" not in rendered and "<id>t.test</id>" in rendered  # the other run edits stay
    assert target.config_diff()[1]["adds"] == []
    assert target.config_diff()[1]["left_out"] == [
        "c2s.xml: " + next(e["adds"] for e in spec.files[0]["edits"] if "adds" in e)
    ]
