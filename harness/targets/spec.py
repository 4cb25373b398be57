"""A target product as described by its catalogue folder (``fixtures/targets/<product>/``).

The spec is data only; nothing here knows a product by name. ``docs/targets.md`` documents
the file format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.trace.health import LogHealth
from harness.verdict import HarnessError

# The built-in variant every entry has: the default one without the run's edits that add what the
# package does not configure at all (``adds:``), to show what the product does as installed.
AS_INSTALLED = "as-installed"


class CatalogueError(HarnessError):
    """A target folder or a knob selection is wrong (a usage error, exit code 2)."""


ANY_VALUE = "*"  # the key of a knob's edits for any value it does not list (e.g. a domain list)


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


def value_list(value: str) -> list[str]:
    """A list-valued knob's items: comma-separated, blanks dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


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
        return values


_REQUIRED = ("product", "protocol", "user", "ports", "processes")


def load_spec(folder: Path) -> TargetSpec:
    path = folder / "target.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read target description: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: expected a mapping at the top level")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise CatalogueError(f"{path}: missing {', '.join(missing)} (see docs/targets.md)")
    knobs = {
        name: Knob(
            name=name,
            description=str(k.get("description", "")),
            default=str(k["default"]),
            values={str(v): list(edits or []) for v, edits in (k.get("values") or {}).items()},
        )
        for name, k in (data.get("knobs") or {}).items()
    }
    return TargetSpec(
        product=str(data["product"]),
        title=str(data.get("title", data["product"])),
        protocol=str(data["protocol"]),
        folder=folder,
        package=data.get("package"),
        user=str(data["user"]),
        ports={str(k): int(v) for k, v in data["ports"].items()},
        features=frozenset(data.get("features") or ()),
        files=list(data.get("files") or []),
        setup=[list(map(str, cmd)) for cmd in data.get("setup") or []],
        processes=list(data["processes"]),
        ready=dict(data.get("ready") or {}),
        accounts=dict(data.get("accounts") or {}),
        version=data.get("version"),
        logs=[str(p) for p in data.get("logs") or []],
        knobs=knobs,
        health=_health(path, data.get("health")),
        subdomains=[str(sub) for sub in data.get("subdomains") or []],
        reset=dict(data.get("reset") or {}),
        admin={str(op): dict(entry) for op, entry in (data.get("admin") or {}).items()},
        variants={
            name: (str(v.get("description", "")), {str(k): str(x) for k, x in (v.get("knobs") or {}).items()})
            for name, v in (data.get("variants") or {}).items()
        },
        docker=_docker_section(path, data.get("docker")),
        verified=frozenset(str(d) for d in data.get("verified") or ()),
    )


def _health(path: Path, section: Any) -> LogHealth | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise CatalogueError(f"{path}: health: a mapping with error, crash (regular expressions) and logs")
    try:
        return LogHealth.parse(section, str(path))
    except ValueError as exc:
        raise CatalogueError(str(exc)) from None


def _docker_section(path: Path, section: Any) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict) or not isinstance(section.get("image"), str):
        raise CatalogueError(f'{path}: docker: needs image: NAME:TAG (see docs/targets.md, "Docker")')
    if "build" in section and section.get("pull"):
        raise CatalogueError(
            f"{path}: docker: give build: DOCKERFILE (built here) or pull: true (from a registry), not both"
        )
    if "build" in section and not (path.parent / str(section["build"])).is_file():
        raise CatalogueError(f"{path}: docker: build: {section['build']} is not a file in {path.parent}")
    return dict(section)


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
