"""An interop event in one file (``interop run --event FILE``): who takes part, and what runs.

The file (``harness/schemas/event.schema.json``; docs/interop-events.md, "The event file") names
the participants: catalogue products the harness runs (with their knobs) and servers already
running elsewhere (an external target file, or the same fields written in the event file), the
categories and scenarios to run and how the run is judged. It describes the event, not a second
option syntax: :attr:`Event.options` holds the very values ``interop run``'s options take, and
:func:`harness.options.selection` merges them with the options given beside it.

Everything that can be checked without a server is checked when the file loads, each problem
with its line, as a run would otherwise find it: catalogue products, their knobs and the
variant, the driver, categories, the profile, participants named twice, the target files (whose
own problems keep their own file:line).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import resources
from harness.profiles import ProfileError, load_profile
from harness.targets.spec import (
    CatalogueError,
    CatalogueFileError,
    TargetSpec,
    catalogues,
    missing_ca_file,
    read_target_file,
)
from harness.yaml_file import Lines, Problem, YamlFileError, line_of, load_file, schema, schema_problems

DOCS = "docs/interop-events.md#the-event-file"
# what a participant is: exactly one of these keys
_KINDS = ("target", "target_file", "external")
# the event's keys that are `interop run` option values as they stand: key -> option dest
_AS_OPTIONS = {
    "driver": "driver",
    "categories": "category",
    "scenarios": "scenario",
    "variant": "variant",
    "gate": "gate",
}


class EventError(CatalogueFileError):
    """Problems in an event file, each with its line, and in the files it names (target files,
    a vendor's catalogue entry, a profile), each with its own: a usage error."""

    def __init__(self, path: Path, problems: list[Problem], named: Iterable[YamlFileError] = ()) -> None:
        super().__init__(path, problems)
        self.named = list(named)

    def __str__(self) -> str:
        own = [super().__str__()] if self.problems else []
        return "\n".join([*own, *map(str, self.named)])


@dataclass(frozen=True)
class Event:
    name: str
    title: str
    # the event as `interop run` option values (option dest -> value, paths absolute): only the
    # options the file sets
    options: dict[str, Any]
    # its `external:` participants: the entry (valid as a target file) and the file its ca_file
    # is relative to (the event file), as harness.topology.Selection takes them
    inline_targets: list[tuple[dict[str, Any], Path]]
    file: Path  # the event file (absolute): `interop rerun` reads it again

    def record(self) -> dict[str, str]:
        """What results.json keeps of the event (``selection.event``)."""
        return {"name": self.name, "title": self.title, "file": str(self.file)}


def _event_schema() -> dict[str, Any]:
    """The event schema with the target-file schema it refers to (``external:``) embedded, so
    that an inline entry is checked by the very schema a target file is."""
    event = schema("event")
    return event | {"$defs": {**event.get("$defs", {}), "target-file": schema("target-file")}}


def _scenario_categories() -> list[str]:
    """The categories a scenario may have (its schema's)."""
    return list(schema("scenario")["properties"]["category"]["enum"])


def load_event(path: Path, catalogue_dirs: Iterable[Path] = ()) -> Event:
    """An event file, read as every YAML file is (safe, bounded), valid under its schema and
    checked against the catalogue (the shipped one, ``catalogue_dirs`` and the event's own
    ``catalogues:``); otherwise :class:`EventError` with every problem."""
    data, lines = load_file(path, "an event needs event and participants", EventError)
    problems = schema_problems(data, lines, _event_schema(), DOCS)
    if problems:
        raise EventError(path, problems)
    return _EventCheck(path, data, lines, catalogue_dirs).event()


class _EventCheck:
    """The checks of a schema-valid event file that need the catalogue and the files it names."""

    def __init__(
        self, path: Path, data: dict[str, Any], lines: Lines, catalogue_dirs: Iterable[Path]
    ) -> None:
        self.path = path
        self.folder = path.parent
        self.data = data
        self.lines = lines
        self.problems: list[Problem] = []
        self.named: list[YamlFileError] = []
        self.driver = str(data.get("driver", "local"))
        self.own_catalogues = [(self.folder / d).resolve() for d in data.get("catalogues", [])]
        for i, folder in enumerate(self.own_catalogues):
            if not folder.is_dir():
                self._add(("catalogues", i), f"catalogues: {folder} is not a folder (relative to this file)")
        self.products = self._products([*(d.resolve() for d in catalogue_dirs), *self.own_catalogues])

    def _add(self, at: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(line_of(self.lines, at), message))

    def _products(self, folders: list[Path]) -> dict[str, TargetSpec] | None:
        """The catalogue with ``folders`` (each once), or None when it cannot load (its problems
        are recorded)."""
        try:
            return catalogues(resources.CATALOGUE, [d for d in dict.fromkeys(folders) if d.is_dir()])
        except CatalogueFileError as exc:  # a vendor's entry with problems of its own
            self.named.append(exc)
        except CatalogueError as exc:  # a product in two folders
            self._add(("catalogues",), str(exc))
        return None

    def event(self) -> Event:
        options: dict[str, Any] = {}
        targets, knobs, target_files, inline = self._participants()
        if targets:
            options["targets"] = ",".join(targets)
        if knobs:
            options["knob"] = knobs
        if target_files:
            options["target_file"] = target_files
        if self.own_catalogues:
            options["catalogue"] = self.own_catalogues
        options |= {dest: self.data[key] for key, dest in _AS_OPTIONS.items() if key in self.data}
        self._categories()
        if "profile" in self.data:
            options["profile"] = self._profile(self.data["profile"])
        if self.problems or self.named:
            raise EventError(self.path, self.problems, self.named)
        name = self.data["event"]
        return Event(name, self.data.get("title", name), options, inline, self.path.resolve())

    def _participants(
        self,
    ) -> tuple[list[str], list[str], list[Path], list[tuple[dict[str, Any], Path]]]:
        """Catalogue targets, their knobs as ``--knob`` values, target files, inline entries."""
        targets: list[str] = []
        knobs: list[str] = []
        target_files: list[Path] = []
        inline: list[tuple[dict[str, Any], Path]] = []
        first: dict[str, int] = {}  # participant name -> line
        for i, participant in enumerate(self.data["participants"]):
            at = ("participants", i)
            kinds = [kind for kind in _KINDS if kind in participant]
            if len(kinds) != 1:
                has = f"this one has {' and '.join(kinds)}" if kinds else "this one has none"
                self._add(at, f"a participant is one of target:, target_file: or external:; {has}")
                continue
            if "knobs" in participant and kinds != ["target"]:
                self._add(
                    (*at, "knobs"),
                    "knobs: only a target the harness runs has knobs; an external server is "
                    "configured by its vendor (remove them)",
                )
            if kinds == ["target"]:
                name = participant["target"]
                self._target((*at, "target"), name, participant.get("knobs") or {})
                targets.append(name)
                knobs += [f"{name}:{k}={v}" for k, v in (participant.get("knobs") or {}).items()]
            elif kinds == ["target_file"]:
                name, path = self._target_file((*at, "target_file"), participant["target_file"])
                target_files.append(path)
            else:
                name = self._external((*at, "external"), participant["external"])
                inline.append((participant["external"], self.path))
            line = line_of(self.lines, at)
            if name is not None and first.setdefault(name, line) != line:
                self._add(
                    at,
                    f"participant {name!r} is named twice (first on line {first[name]}); name each once",
                )
        return targets, knobs, target_files, inline

    def _target(self, at: tuple[Any, ...], product: str, knobs: dict[str, str]) -> None:
        """A catalogue product that runs with the event's driver, with its knobs and the variant."""
        if self.products is None:
            return
        spec = self.products.get(product)
        if spec is None:
            self._add(
                at, f"target: no catalogue product {product!r}; the catalogue has {', '.join(self.products)}"
            )
            return
        if not spec.runs_with(self.driver):
            how = "no distribution package" if self.driver == "local" else "no docker: section"
            self._add(at, f"target: {product} cannot run with driver {self.driver} ({how})")
        for name, value in knobs.items():
            try:
                spec.knob_values({name: value})
            except CatalogueError as exc:
                self._add((*at[:-1], "knobs", name), f"knobs: {exc}")
        if "variant" in self.data:
            try:
                spec.variant_knobs(self.data["variant"])
            except CatalogueError as exc:
                self._add(("variant",), f"variant: {exc}")

    def _target_file(self, at: tuple[Any, ...], relative: str) -> tuple[str | None, Path]:
        """The target file's name and absolute path (no name when it has problems)."""
        path = (self.folder / relative).resolve()
        if not path.is_file():
            self._add(at, f"target_file: {relative} is not a file (relative to this event file)")
            return None, path
        try:
            return str(read_target_file(path)["name"]), path
        except CatalogueFileError as exc:
            self.named.append(exc)
            return None, path

    def _external(self, at: tuple[Any, ...], entry: dict[str, Any]) -> str:
        """An inline target file: its ca_file, relative to the event file, must be there."""
        missing = missing_ca_file(entry, self.folder)
        if missing:
            self._add((*at, "ca_file"), f"{missing} (relative to this event file)")
        return str(entry["name"])

    def _categories(self) -> None:
        known = _scenario_categories()
        for i, category in enumerate(self.data.get("categories", [])):
            if category not in known:
                self._add(
                    ("categories", i),
                    f"categories: no category {category!r}; the scenarios' categories: {', '.join(known)}",
                )

    def _profile(self, profile: str) -> str:
        """A shipped profile's name, or a profile file's absolute path (relative to the event)."""
        value = str((self.folder / profile).resolve()) if Path(profile).suffix else profile
        try:
            load_profile(value)
        except ProfileError as exc:
            if exc.path.is_file():  # the profile's own problems, at its own lines
                self.named.append(exc)
            else:
                self.problems += [
                    Problem(line_of(self.lines, ("profile",)), f"profile: {p.message}") for p in exc.problems
                ]
        return value
