"""Config edits are exact: each operation does what it says, and an edit that misses raises."""

import pytest
import yaml

from harness.targets.config_edit import apply_edits, file_format
from harness.targets.spec import CatalogueError

LUA = 'pidfile = "/run/prosody/prosody.pid"\ninterfaces = { "*" }\nVirtualHost "localhost"\n'


def test_format_follows_file_name():
    assert [file_format(n) for n in ("a.yml", "b.yaml", "c.xml", "d.cfg.lua")] == [
        "yaml",
        "yaml",
        "xml",
        "text",
    ]


def test_text_replace_insert_append():
    out = apply_edits(
        LUA,
        "text",
        [
            {"replace": r"^pidfile = .*$", "with": 'pidfile = "/r/p.pid"', "count": 1},
            {"insert_before": r"^VirtualHost", "text": 'interfaces = { "127.0.0.11" }'},
            {"append": 'VirtualHost "a.test"'},
        ],
        "x",
    )
    assert out.splitlines() == [
        'pidfile = "/r/p.pid"',
        'interfaces = { "*" }',
        'interfaces = { "127.0.0.11" }',
        'VirtualHost "localhost"',
        'VirtualHost "a.test"',
    ]


def test_text_replace_that_misses_raises_with_file_name():
    with pytest.raises(CatalogueError, match=r"prosody.cfg.lua: edit replace .* matched 0 times"):
        apply_edits(LUA, "text", [{"replace": "^nosuch = .*$", "with": ""}], "prosody.cfg.lua")


def test_text_replace_count_is_exact():
    with pytest.raises(CatalogueError, match="matched 1 times, expected 2"):
        apply_edits(LUA, "text", [{"replace": "^pidfile", "with": "x", "count": 2}], "f")


def test_replacement_text_is_literal_not_a_regex_template():
    out = apply_edits(LUA, "text", [{"replace": "^pidfile = .*$", "with": r'pidfile = "\1\g<0>"'}], "f")
    assert r'pidfile = "\1\g<0>"' in out


def test_yaml_set_delete_and_list_index():
    text = "hosts: [localhost]\nlisten:\n  - port: 5222\n    module: ejabberd_c2s\nmodules: {mod_a: {}, mod_b: {}}\n"
    out = yaml.safe_load(
        apply_edits(
            text,
            "yaml",
            [
                {"set": "hosts", "value": ["b.test"]},
                {"set": "listen.0.ip", "value": "127.0.0.12"},
                {"delete": "modules.mod_b"},
                {"set": "listen.1", "value": {"port": 5223}},
            ],
            "ejabberd.yml",
        )
    )
    assert out == {
        "hosts": ["b.test"],
        "listen": [{"port": 5222, "module": "ejabberd_c2s", "ip": "127.0.0.12"}, {"port": 5223}],
        "modules": {"mod_a": {}},
    }


def test_yaml_missing_path_raises():
    with pytest.raises(CatalogueError, match="yaml path 'listen.3.ip' does not exist"):
        apply_edits("listen: []\n", "yaml", [{"set": "listen.3.ip", "value": "x"}], "f")
    with pytest.raises(CatalogueError, match="to delete does not exist"):
        apply_edits("a: 1\n", "yaml", [{"delete": "b"}], "f")


def test_xml_set_attr_add_remove():
    text = "<c2s><id realm='' pemfile='/etc/x.pem'>localhost</id><local><ip>0.0.0.0</ip><port>5222</port></local></c2s>"
    out = apply_edits(
        text,
        "xml",
        [
            {"xml_set": "id", "value": "c.test"},
            {"xml_attr": "id", "name": "pemfile", "value": "/run/c.pem"},
            {"xml_set": "local/ip", "value": "127.0.0.13"},
            {"xml_remove": "local/port"},
            {"xml_add": "local", "element": "<ssl-port>5223</ssl-port>"},
        ],
        "c2s.xml",
    )
    assert out.startswith('<?xml version="1.0"?>')
    assert '<id realm="" pemfile="/run/c.pem">c.test</id>' in out
    assert "<local><ip>127.0.0.13</ip><ssl-port>5223</ssl-port></local>" in out


def test_xml_path_that_matches_nothing_raises():
    with pytest.raises(CatalogueError, match="xml path 'nosuch' matched no element"):
        apply_edits("<a/>", "xml", [{"xml_set": "nosuch", "value": "x"}], "f")
    with pytest.raises(CatalogueError, match="xml_remove 'b/c' matched no element"):
        apply_edits("<a><b/></a>", "xml", [{"xml_remove": "b/c"}], "f")


def test_unknown_operation_names_the_docs():
    with pytest.raises(CatalogueError, match="docs/targets.md"):
        apply_edits("x", "text", [{"frobnicate": 1}], "f")
