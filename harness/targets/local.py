"""The local driver: a server installed from the distribution's packages, run as its own processes.

Each target gets its own directory, address, certificate and a private view of name
resolution (a mount namespace with the run's hosts file and resolv.conf), and runs as the
package's service user. Every process is started in its own session so that teardown can end
the whole process group; the mount namespace disappears with its last process.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import jinja2

from harness import interrupts
from harness.actors import Account
from harness.environment.run_env import RunEnvironment
from harness.targets.config_edit import apply_edits, file_format
from harness.targets.running import RunningTarget
from harness.targets.spec import CatalogueError, TargetSpec, value_list
from harness.verdict import HarnessError, TargetError, Unsupported

# Runs ARGV as USER with the run's hosts file and resolv.conf bind-mounted over the machine's,
# visible to this process tree only. Paths are passed as arguments, never spliced into the script.
_NAMESPACE_SCRIPT = (
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && '
    'user="$3" && shift 3 && exec runuser -u "$user" -- "$@"'
)

STOP_GRACE_S = 10.0


def package_version(package: str) -> str | None:
    """The installed version of a distribution package, or None when it is not installed."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", package],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError:
        return None
    status, _, version = out.stdout.partition(" ")
    return version if out.returncode == 0 and status == "installed" else None


def is_installed(spec: TargetSpec) -> bool:
    return spec.package is not None and package_version(spec.package) is not None


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


