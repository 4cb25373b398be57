"""The driver interface: a target as a run sees it once it is up.

Drivers (``local``, ``external``, later ``docker``) differ in how a server comes to exist; the
rest of the harness only uses :class:`RunningTarget`.
"""

from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.actors import Account, TargetView
from harness.trace.health import LogHealth
from harness.trace.keylog_shim import complete_lines
from harness.verdict import TargetError, Unsupported


@dataclass
class LogCursor:
    """How long each server log was when an item started (log name -> bytes), so that its slice
    can be cut afterwards."""

    offsets: dict[str, int] = field(default_factory=dict)


class RunningTarget(abc.ABC):
    driver: str
    # its test accounts belong to someone else (a vendor's server): no TLS key log of their
    # sessions is written unless the run asks (--keylog), so no artifact can reveal their secrets
    foreign_accounts = False
    in_run_block = False  # listens on the run's own loopback addresses (actors use its source addresses)
    verified_here: bool | None = None  # see TargetRecord.verified_here
    name: str
    product: str
    domain: str
    address: str
    ports: dict[str, int]
    ca_file: Path | None
    version: str
    knobs: dict[str, str]
    features: frozenset[str]

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {}

    def config_diff(self) -> tuple[str, dict[str, Any]]:
        """The run's edits of the packaged configuration: a diff that reads the same from every
        worker, and its summary for the target's record (("", {}): the harness did not render
        this target's files)."""
        return "", {}

    def view(self) -> TargetView:
        return TargetView(
            name=self.name,
            product=self.product,
            domain=self.domain,
            address=self.address,
            ports=dict(self.ports),
            ca_file=self.ca_file,
            features=self.features,
        )

    def account(self, name: str, password_part: str | None = None) -> Account:
        """The test account a scenario calls ``name``, created on first use.

        ``password_part`` is a scenario's declared password (e.g. non-ASCII for SASLprep); a
        random suffix keeps the password secret all the same.
        """
        if name not in self._accounts:
            self._accounts[name] = self._provide_account(name, password_part)
        return self._accounts[name]

    def accounts(self) -> list[Account]:
        """The accounts provided so far (their passwords are what redaction must hide)."""
        return list(self._accounts.values())

    def begin_item(self, account_names: list[str]) -> None:
        """An item that will use ``account_names`` (the scenario's names, in its order) begins. A
        target the harness runs keeps one account per name for the whole run, made on first
        use: nothing to do. Raises a StepOutcome when the item cannot have its accounts."""
        return None

    def end_item(self) -> None:
        """The item's actors are closed; never raises (a target that tidies up records failures)."""
        return None

    @staticmethod
    def new_password(part: str | None = None) -> str:
        suffix = secrets.token_urlsafe(12)
        return f"{part}-{suffix}" if part else suffix

    @abc.abstractmethod
    def _provide_account(self, name: str, password_part: str | None) -> Account:
        """Create (or look up) the account a scenario calls ``name``."""

    def log_files(self) -> list[Path]:
        """Server log files on this machine whose slices are evidence (none for an external target)."""
        return []

    def log_sizes(self) -> dict[str, int]:
        """Every server log there is now, by name (unique per target), and its length."""
        return {path.name: path.stat().st_size for path in self.log_files() if path.exists()}

    def read_log(self, name: str, start: int) -> bytes:
        """What the log ``name`` holds from byte ``start`` on."""
        path = next(p for p in self.log_files() if p.name == name)
        with path.open("rb") as src:
            src.seek(start)
            return src.read()

    def log_cursor(self) -> LogCursor:
        return LogCursor(self.log_sizes())

    def copy_log_slice(self, cursor: LogCursor, dest_dir: Path) -> list[Path]:
        """Copy what each log gained since ``cursor`` into ``dest_dir``; returns the files written."""
        written = []
        for name in self.log_sizes():
            dest = dest_dir / f"{self.name}.{name}"
            dest.write_bytes(self.read_log(name, cursor.offsets.get(name, 0)))
            written.append(dest)
        return written

    def log_health(self) -> LogHealth | None:
        """Which lines of its logs say the server went wrong (None: not known for this target)."""
        return None

    def key_log_size(self) -> int:
        """How long the servers' own TLS key log is now (0: the harness does not run the server,
        or runs it without the key-log shim)."""
        return 0

    def read_key_log(self, start: int) -> bytes:
        """What the servers' TLS key log holds from byte ``start`` on."""
        return b""

    def key_log_slice(self, size: int) -> bytes:
        """The whole lines the servers' TLS key log gained since it was ``size`` bytes long."""
        return complete_lines(self.read_key_log(max(0, size - 1)), mid_file=size > 0)

    def reset_peer_state(self) -> None:
        """Drop every connection with other servers and any remembered failure (back-off), so
        that an item over a pair of targets starts from no federation state. A target the
        harness does not run cannot be reset: nothing happens."""
        return None

    def reconfigure(self, knobs: dict[str, str]) -> None:
        """Run with other knob values from now on (a scenario needs them on its role)."""
        raise TargetError(f"{self.name} is not run by the harness: its knobs cannot be changed")

    def admin(self, op: str, params: dict[str, str]) -> None:
        """Carry out an admin operation (``docs/targets.md``, "Admin operations") with the
        product's own tool. A target the harness does not run offers none."""
        raise Unsupported(f"{self.name} is not run by the harness: no admin operation {op}")

    @abc.abstractmethod
    def stop(self) -> None:
        """End everything the driver started for this target; safe to call twice."""
