"""The targets of one run: which are selected, their names and domains, starting them on demand.

A topology is what ``interop targets up`` would show a person: every target's name, domain,
address and how it runs. Targets start the first time an item needs them and stay up until the
run ends; a target that failed to start fails every item that needs it with the same reason.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.actors import Account
from harness.environment.run_env import RunEnvironment, create_environment
from harness.protocols import srv_records
from harness.targets.external import ExternalTarget, load_target_file
from harness.targets.local import LocalTarget, is_installed
from harness.targets.running import LogCursor, RunningTarget
from harness.targets.spec import CatalogueError, TargetSpec, catalogue
from harness.verdict import TargetError

DRIVERS = ("local", "docker")


@dataclass
class Selection:
    """What the user asked for (command-line options), before anything is started."""

    targets: list[str] = field(default_factory=list)  # product names; empty: every installed one
    driver: str = "local"
    knobs: list[str] = field(default_factory=list)  # "name=value" or "target:name=value"
    variant: str | None = None  # a named bundle of knobs every selected target defines
    target_files: list[Path] = field(default_factory=list)


def parse_knobs(
    items: list[str], specs: dict[str, TargetSpec], variant: str | None = None
) -> dict[str, dict[str, str]]:
    """``[target:]name=value`` options -> per target {knob: value}, on top of the variant's
    knobs; unknown knobs and variants are usage errors."""
    chosen: dict[str, dict[str, str]] = {name: spec.variant_knobs(variant) for name, spec in specs.items()}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CatalogueError(f"--knob {item!r}: write NAME=VALUE or TARGET:NAME=VALUE")
        target, _, name = key.rpartition(":")
        names = [target] if target else [t for t, s in specs.items() if name in s.knobs]
        if target and target not in specs:
            raise CatalogueError(f"--knob {item!r}: no selected target {target!r}")
        if not names:
            raise CatalogueError(f"--knob {item!r}: no selected target has a knob {name!r}")
        for t in names:
            if name not in specs[t].knobs:
                raise CatalogueError(
                    f"--knob {item!r}: {t} has no knob {name!r}; its knobs: "
                    f"{', '.join(sorted(specs[t].knobs))}"
                )
            chosen[t][name] = value
    return chosen


class Topology:
    def __init__(self, selection: Selection, catalogue_dir: Path, run_dir: Path) -> None:
        if selection.driver not in DRIVERS:
            raise CatalogueError(f"--driver {selection.driver!r}: choose one of {', '.join(DRIVERS)}")
        if selection.driver == "docker":
            raise CatalogueError("--driver docker is not available yet; use --driver local")
        self.run_dir = run_dir
        products = catalogue(catalogue_dir)
        names = selection.targets or (
            [] if selection.target_files else [p for p, s in products.items() if is_installed(s)]
        )
        unknown = [n for n in names if n not in products]
        if unknown:
            raise CatalogueError(
                f"--targets: unknown target {', '.join(unknown)}; the catalogue has {', '.join(products)}"
            )
        self.specs = {name: products[name] for name in names}
        self.knobs = parse_knobs(selection.knobs, self.specs, selection.variant)
        self.external: dict[str, ExternalTarget] = {}
        for path in selection.target_files:
            target = load_target_file(path)
            self.external[target.name] = target
        if not self.specs and not self.external:
            raise CatalogueError(
                "no target selected and none of the catalogue's products is installed "
                "(run ci/setup.sh, or give --targets / --target-file)"
            )
        self._env: RunEnvironment | None = None
        self._addresses: dict[str, str] = {}
        self._running: dict[str, RunningTarget] = dict(self.external)
        self._failed: dict[str, str] = {}
        self._closed = False

    @property
    def names(self) -> list[str]:
        return [*self.specs, *self.external]

    def product(self, name: str) -> str:
        return self.specs[name].product if name in self.specs else self.external[name].product

    def features(self, name: str) -> frozenset[str]:
        return self.specs[name].features if name in self.specs else self.external[name].features

    def describe(self, name: str) -> dict[str, Any]:
        """What is known of a target before (or without) it running: for records of failed starts."""
        if name in self._running:
            t = self._running[name]
            return {
                "name": t.name,
                "product": t.product,
                "driver": t.driver,
                "domain": t.domain,
                "address": t.address,
                "knobs": dict(t.knobs),
            }
        spec = self.specs[name]
        return {
            "name": name,
            "product": spec.product,
            "driver": "local",
            "domain": f"{name}.test",
            "address": self._addresses.get(name, "unassigned"),
            "knobs": spec.knob_values(self.knobs[name]),
        }

    def _environment(self) -> RunEnvironment:
        if self._env is None:
            self._env = create_environment(self.run_dir)
            for name, spec in self.specs.items():
                self._addresses[name] = self._env.target_address()
                self._env.add_name(
                    f"{name}.test", self._addresses[name], srv_records(spec.protocol, spec.ports)
                )
            atexit.register(self.close)
            interrupts.install()
        return self._env

    def get(self, name: str) -> RunningTarget:
        """The running target ``name``, started now if this is its first use."""
        if name in self._failed:
            raise TargetError(self._failed[name])
        if name not in self._running:
            env = self._environment()
            target = LocalTarget(
                self.specs[name], name, f"{name}.test", self._addresses[name], self.knobs[name], env
            )
            self._running[name] = target
            try:
                target.start()
            except Exception as exc:
                target.stop()
                failed_logs = self.run_dir / "targets" / name
                failed_logs.mkdir(parents=True, exist_ok=True)
                target.copy_log_slice(LogCursor(), failed_logs)
                self._failed[name] = f"target {name} could not start: {exc}"
                raise TargetError(self._failed[name]) from exc
        return self._running[name]

    def client_certificate(self, account: Account, directory: Path) -> tuple[Path, Path]:
        issued = self._environment().ca.issue_client(account.jid, directory)
        return issued.cert_path, issued.key_path

    def source_address(self, target: RunningTarget) -> str | None:
        """A fresh loopback source address for a connection to a target this run started."""
        return self._environment().source_address() if target.driver == "local" else None

    def running(self) -> list[RunningTarget]:
        return list(self._running.values())

    def close(self) -> None:
        """Stop every target this run started and the run's DNS responder; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for target in self._running.values():
            target.stop()
        if self._env is not None:
            self._env.close()