class LocalTarget(RunningTarget):
    driver = "local"

    def __init__(
        self,
        spec: TargetSpec,
        name: str,
        domain: str,
        address: str,
        knobs: dict[str, str],
        env: RunEnvironment,
    ) -> None:
        super().__init__()
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
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        # every process group started and not yet ended (servers and one-off commands), recorded
        # when it starts: a start under way in another thread when the run is interrupted must
        # leave nothing behind. After stop() nothing new starts; the lock makes "check, start,
        # record" one step against stop().
        self._children: list[subprocess.Popen[Any]] = []
        self._stopped = False
        self._lock = threading.Lock()
        self._jinja = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
        self._context: dict[str, Any] = {}

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
                if edit["for_each"] != "value_list":
                    raise CatalogueError(
                        f"{self.spec.folder}/target.yaml: knob {name}: for_each must be value_list"
                    )
                edits += [
                    self._render(plain, value=value, value_list=items, item=item, index=index)
                    for index, item in enumerate(items)
                ]
        return edits

    def _render_files(self) -> None:
        known = {str(f.get("dest")) for f in self.spec.files}
        for name, value in self.knobs.items():
            for edit in self.spec.knobs[name].edits_for(value):
                if edit.get("file") not in known:
                    raise CatalogueError(
                        f"{self.spec.folder}/target.yaml: knob {name}={value} edits file "
                        f"{edit.get('file')!r}, which is not in files:"
                    )
        for entry in self.spec.files:
            dest = self.run_dir / entry["dest"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            where = f"{self.spec.folder.name}/{entry['dest']}"
            if "template" in entry:
                text = self._render((self.spec.folder / entry["template"]).read_text())
            elif "source" in entry or "copy" in entry:
                src = Path(entry.get("source") or entry["copy"])
                try:
                    text = src.read_text()
                except OSError as exc:
                    raise TargetError(f"{where}: cannot read packaged file {src}: {exc}") from exc
            else:
                raise CatalogueError(f"{where}: a files entry needs source, copy or template")
            edits = self._render(list(entry.get("edits") or [])) + self._knob_edits(entry["dest"])
            dest.write_text(apply_edits(text, file_format(entry["dest"]), edits, where))

    # -- processes ----------------------------------------------------------------------------

    def _wrap(self, argv: list[str]) -> list[str]:
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _NAMESPACE_SCRIPT,
            "sh",
            str(self.env.hosts_file),
            str(self.env.resolv_file),
            self.spec.user,
            *argv,
        ]

    def _run_command(self, argv: list[str], what: str, timeout: float = 60) -> str:
        """Run a one-off command (setup, readiness, accounts) in its own process group."""
        popen: subprocess.Popen[str] | None = None
        try:
            with interrupts.shielded(), self._lock:
                self._refuse_if_stopped(what)
                popen = subprocess.Popen(
                    self._wrap(argv),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=self.run_dir,
                    start_new_session=True,
                )
                self._children.append(popen)
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _end_group(popen, grace=0)
            raise TargetError(f"{self.name}: {what} did not finish within {timeout:.0f} s") from exc
        except BaseException:  # interrupted: the command must not outlive the run
            if popen is not None:
                _end_group(popen, grace=0)
            raise
        finally:
            self._forget(popen)
        if popen.returncode != 0:
            tail = (stderr or stdout).strip().splitlines()[-3:]
            raise TargetError(f"{self.name}: {what} exited {popen.returncode}: {' | '.join(tail)}")
        return stdout

    def _refuse_if_stopped(self, what: str) -> None:
        if self._stopped:
            raise TargetError(f"{self.name}: stopped before {what} could start")

    def _popen(self, proc: dict[str, Any]) -> subprocess.Popen[bytes]:
        argv = [str(a) for a in self._render(proc["argv"])]
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in self._render(proc.get("env") or {}).items()})
        log = self.run_dir / "logs" / f"{proc['name']}.out"
        with log.open("ab") as out, interrupts.shielded(), self._lock:
            self._refuse_if_stopped(f"process {proc['name']}")
            popen = subprocess.Popen(
                self._wrap(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                env=env,
                start_new_session=True,
            )
            self._children.append(popen)
            return popen

    def _start_process(self, proc: dict[str, Any], deadline: float, slot: int | None = None) -> None:
        """Start one of the target's processes and record it (appended, or in place of the one in
        ``slot``) before waiting, with ``wait_tcp``, until its port accepts: a process that dies
        meanwhile is noticed at once."""
        entry = (str(proc["name"]), self._popen(proc))
        if slot is None:
            self._procs.append(entry)
        else:
            self._procs[slot] = entry
        if "wait_tcp" in proc:
            port = self.ports[proc["wait_tcp"]]
            self._wait(f"port {port} of {proc['name']}", lambda: port_open(self.address, port), deadline)

    def _forget(self, popen: subprocess.Popen[Any] | None) -> None:
        """``popen``'s group has ended: stop() need not end it."""
        with self._lock:
            if popen in self._children:
                self._children.remove(popen)

    def _check_alive(self, what: str) -> None:
        for name, popen in self._procs:
            if popen.poll() is not None:
                raise TargetError(
                    f"{self.name}: process {name} exited with {popen.returncode} while waiting for "
                    f"{what}; last output: {self._tail(name)}"
                )

    def _wait(self, what: str, ready: Any, deadline: float) -> None:
        """Poll ``ready()`` until it holds; fail at once if one of our processes died."""
        while not ready():
            self._check_alive(what)
            if time.monotonic() > deadline:
                raise TargetError(f"{self.name}: {what} not reached within the start deadline")
            time.sleep(0.1)  # polling interval of a readiness probe, not a verdict

    def _tail(self, name: str) -> str:
        path = self.run_dir / "logs" / f"{name}.out"
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return " | ".join(lines[-3:]) or "(nothing)"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.spec.package and package_version(self.spec.package) is None:
            raise TargetError(f"{self.name}: package {self.spec.package} is not installed (run ci/setup.sh)")
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
            "address": self.address,
            "ports": self.ports,
            "cert": cert,
            "ca_file": str(self.env.ca.cert_path),
            "dns_address": self.env.dns_address,
            "knobs": self.knobs,
        }
        self._render_files()
        shutil.chown(self.run_dir, self.spec.user)
        for path in self.run_dir.rglob("*"):
            shutil.chown(path, self.spec.user)
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
        for index, (name, popen) in enumerate(self._procs):
            if name not in restart:
                continue
            _end_group(popen, grace=float(reset.get("grace", STOP_GRACE_S)))
            self._forget(popen)
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
        return (package_version(self.spec.package) if self.spec.package else None) or "unknown"

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        account = Account(user=name, domain=self.domain, password=self.new_password(password_part))
        self._create_account(account)
        return account

    def _create_account(self, account: Account) -> None:
        argv = self._render(self.spec.accounts["create"], user=account.user, password=account.password)
        self._run_command(argv, f"creating account {account.user}")
        with (self.run_dir / "accounts.txt").open("a") as record:  # work dir only, never in reports
            record.write(f"{account.jid} {account.password}\n")

    def log_files(self) -> list[Path]:
        outs = [self.run_dir / "logs" / f"{name}.out" for name, _ in self._procs]
        return outs + [self.run_dir / rel for rel in self.spec.logs]

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            children = list(self._children)
        for popen in children:
            _signal_group(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for popen in reversed(children):
            _end_group(popen, grace=max(0.0, deadline - time.monotonic()))
            self._forget(popen)
        self._procs.clear()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False once the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def _end_group(popen: subprocess.Popen, grace: float) -> None:
    """Wait up to ``grace`` seconds for the whole group to exit (not only its leader), then kill it.

    A runtime may go on shutting down after the wrapper that started it has exited, so the
    group, not the leader, decides when a server is gone.
    """
    deadline = time.monotonic() + grace
    _signal_group(popen.pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        popen.poll()
        if popen.returncode is not None and not _signal_group(popen.pid, 0):
            break
        time.sleep(0.05)  # polling for exit during teardown, not a verdict
    _signal_group(popen.pid, signal.SIGKILL)
    popen.wait()
