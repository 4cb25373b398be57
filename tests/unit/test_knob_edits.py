"""Knob edits as the local driver renders them: list-valued knobs and ``for_each``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from harness.plugin import PROJECT_ROOT
from harness.targets.config_edit import apply_edits
from harness.targets.local import LocalTarget
from harness.targets.spec import CatalogueError, Knob, load_spec


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


def test_for_each_other_than_value_list_is_refused(tmp_path: Path) -> None:
    spec = load_spec(PROJECT_ROOT / "fixtures" / "targets" / "ejabberd")
    bad = Knob("x", "", "", {"*": [{"file": "ejabberd.yml", "for_each": "values", "set": "a", "value": 1}]})
    spec.knobs["x"] = bad
    target = _target(spec, tmp_path, {"x": "1"})
    with pytest.raises(CatalogueError, match="for_each must be value_list"):
        target._knob_edits("ejabberd.yml")
