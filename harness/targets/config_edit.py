"""Render a target's configuration: a packaged file plus the run's edits.

Edits are exact: one that changes nothing raises, because a silently skipped edit would run a
server in a configuration nobody chose. Formats: text (regex), YAML (paths), XML (ElementPath).
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from harness.targets.spec import CatalogueError

Edit = dict[str, Any]


def normalized(text: str, fmt: str) -> str:
    """A file as the edits write it back (YAML and XML re-serialized, comments gone), so that a
    diff against the edited file shows the edits and nothing of the serializer."""
    if fmt == "yaml":
        return _serialized(yaml.safe_load(text), fmt)
    if fmt == "xml":
        return _serialized(ET.fromstring(text), fmt)
    return text


def _serialized(tree: Any, fmt: str) -> str:
    """How an edited YAML document or XML tree is written back (one way, for edits and diffs)."""
    if fmt == "yaml":
        return yaml.safe_dump(tree, sort_keys=False, default_flow_style=False, width=1000)
    return '<?xml version="1.0"?>\n' + ET.tostring(tree, encoding="unicode") + "\n"


def file_format(name: str) -> str:
    suffix = Path(name).suffix
    return {".yml": "yaml", ".yaml": "yaml", ".xml": "xml"}.get(suffix, "text")


def apply_edits(text: str, fmt: str, edits: list[Edit], where: str) -> str:
    """Apply already-rendered edits to a file's text; ``where`` names the file in errors."""
    if not edits:
        return text
    if fmt == "yaml":
        data = yaml.safe_load(text)
        for edit in edits:
            _yaml_edit(data, edit, where)
        return _serialized(data, fmt)
    if fmt == "xml":
        root = ET.fromstring(text)
        for edit in edits:
            _xml_edit(root, edit, where)
        return _serialized(root, fmt)
    for edit in edits:
        text = _text_edit(text, edit, where)
    return text


def _text_edit(text: str, edit: Edit, where: str) -> str:
    if "append" in edit:
        return text.rstrip("\n") + "\n" + str(edit["append"]).rstrip("\n") + "\n"
    if "replace" in edit:
        pattern = re.compile(edit["replace"], re.MULTILINE)
        found = len(pattern.findall(text))
        expected = edit.get("count")
        if found == 0 or (expected is not None and found != int(expected)):
            raise CatalogueError(
                f"{where}: edit replace {edit['replace']!r} matched {found} times, expected "
                f"{expected if expected is not None else 'at least 1'}; the packaged file changed?"
            )
        return pattern.sub(lambda _m: str(edit["with"]), text)
    if "insert_before" in edit:
        match = re.search(edit["insert_before"], text, re.MULTILINE)
        if not match:
            raise CatalogueError(f"{where}: insert_before {edit['insert_before']!r} matched nothing")
        insert = str(edit["text"]).rstrip("\n") + "\n"
        return text[: match.start()] + insert + text[match.start() :]
    raise CatalogueError(f"{where}: unknown text edit {sorted(edit)}; see docs/targets.md")


def _path_parts(path: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in str(path).split(".")]


def _yaml_edit(data: Any, edit: Edit, where: str) -> None:
    key = "set" if "set" in edit else "delete" if "delete" in edit else None
    if key is None:
        raise CatalogueError(f"{where}: unknown yaml edit {sorted(edit)}; see docs/targets.md")
    *parents, last = _path_parts(edit[key])
    node = data
    for part in parents:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError) as exc:
            raise CatalogueError(f"{where}: yaml path {edit[key]!r} does not exist (at {part!r})") from exc
    if key == "set":
        if isinstance(node, list) and isinstance(last, int) and last == len(node):
            node.append(copy.deepcopy(edit["value"]))
        else:
            node[last] = copy.deepcopy(edit["value"])
        return
    try:
        del node[last]
    except (KeyError, IndexError, TypeError) as exc:
        raise CatalogueError(f"{where}: yaml path {edit[key]!r} to delete does not exist") from exc


def _xml_targets(root: ET.Element, path: str, where: str) -> list[ET.Element]:
    found = [root] if path in (".", "") else root.findall(path)
    if not found:
        raise CatalogueError(f"{where}: xml path {path!r} matched no element")
    return found


def _xml_edit(root: ET.Element, edit: Edit, where: str) -> None:
    if "xml_set" in edit:
        for el in _xml_targets(root, edit["xml_set"], where):
            el.text = str(edit["value"])
    elif "xml_attr" in edit:
        for el in _xml_targets(root, edit["xml_attr"], where):
            el.set(str(edit["name"]), str(edit["value"]))
    elif "xml_remove" in edit:
        parent_path, _, child_path = str(edit["xml_remove"]).rpartition("/")
        removed = 0
        for parent in _xml_targets(root, parent_path or ".", where):
            for child in parent.findall(child_path):
                parent.remove(child)
                removed += 1
        if not removed:
            raise CatalogueError(f"{where}: xml_remove {edit['xml_remove']!r} matched no element")
    elif "xml_add" in edit:
        for el in _xml_targets(root, edit["xml_add"], where):
            el.append(ET.fromstring(str(edit["element"])))
    else:
        raise CatalogueError(f"{where}: unknown xml edit {sorted(edit)}; see docs/targets.md")
