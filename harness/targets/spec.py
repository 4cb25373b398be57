"""A target product as described by its catalogue folder (``fixtures/targets/<product>/``), and
the other target description people write, an external target file (``--target-file``).

The spec is data only; nothing here knows a product by name. ``docs/targets.md`` documents
the file format, ``harness/schemas/target.schema.json`` its shape. Everything that can be
checked without a server is checked when the entry loads, with the line of each problem:
standard knob names and values (:mod:`harness.targets.knobs`), the files knob edits name, edit
operations, regular expressions, Jinja2 syntax, names of ports, processes and logs. A mistake
found only when a server starts costs a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from harness.targets.knobs import ANY_VALUE, STANDARD, knob_problem
from harness.targets.knobs import value_list as value_list  # where the drivers import it from
from harness.trace.health import LogHealth
from harness.verdict import HarnessError
from harness.yaml_file import Lines, Problem, YamlFileError, line_of, load_file, schema, schema_problems

DOCS = "docs/targets.md"
# The built-in variant every entry has: the default one without the run's edits that add what the
# package does not configure at all (``adds:``), to show what the product does as installed.
AS_INSTALLED = "as-installed"
# An edit's operations by the format of the file it edits (harness/targets/config_edit.py).
EDIT_OPERATIONS = {
    "text": ("replace", "append", "insert_before"),
    "yaml": ("set", "delete"),
    "xml": ("xml_set", "xml_attr", "xml_remove", "xml_add"),
}
_REGEX_KEYS = ("replace", "insert_before")
_KNOB_EDIT_KEYS = ("file", "for_each")  # a knob's edit only; never rendered
_JINJA_MARKS = ("{{", "{%", "{#")


class CatalogueError(HarnessError):
    """A target folder or a knob selection is wrong (a usage error, exit code 2)."""


class CatalogueFileError(YamlFileError, CatalogueError):
    """Problems in a ``target.yaml`` or a target file, each with its line (a usage error)."""


@dataclass(frozen=True)
class Knob:
    name: str
    description: str
    default: str
    values: dict[str, list[dict[str, Any]]]  # value -> edits (the default value usually has none)

    def edits_for(self, value: str) -> list[dict[str, Any]]:
        """The edits of one value; edits under ``"*"`` serve any value the knob does not list
        (the driver renders them with ``value`` and ``value_list``, the value split on commas)."""
        if value == self.default and value not in self.values:
            return []
        if value in self.values:
            return self.values[value]
        if ANY_VALUE in self.values:
            return self.values[ANY_VALUE]
        choices = sorted({self.default, *self.values})
        raise CatalogueError(f"knob {self.name}: unknown value {value!r}; choose one of {choices}")


@dataclass(frozen=True)
class TargetSpec:
    product: str
    title: str
    protocol: str
    folder: Path
    package: str | None
    user: str
    ports: dict[str, int]
    features: frozenset[str]
    files: list[dict[str, Any]]
    setup: list[list[str]]
    processes: list[dict[str, Any]]
    ready: dict[str, Any]
    accounts: dict[str, Any]
    version: dict[str, str] | None
    logs: list[str]
    knobs: dict[str, Knob] = field(default_factory=dict)
    # which log lines say the server itself went wrong (counted per item): harness/trace/health.py
    health: LogHealth | None = None
    # services the target runs on subdomains of its own (e.g. "conference" for a MUC service):
    # every target resolves them and the target's certificate names them
    subdomains: list[str] = field(default_factory=list)
    # how to drop every connection with other servers and any remembered failure, between items
    # over pairs: {command: argv} and/or {restart: [process names]}
    reset: dict[str, Any] = field(default_factory=dict)
    # admin operations with the product's own tool: op -> {command: argv template, description}
    admin: dict[str, dict[str, Any]] = field(default_factory=dict)
    # named bundles of knob values (e.g. "hardened"): variant -> (description, knob -> value)
    variants: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # how the docker driver gets the image: {image, build: Dockerfile in the folder | pull: true}
    docker: dict[str, Any] = field(default_factory=dict)
    # drivers with which a run on our machines has verified this entry; the others are
    # "not verified here": never selected by default, marked in every report
    verified: frozenset[str] = frozenset()

    def runs_with(self, driver: str) -> bool:
        """Whether the entry says how to run it with ``driver`` (a package, an image)."""
        return bool(self.package) if driver == "local" else bool(self.docker.get("image"))

    def variant_knobs(self, variant: str | None) -> dict[str, str]:
        """The knob values of a named variant (none for the default variant and as-installed)."""
        if variant is None or variant == AS_INSTALLED:
            return {}
        if variant not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise CatalogueError(f"{self.product} has no variant {variant!r}; its variants: {known}")
        return dict(self.variants[variant][1])

    def knob_values(self, chosen: dict[str, str]) -> dict[str, str]:
        """Every knob's value for a run: the chosen ones, the packaged default for the rest."""
        unknown = sorted(set(chosen) - set(self.knobs))
        if unknown:
            raise CatalogueError(
                f"{self.product} has no knob {', '.join(unknown)}; its knobs: {', '.join(sorted(self.knobs))}"
            )
        values = {name: knob.default for name, knob in self.knobs.items()}
        values.update(chosen)
        for name, value in values.items():
            self.knobs[name].edits_for(value)  # validates the value
        for name, value in chosen.items():  # a list knob's edits take any value: is it a list?
            problem = knob_problem(name, value)
            if problem:
                raise CatalogueError(f"{self.product}: {problem}")
        return values


