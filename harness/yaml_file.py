"""YAML files people write or receive (scenarios, catalogue entries, profiles, baselines): safe
parsing, schema validation, and problems that point at file:line and say what would be right.

PyYAML's ``safe_load`` drops positions, so a file is composed once into nodes (keeping marks),
built into plain data with the same safe constructor, and every JSON path is mapped back to its
line. The files come from anyone (a vendor's catalogue, a scenario in a pull request), so the
loader also refuses what safe YAML lets through: tags, nesting deep enough to exhaust Python's
recursion limit, aliases that expand to millions of values, huge files (docs/decisions.md,
"Hostile YAML files").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# Larger files are refused before parsing: PyYAML parses about 1 MB/s, and the largest shipped
# file (a scenario carrying a 70 KB stanza) is 75 KB.
MAX_BYTES = 1 << 20
# Deeper nesting is refused while composing: the shipped files nest 8 levels, and at 32 every
# recursive reader of the data (PyYAML's composer, the line map, schema validation) stays far
# from Python's recursion limit.
MAX_DEPTH = 32
# More values than this, an alias counting as the values it stands for, are refused: the largest
# shipped file holds 675, and an alias bomb (each line multiplying the one before) passes the
# limit within a few lines instead of hanging every reader of the data.
MAX_VALUES = 100_000

_TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep, the limit; flatten it"
_STANDARD = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE = (_STANDARD + name for name in ("str", "seq", "map", "merge"))


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


class _Refused(Exception):
    """Valid YAML that this loader refuses, at one line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(line, message)


class _GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader checking each event before its composer takes it: the composer
    recurses once per level and shares aliased nodes, so a check of the composed nodes would come
    too late (RecursionError) or take forever (walking an alias bomb)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.total = 0  # values so far, aliases expanded
        self.counts = [0]  # values so far in each open collection (and the document)
        self.open_anchors: list[str | None] = []
        self.sizes: dict[str, int] = {}  # values each anchored node stands for

    def get_event(self) -> yaml.Event:
        event = super().get_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            name = event.anchor
            if name in self.open_anchors:
                raise _Refused(
                    line, f"alias *{name} is inside the value it names; a value cannot hold itself"
                )
            self._add(self.sizes.get(name, 0), line, f"alias *{name} expands the file to")
        elif isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            self._check_tag(event, line)
            self._add(1, line, "the file holds")
            if isinstance(event, yaml.ScalarEvent):
                self._close(event.anchor, 1)
            elif len(self.open_anchors) == MAX_DEPTH:
                raise _Refused(line, _TOO_DEEP)
            else:
                self.counts.append(0)
                self.open_anchors.append(event.anchor)
        elif isinstance(event, yaml.CollectionEndEvent):
            inner = self.counts.pop()
            self.counts[-1] += inner
            self._close(self.open_anchors.pop(), 1 + inner)
        return event

    def fetch_flow_collection_start(self, token_class: type[yaml.Token]) -> None:
        """The same depth limit for ``[`` and ``{`` as the scanner meets them: it reads up to 1024
        characters ahead of the events, in time quadratic in the brackets open on the line."""
        if self.flow_level == MAX_DEPTH:
            raise _Refused(self.line + 1, _TOO_DEEP)
        super().fetch_flow_collection_start(token_class)

    def _add(self, values: int, line: int, what: str) -> None:
        self.total += values
        self.counts[-1] += values
        if self.total > MAX_VALUES:
            raise _Refused(
                line,
                f"{what} more than {MAX_VALUES} values (an alias counts as the values it stands "
                "for), the limit; write fewer",
            )

    def _close(self, anchor: str | None, values: int) -> None:
        if anchor is not None:
            self.sizes[anchor] = values

    def _check_tag(self, event: yaml.ScalarEvent | yaml.CollectionStartEvent, line: int) -> None:
        """A tag may only say what the value already is, or make a scalar a string."""
        if event.tag in (None, "!"):
            return
        if isinstance(event, yaml.ScalarEvent):
            allowed = {_STR, self.resolve(yaml.ScalarNode, event.value, (True, False))}
        else:
            allowed = {_SEQ if isinstance(event, yaml.SequenceStartEvent) else _MAP}
        if event.tag not in allowed:
            shown = "!!" + event.tag.removeprefix(_STANDARD) if event.tag.startswith(_STANDARD) else event.tag
            raise _Refused(
                line,
                f"tags are not allowed here ({shown}): these files hold plain data; "
                "write the value without the tag (quoted, for a string)",
            )

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Python's own refusals (a 13th month, an integer of 5000 digits) with the value's line."""
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None


def _lines(root: yaml.Node) -> Lines:
    """Each JSON path's line; refuses keys that are not scalars and keys given twice (PyYAML
    keeps the last silently, so a step's second ``expect`` would replace its first)."""
    lines: Lines = {}

    def walk(n: yaml.Node, at: tuple[Any, ...]) -> None:
        lines[at] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, value_node in n.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(line, "a key must be a plain value, not a list or a mapping")
                key = (key_node.tag, key_node.value)
                if key in first and key_node.tag != _MERGE:
                    raise _Refused(
                        line, f"key {key_node.value!r} is given twice (first on line {first[key]}); keep one"
                    )
                first[key] = line
                walk(value_node, at + (key_node.value,))
                lines[at + (key_node.value, "<key>")] = line
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, at + (i,))

    walk(root, ())
    return lines


