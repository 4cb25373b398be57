"""YAML files people write (scenarios, profiles): safe parsing, schema validation, and problems
that point at file:line and say what would be right.

PyYAML's ``safe_load`` drops positions, so a file is composed once into nodes (keeping marks),
built into plain data with the same safe constructor, and every JSON path is mapped back to its
line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml


@dataclass(frozen=True)
class Problem:
    line: int
    message: str


class YamlFileError(Exception):
    """One or more problems in one file, each with its line."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(f"{path}:{p.line}: {p.message}" for p in self.problems))


Lines = dict[tuple[Any, ...], int]


def compose(
    text: str, path: Path, empty: str, error: type[YamlFileError] = YamlFileError
) -> tuple[Any, Lines]:
    """Parse YAML safely and map each JSON path (tuple of keys/indexes) to its 1-based line;
    ``empty`` says what an empty file lacks."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise error(path, [Problem(line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    if node is None:
        raise error(path, [Problem(1, f"the file is empty; {empty}")])
    lines: Lines = {}

    def walk(n: yaml.Node, at: tuple[Any, ...]) -> None:
        lines[at] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for key_node, value_node in n.value:
                walk(value_node, at + (key_node.value,))
                lines[at + (key_node.value, "<key>")] = key_node.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, at + (i,))

    walk(node, ())
    data = yaml.SafeLoader(text).get_single_data()
    return data, lines


def line_of(lines: Lines, at: Iterable[Any]) -> int:
    at = tuple(at)
    while at and at not in lines:
        at = at[:-1]
    return lines.get(at, 1)


def hint(error: jsonschema.ValidationError, docs: str) -> str:
    """A jsonschema error as 'what is wrong, and what would be right'."""
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    if error.validator == "required":
        return f"{where}: {error.message}; add it (see {docs})"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{where}: {error.instance!r} is not allowed; use one of {allowed}"
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"{where}: {error.message}; allowed keys here: {allowed}"
    if error.validator == "pattern":
        return f"{where}: {error.instance!r} does not have the expected form ({error.validator_value})"
    if error.validator in ("maxProperties", "minProperties") and where.startswith("steps"):
        return f"{where}: a step is one action mapping, e.g. '- send: {{actor: alice, xml: ...}}'"
    return f"{where}: {error.message}"


def schema_problems(data: Any, lines: Lines, schema: dict[str, Any], docs: str) -> list[Problem]:
    return [
        Problem(line_of(lines, e.absolute_path), hint(e, docs))
        for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    ]