def read_checked(path: Path, kind: str, docs: str, empty: str) -> tuple[Any, Lines]:
    """A file parsed safely and valid under ``harness/schemas/<kind>.schema.json``, with the line
    of each part; otherwise :class:`CatalogueFileError` with every problem (``empty``: what an
    empty file lacks, ``docs``: where its format is described)."""
    data, lines = load_file(path, empty, CatalogueFileError)
    problems = schema_problems(data, lines, schema(kind), docs)
    if problems:
        raise CatalogueFileError(path, problems)
    return data, lines


def load_spec(folder: Path) -> TargetSpec:
    """A product folder's entry, checked as far as it can be without a server."""
    path = folder / "target.yaml"
    data, lines = read_checked(
        path, "target", DOCS, "a target needs product, protocol, user, ports, processes"
    )
    knobs = {
        name: Knob(
            name,
            k["description"],
            k["default"],
            {v: list(e or []) for v, e in (k.get("values") or {}).items()},
        )
        for name, k in (data.get("knobs") or {}).items()
    }
    problems = _EntryCheck(data, lines, folder, knobs).problems()
    if problems:
        raise CatalogueFileError(path, problems)
    return TargetSpec(
        product=data["product"],
        title=data.get("title", data["product"]),
        protocol=data["protocol"],
        folder=folder,
        package=data.get("package"),
        user=data["user"],
        ports=dict(data["ports"]),
        features=frozenset(data.get("features") or ()),
        files=list(data.get("files") or []),
        setup=[list(map(str, cmd)) for cmd in data.get("setup") or []],
        processes=list(data["processes"]),
        ready=dict(data.get("ready") or {}),
        accounts=dict(data.get("accounts") or {}),
        version=data.get("version"),
        logs=list(data.get("logs") or []),
        knobs=knobs,
        health=LogHealth.parse(data["health"], str(path)) if "health" in data else None,
        subdomains=list(data.get("subdomains") or []),
        reset=dict(data.get("reset") or {}),
        admin=dict(data.get("admin") or {}),
        variants={
            name: (v["description"], dict(v["knobs"])) for name, v in (data.get("variants") or {}).items()
        },
        docker=dict(data.get("docker") or {}),
        verified=frozenset(data.get("verified") or ()),
    )


def _parts(
    value: Any, pattern: tuple[str, ...], at: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], Any]]:
    """The parts of ``value`` a path pattern names, with their paths ("*": every key or item)."""
    if not pattern:
        return [(at, value)]
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items = _children(value)
    else:
        items = [(head, value[head])] if isinstance(value, dict) and head in value else []
    return [found for key, sub in items for found in _parts(sub, rest, at + (key,))]