def _parse(text: str) -> tuple[Any, Lines] | None:
    """The document's data and line map, or None when the text holds no document."""
    loader = _GuardedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        lines = _lines(node)  # before construction, which merges ``<<`` keys into their mappings
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def _yaml_problem(text: str, exc: yaml.YAMLError) -> Problem:
    if isinstance(exc, yaml.reader.ReaderError):  # a control character; it carries no mark
        line = text.count("\n", 0, exc.position) + 1
        return Problem(line, f"not valid YAML: character #x{exc.character:04x} is not allowed; remove it")
    mark = getattr(exc, "problem_mark", None)
    return Problem(mark.line + 1 if mark else 1, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")


def _too_large() -> Problem:
    return Problem(1, f"the file is larger than {MAX_BYTES} bytes, the limit; split it")


def compose(
    text: str, path: Path, empty: str, error: type[YamlFileError] = YamlFileError
) -> tuple[Any, Lines]:
    """Parse YAML safely and map each JSON path (tuple of keys/indexes) to its 1-based line;
    ``empty`` says what an empty file lacks. Anything refused raises ``error`` with its line."""
    if len(text) > MAX_BYTES:  # a character is at least one byte
        raise error(path, [_too_large()])
    try:
        parsed = _parse(text)
    except _Refused as exc:
        raise error(path, [exc.problem]) from None
    except yaml.YAMLError as exc:
        raise error(path, [_yaml_problem(text, exc)]) from None
    if parsed is None:
        raise error(path, [Problem(1, f"the file is empty; {empty}")])
    return parsed


def read_bytes(path: Path, error: type[YamlFileError] = YamlFileError) -> bytes:
    """The file's bytes; past :data:`MAX_BYTES` it is refused unread (it may never end)."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise error(path, [Problem(1, f"cannot read the file: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_BYTES:
        raise error(path, [_too_large()])
    return raw


def decode(raw: bytes, path: Path, error: type[YamlFileError] = YamlFileError) -> str:
    """UTF-8 text, or ``error`` at the line of the first byte that is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problem = Problem(line, f"not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8")
        raise error(path, [problem]) from None


def load_file(path: Path, empty: str, error: type[YamlFileError] = YamlFileError) -> tuple[Any, Lines]:
    """:func:`compose` of a file: read, size-checked and decoded with the same errors."""
    return compose(decode(read_bytes(path, error), path, error), path, empty, error)


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


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``harness/schemas/<name>.schema.json`` of a kind of file."""
    return json.loads(resources.files("harness").joinpath(f"schemas/{name}.schema.json").read_text())


def schema_problems(data: Any, lines: Lines, schema: dict[str, Any], docs: str) -> list[Problem]:
    return [
        Problem(_schema_line(e, lines), hint(e, docs))
        for e in jsonschema.Draft202012Validator(schema).iter_errors(data)
    ]


def _schema_line(error: jsonschema.ValidationError, lines: Lines) -> int:
    """The line of a schema error; an unknown key's own line, where jsonschema names the mapping
    that holds it (a long section would otherwise point at its first line)."""
    at = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        at += next(((key, "<key>") for key in error.instance if key not in known), ())
    return line_of(lines, at)
