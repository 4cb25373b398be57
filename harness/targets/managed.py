"""A target the harness runs itself from its catalogue folder, whatever runs its processes.

The catalogue entry says what to do (render files, run setup commands, start processes, wait
until ready, create accounts, admin operations, reset, version); a driver says where it happens:
:class:`~harness.targets.local.LocalTarget` as processes on this machine,
:class:`~harness.targets.docker.DockerTarget` as containers. Both give the server the same
rendered files at the same paths, so a product behaves the same under either.
"""

from __future__ import annotations

import abc
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import jinja2

from harness.actors import Account
from harness.environment.pki import IssuedCertificate
from harness.environment.run_env import RunEnvironment
from harness.targets.config_changes import ADDS_KEY, ConfigChanges, without_adds
from harness.targets.config_edit import apply_edits, file_format, normalized
from harness.targets.running import RunningTarget
from harness.targets.spec import CatalogueError, TargetSpec, value_list
from harness.trace import keylog_shim
from harness.trace.health import LogHealth
from harness.verdict import HarnessError, TargetError, Unsupported

STOP_GRACE_S = 10.0
# Every server process and one-off command runs with a UTF-8 locale, whatever the harness's own or
# the image's: a test password with non-ASCII characters must reach the product's tool intact.
SERVER_ENV = {"LANG": "C.UTF-8"}


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