def _strings(value: Any, at: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """Every string inside ``value`` (nested lists and mappings), with its path."""
    if isinstance(value, str):
        return [(at, value)]
    return [found for key, sub in _children(value) for found in _strings(sub, at + (key,))]


def _children(value: Any) -> list[tuple[Any, Any]]:
    """A mapping's (key, value) pairs, a list's (index, item) pairs, nothing of a scalar."""
    if isinstance(value, dict):
        return list(value.items())
    return list(enumerate(value)) if isinstance(value, list) else []


def _format_of(dest: str) -> str:
    """An edit's format: its file's. Imported late: config_edit imports CatalogueError from here."""
    from harness.targets.config_edit import file_format

    return file_format(dest)


# the parts of an entry the drivers render as Jinja2 templates, besides edits and template files
_RENDERED = (
    ("setup",),
    ("processes", "*", "argv"),
    ("processes", "*", "env"),
    ("ready", "command"),
    ("accounts", "create"),
    ("version", "command"),
    ("admin", "*", "command"),
    ("reset", "command"),
)


class _EntryCheck:
    """What an entry's schema cannot say, each problem at its line: standard knobs, what edits
    name and contain, templates, names that refer to other parts of the entry."""

    def __init__(self, data: dict[str, Any], lines: Lines, folder: Path, knobs: dict[str, Knob]) -> None:
        self.data = data
        self.lines = lines
        self.folder = folder
        self.knobs = knobs
        self.found: list[Problem] = []
        self.jinja = jinja2.Environment()

    def problems(self) -> list[Problem]:
        self._product()
        self._files()
        self._knobs()
        self._variants()
        self._references()
        self._patterns()
        self._docker()
        for pattern in _RENDERED:
            for at, value in _parts(self.data, pattern):
                for sub, text in _strings(value, at):
                    self._template(sub, text)
        return self.found

    def _add(self, at: tuple[Any, ...], message: str) -> None:
        where = ".".join(str(part) for part in at if part != "<key>") or "top level"
        self.found.append(Problem(line_of(self.lines, at), f"{where}: {message}"))

    def _product(self) -> None:
        product = self.data["product"]
        if product != self.folder.name:
            self._add(("product",), f"{product!r} is not the folder's name; name the folder {product}")

    def _files(self) -> None:
        for at, entry in _parts(self.data, ("files", "*")):
            given = [key for key in ("source", "copy", "template") if key in entry]
            if len(given) != 1:
                self._add(
                    at,
                    f"give one of source (a packaged file), copy (one copied unchanged) or template "
                    f"(of the folder), not {' and '.join(given) or 'none'}",
                )
            if "template" in entry:
                self._template_file(at + ("template",), entry["template"])
            for edit_at, edit in _parts(entry, ("edits", "*"), at):
                self._edit(edit_at, edit, _format_of(entry["dest"]), knob=False)

    def _template_file(self, at: tuple[Any, ...], name: str) -> None:
        path = self.folder / name
        if not path.is_file():
            self._add(at, f"{name} is not a file in {self.folder}")
            return
        try:
            self.jinja.parse(path.read_text(encoding="utf-8"))
        except jinja2.TemplateSyntaxError as exc:
            self._add(at, f"{name}, line {exc.lineno}: not a valid Jinja2 template: {exc.message}")

    def _knobs(self) -> None:
        dests = sorted(entry["dest"] for entry in self.data.get("files") or [])
        for name, knob in self.knobs.items():
            at = ("knobs", name)
            if name not in STANDARD:
                self._add(at + ("<key>",), str(knob_problem(name, knob.default)))
                continue
            kind = STANDARD[name].kind
            problem = kind.problem(knob.default)
            if problem:
                self._add(at + ("default",), problem)
            for value, edits in knob.values.items():
                value_at = at + ("values", value)
                if value == ANY_VALUE:
                    problem = (
                        None
                        if kind.is_list
                        else f'"*" is for list knobs; give each of {kind.label} its edits'
                    )
                else:
                    problem = kind.problem(value)
                if problem:
                    self._add(value_at + ("<key>",), problem)
                for index, edit in enumerate(edits):
                    if edit["file"] in dests:
                        self._edit(value_at + (index,), edit, _format_of(edit["file"]), knob=True)
                    else:
                        files = ", ".join(dests) or "none"
                        self._add(
                            value_at + (index, "file"),
                            f"{edit['file']!r} is not the dest of a files entry ({files})",
                        )

    def _edit(self, at: tuple[Any, ...], edit: dict[str, Any], fmt: str, *, knob: bool) -> None:
        """One edit: a single operation that fits the file's format, regular expressions that
        compile, templates that parse, and only the keys of its place."""
        allowed = EDIT_OPERATIONS[fmt]
        operations = [key for key in edit if any(key in ops for ops in EDIT_OPERATIONS.values())]
        if len(operations) != 1:
            given = " and ".join(operations) or "none"
            self._add(
                at, f"an edit makes one change, one of {', '.join(allowed)} (a {fmt} file), not {given}"
            )
        elif operations[0] not in allowed:
            self._add(at + (operations[0],), f"not an edit of a {fmt} file; its edits: {', '.join(allowed)}")
        misplaced = (
            {"adds": "only the run's own edits (under files) say what they add"}
            if knob
            else dict.fromkeys(
                _KNOB_EDIT_KEYS, "only a knob's edits name a file; an edit under files changes its dest"
            )
        )
        for key, why in misplaced.items():
            if key in edit:
                self._add(at + (key,), why)
        for key in _REGEX_KEYS:
            if key in edit and not any(mark in edit[key] for mark in _JINJA_MARKS):
                try:
                    re.compile(edit[key], re.MULTILINE)
                except re.error as exc:
                    self._add(at + (key,), f"not a regular expression: {exc}")
        for key, value in edit.items():
            if key not in _KNOB_EDIT_KEYS:
                for sub, text in _strings(value, at + (key,)):
                    self._template(sub, text)

    def _template(self, at: tuple[Any, ...], text: str) -> None:
        if not any(mark in text for mark in _JINJA_MARKS):
            return
        try:
            self.jinja.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            self._add(at, f"not a valid Jinja2 template: {exc.message}")

    def _variants(self) -> None:
        for at, value in _parts(self.data, ("variants", "*", "knobs", "*")):
            knob = self.knobs.get(at[-1])
            if knob is None:
                self._add(
                    at + ("<key>",),
                    f"the entry has no knob {at[-1]}; its knobs: {', '.join(self.knobs) or 'none'}",
                )
                continue
            try:
                knob.edits_for(value)
            except CatalogueError as exc:
                self._add(at, str(exc))

    def _references(self) -> None:
        ports = sorted(self.data["ports"])
        processes = sorted(p["name"] for p in self.data["processes"])
        # health reads log slices by file name: those of logs and each process's output
        logs = sorted(
            {PurePosixPath(log).name for log in self.data.get("logs") or []} | {f"{p}.out" for p in processes}
        )
        references = (
            (("processes", "*", "wait_tcp"), ports, "port"),
            (("ready", "tcp", "*"), ports, "port"),
            (("reset", "restart", "*"), processes, "process"),
            (("health", "logs", "*"), logs, "log"),
        )
        for pattern, known, what in references:
            for at, name in _parts(self.data, pattern):
                if name not in known:
                    self._add(at, f"no {what} {name!r}; the entry's {what}s: {', '.join(known) or 'none'}")

    def _patterns(self) -> None:
        """Regular expressions outside edits: health's (worded as LogHealth words it) and version's."""
        for at, pattern in _parts(self.data, ("health", "*")):
            if at[-1] in ("error", "crash") and pattern:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.found.append(
                        Problem(
                            line_of(self.lines, at), f"health: not a regular expression ({at[-1]}): {exc}"
                        )
                    )
        for at, pattern in _parts(self.data, ("version", "pattern")):
            try:
                groups = re.compile(pattern).groups
            except re.error as exc:
                self._add(at, f"not a regular expression: {exc}")
                continue
            if groups < 1:
                self._add(at, "needs a group: (...) around the version")

    def _docker(self) -> None:
        docker = self.data.get("docker")
        if docker is None:
            return
        if "image" not in docker:
            self._add(("docker",), 'needs image: NAME:TAG (see docs/targets.md, "Docker")')
        if "build" in docker and docker.get("pull"):
            self._add(
                ("docker",), "give build: DOCKERFILE (built here) or pull: true (from a registry), not both"
            )
        if "build" in docker and not (self.folder / docker["build"]).is_file():
            self._add(("docker", "build"), f"{docker['build']} is not a file in {self.folder}")


def read_target_file(path: Path) -> dict[str, Any]:
    """An external target file (``--target-file``), valid under
    ``harness/schemas/target-file.schema.json`` and with its ``ca_file`` there."""
    data, lines = read_checked(
        path,
        "target-file",
        "docs/interop-events.md",
        "a target file needs name, product, domain, host, ports, accounts",
    )
    missing = missing_ca_file(data, path.parent)
    if missing:
        raise CatalogueFileError(
            path, [Problem(line_of(lines, ("ca_file",)), f"{missing} (relative to this file)")]
        )
    return data


def missing_ca_file(entry: dict[str, Any], folder: Path) -> str:
    """What is wrong with a target file's ``ca_file`` (relative to ``folder``), or "" when it is
    there or not needed (``verify: false``)."""
    ca_file = entry.get("ca_file")
    if entry.get("verify", True) and ca_file is not None and not (folder / ca_file).is_file():
        return f"ca_file: {ca_file} is not a file"
    return ""


def catalogue(root: Path) -> dict[str, TargetSpec]:
    """Every product folder under ``root`` (``fixtures/targets``)."""
    if not root.is_dir():
        raise CatalogueError(f"{root}: not a folder of product folders")
    return {
        folder.name: load_spec(folder)
        for folder in sorted(root.iterdir())
        if (folder / "target.yaml").is_file()
    }


def catalogues(root: Path, extras: list[Path]) -> dict[str, TargetSpec]:
    """The built-in catalogue and the folders of ``--catalogue``; a product twice is an error."""
    products = catalogue(root)
    for extra in extras:
        more = catalogue(extra)
        twice = sorted(set(more) & set(products))
        if twice:
            raise CatalogueError(f"--catalogue {extra}: {', '.join(twice)} already in the catalogue")
        products |= more
    return products