class ManagedTarget(RunningTarget):
    """The catalogue entry's life cycle; subclasses run its commands and processes."""

    in_run_block = True  # listens on the run's own loopback address

    def __init__(
        self,
        spec: TargetSpec,
        name: str,
        domain: str,
        address: str,
        knobs: dict[str, str],
        env: RunEnvironment,
        *,
        as_installed: bool = False,
    ) -> None:
        super().__init__()
        self.as_installed = as_installed  # leave out the edits that add what the package lacks
        self.spec = spec
        self.name = name
        self.product = spec.product
        self.domain = domain
        self.address = address
        self.ports = dict(spec.ports)
        self.knobs = spec.knob_values(knobs)
        self.features = spec.features
        self.env = env
        self.ca_file = env.ca.cert_path
        self.run_dir = env.work_dir / "targets" / name
        self.version = "unknown"
        self._procs: list[tuple[str, Any]] = []  # (process name, driver's handle), in start order
        # After stop() nothing new starts; the lock makes "check, start, record" one step
        # against a stop() in another thread (an interrupted run).
        self._stopped = False
        self._lock = threading.Lock()
        self._jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self._context: dict[str, Any] = {}
        self.config_changes = ConfigChanges()  # the run's edits, once the files are rendered
        # the TLS key log the server processes write through the key-log shim (None: no shim)
        self.key_log: Path | None = None

    def log_health(self) -> LogHealth | None:
        return self.spec.health

    # -- what a driver provides ----------------------------------------------------------------

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Make sure the product can run here (installed package, image), before anything else."""

    @abc.abstractmethod
    def _packaged_text(self, path: str) -> str:
        """The text of a file the product's package installed (``source:``/``copy:``)."""

    @abc.abstractmethod
    def _install_files(self) -> None:
        """Give the rendered run directory to the product's user where its processes see it."""

    @abc.abstractmethod
    def _run_command(self, argv: list[str], what: str, timeout: float = 60) -> str:
        """Run a one-off command as the product's user; its output, or TargetError."""

    @abc.abstractmethod
    def _launch(self, proc: dict[str, Any], argv: list[str], env: dict[str, str]) -> Any:
        """Start one of ``processes:``; returns the driver's handle of it."""

    @abc.abstractmethod
    def _exit_code(self, handle: Any) -> int | None:
        """None while the process runs, else its exit code."""

    @abc.abstractmethod
    def _end(self, handle: Any, grace: float) -> None:
        """End one process: a grace period after SIGTERM, then SIGKILL."""

    @abc.abstractmethod
    def _output_tail(self, name: str) -> str:
        """The last lines the process ``name`` printed (for a start that failed)."""

    @abc.abstractmethod
    def _installed_version(self) -> str | None:
        """The package's version, when the product's own version command says nothing."""

    def _listen_address(self) -> str:
        """The address the server's listeners bind (``{{ address }}`` in its files)."""
        return self.address

    def _shim_loads(self) -> bool:
        """Whether the key-log shim, built on this machine, can be loaded where the processes run."""
        return True

    # -- rendering ---------------------------------------------------------------------------

    def _render(self, template: Any, **extra: Any) -> Any:
        """Render every string inside ``template`` (str, list or dict) as a Jinja2 template."""
        if isinstance(template, str):
            return self._jinja.from_string(template).render(**self._context, **extra)
        if isinstance(template, list):
            return [self._render(v, **extra) for v in template]
        if isinstance(template, dict):
            return {k: self._render(v, **extra) for k, v in template.items()}
        return template

    def _knob_edits(self, dest: str) -> list[dict[str, Any]]:
        """The knobs' edits of one file, rendered with each knob's ``value``/``value_list``; an
        edit with ``for_each: value_list`` is made once per item (``item``, ``index``)."""
        edits = []
        for name, value in sorted(self.knobs.items()):
            items = value_list(value)
            for edit in self.spec.knobs[name].edits_for(value):
                if edit.get("file") != dest:
                    continue
                plain = {k: v for k, v in edit.items() if k not in ("file", "for_each")}
                if "for_each" not in edit:
                    edits.append(self._render(plain, value=value, value_list=items))
                    continue
                edits += [
                    self._render(plain, value=value, value_list=items, item=item, index=index)
                    for index, item in enumerate(items)
                ]
        return edits

    def _render_files(self) -> None:
        """Write the run's files: packaged file, the run's edits, then the knobs' edits (the
        run's edits alone are recorded in :attr:`config_changes` for the reports)."""
        changes = ConfigChanges()  # (the catalogue checked at load that knob edits name these files)
        for entry in self.spec.files:
            dest = self.run_dir / entry["dest"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            where = f"{self.spec.folder.name}/{entry['dest']}"
            if "template" in entry:
                text = self._render((self.spec.folder / entry["template"]).read_text())
            elif "source" in entry or "copy" in entry:
                src = str(entry.get("source") or entry["copy"])
                try:
                    text = self._packaged_text(src)
                except OSError as exc:
                    raise TargetError(f"{where}: cannot read packaged file {src}: {exc}") from exc
            else:
                raise CatalogueError(f"{where}: a files entry needs source, copy or template")
            fmt = file_format(entry["dest"])
            run_edits = self._render(list(entry.get("edits") or []))
            if self.as_installed:
                changes.left_out += [f"{entry['dest']}: {e[ADDS_KEY]}" for e in run_edits if e.get(ADDS_KEY)]
                run_edits = [edit for edit in run_edits if not edit.get(ADDS_KEY)]
            edited = apply_edits(text, fmt, without_adds(run_edits), where)
            if "source" in entry and run_edits:
                packaged = normalized(text, fmt)
                changes.record(entry["dest"], str(entry["source"]), packaged, edited, run_edits)
            dest.write_text(apply_edits(edited, fmt, self._knob_edits(entry["dest"]), where))
        self.config_changes = changes

    def config_diff(self) -> tuple[str, dict[str, Any]]:
        changes = self.config_changes
        text = changes.diff_text(
            {
                str(self._context.get("ca_file")): "<the CA certificates the run's servers trust>",
                str(self.ca_file): "<the run's CA certificate>",
                str(self.env.work_dir): "<work folder>",
                self.address: "<address>",
            }
        )
        summary = {"files": changes.changed_lines(), "adds": list(changes.adds)}
        return text, summary | ({"left_out": list(changes.left_out)} if changes.left_out else {})

    # -- processes ----------------------------------------------------------------------------

    def _refuse_if_stopped(self, what: str) -> None:
        if self._stopped:
            raise TargetError(f"{self.name}: stopped before {what} could start")

    def _start_process(self, proc: dict[str, Any], deadline: float, slot: int | None = None) -> None:
        """Start one of the target's processes and record it (appended, or in place of the one in
        ``slot``) before waiting, with ``wait_tcp``, until its port accepts: a process that dies
        meanwhile is noticed at once."""
        argv = [str(a) for a in self._render(proc["argv"])]
        env = {str(k): str(v) for k, v in self._render(proc.get("env") or {}).items()}
        if self.key_log is not None and proc.get("keylog", True):
            shim = self.key_log.with_name(keylog_shim.BUILT_SHIM.name)
            env = keylog_shim.environment(shim, self.key_log) | env
        entry = (str(proc["name"]), self._launch(proc, argv, env))
        if slot is None:
            self._procs.append(entry)
        else:
            self._procs[slot] = entry
        if "wait_tcp" in proc:
            port = self.ports[proc["wait_tcp"]]
            self._wait(f"port {port} of {proc['name']}", lambda: port_open(self.address, port), deadline)

    def _check_alive(self, what: str) -> None:
        for name, handle in self._procs:
            code = self._exit_code(handle)
            if code is not None:
                raise TargetError(
                    f"{self.name}: process {name} exited with {code} while waiting for "
                    f"{what}; last output: {self._output_tail(name)}"
                )

    def _wait(self, what: str, ready: Any, deadline: float) -> None:
        """Poll ``ready()`` until it holds; fail at once if one of our processes died."""
        while not ready():
            self._check_alive(what)
            if time.monotonic() > deadline:
                raise TargetError(f"{self.name}: {what} not reached within the start deadline")
            time.sleep(0.1)  # polling interval of a readiness probe, not a verdict

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._prepare()
        busy = [p for p in self.ports.values() if port_open(self.address, p)]
        if busy:
            raise TargetError(f"{self.name}: {self.address} port {busy[0]} is already in use")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True)
        cert = self.env.ca.issue_server(self.domain, self.run_dir / "tls", extra_names=self.service_domains)
        self._context = {
            "run_dir": str(self.run_dir),
            "name": self.name,
            "domain": self.domain,
            "address": self._listen_address(),
            "ports": self.ports,
            "cert": cert,
            "ca_file": str(self._ca_file_for_server(cert)),
            "dns_address": self.env.dns_address,
            "knobs": self.knobs,
        }
        self._render_files()
        self.key_log = self._place_keylog_shim()
        self._install_files()
        for argv in self._render(self.spec.setup):
            self._run_command(argv, f"setup command {argv[0]}")
        deadline = time.monotonic() + float(self.spec.ready.get("timeout", 60))
        for proc in self.spec.processes:
            self._start_process(proc, deadline)
        for port_name in self.spec.ready.get("tcp", []):
            port = self.ports[port_name]
            self._wait(f"port {port_name} ({port})", lambda p=port: port_open(self.address, p), deadline)
        if "command" in self.spec.ready:
            argv = self._render(self.spec.ready["command"])
            self._run_command(argv, "readiness command", timeout=max(1.0, deadline - time.monotonic()))
        # A process that could not bind its port may exit while a foreign listener answers the probe.
        self._check_alive("the end of the start")
        self.version = self._read_version()

    def _place_keylog_shim(self) -> Path | None:
        """Copy the key-log shim into the run directory, so the processes load it from the same
        path under every driver; returns the key log they will write (None: no shim here)."""
        shim = keylog_shim.built_shim()
        if shim is None or not self._shim_loads():
            return None
        folder = self.run_dir / keylog_shim.RUN_DIR_FOLDER
        folder.mkdir()
        shutil.copy(shim, folder / shim.name)
        return folder / keylog_shim.KEY_LOG_NAME

    def _ca_file_for_server(self, cert: IssuedCertificate) -> Path:
        """Where the server finds the CA certificates it trusts for its peers: the run's CA, in a
        bundle with the CAs of external targets it may federate with when there are any."""
        return self.env.trusted_cas or self.env.ca.cert_path

    @property
    def verified_here(self) -> bool:  # type: ignore[override]
        return self.driver in self.spec.verified

    @property
    def service_domains(self) -> list[str]:
        return [f"{sub}.{self.domain}" for sub in self.spec.subdomains]

    def reset_peer_state(self) -> None:
        """Drop every server-to-server connection and remembered failure (``reset:``)."""
        reset = self.spec.reset
        if "command" in reset:
            self._run_command(self._render(reset["command"]), "reset command")
        restart = set(reset.get("restart", []))
        if not restart:
            return
        deadline = time.monotonic() + float(self.spec.ready.get("timeout", 60))
        for index, (name, handle) in enumerate(self._procs):
            if name not in restart:
                continue
            self._end(handle, float(reset.get("grace", STOP_GRACE_S)))
            proc = next(p for p in self.spec.processes if p["name"] == name)
            self._start_process(proc, deadline, slot=index)

    def reconfigure(self, knobs: dict[str, str]) -> None:
        """Restart with other knob values; the accounts made so far exist again, same passwords."""
        self.stop()
        with self._lock:
            self._stopped = False
        self.knobs = self.spec.knob_values(knobs)
        self.start()
        for account in self._accounts.values():
            self._create_account(account)

    def admin(self, op: str, params: dict[str, str]) -> None:
        """Run the command of ``admin: OP`` in target.yaml, rendered with the step's parameters."""
        entry = self.spec.admin.get(op)
        if entry is None:
            known = ", ".join(sorted(self.spec.admin)) or "none"
            raise Unsupported(f"{self.name} has no admin operation {op} (its operations: {known})")
        try:
            argv = self._render(entry["command"], **params)
        except jinja2.UndefinedError as exc:
            raise HarnessError(
                f"admin {op} on {self.name}: {exc.message} (given: {', '.join(params)})"
            ) from None
        self._run_command(argv, f"admin operation {op}")

    def _read_version(self) -> str:
        version = self.spec.version
        if version:
            out = self._run_command(self._render(version["command"]), "version command")
            match = re.search(version["pattern"], out)
            if match:
                return match.group(1)
        return self._installed_version() or "unknown"

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        account = Account(user=name, domain=self.domain, password=self.new_password(password_part))
        self._create_account(account)
        return account

    def _create_account(self, account: Account) -> None:
        argv = self._render(self.spec.accounts["create"], user=account.user, password=account.password)
        self._run_command(argv, f"creating account {account.user}")
        with (self.run_dir / "accounts.txt").open("a") as record:  # work dir only, never in reports
            record.write(f"{account.jid} {account.password}\n")
