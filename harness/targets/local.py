"""The local driver: a server installed from the distribution's packages, run as its own processes.

Each target gets its own directory, address, certificate and a private view of name
resolution (a mount namespace with the run's hosts file and resolv.conf), and runs as the
package's service user. Every process is started in its own session so that teardown can end
the whole process group; the mount namespace disappears with its last process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import interrupts
from harness.targets.managed import SERVER_ENV, STOP_GRACE_S, ManagedTarget
from harness.targets.spec import TargetSpec
from harness.verdict import TargetError

# Runs ARGV as USER with the run's hosts file and resolv.conf bind-mounted over the machine's,
# visible to this process tree only. Paths are passed as arguments, never spliced into the script.
_NAMESPACE_SCRIPT = (
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && '
    'user="$3" && shift 3 && exec runuser -u "$user" -- "$@"'
)


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


class LocalTarget(ManagedTarget):
    driver = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # every process group started and not yet ended (servers and one-off commands), recorded
        # when it starts: a start under way in another thread when the run is interrupted must
        # leave nothing behind
        self._children: list[subprocess.Popen[Any]] = []

    def _prepare(self) -> None:
        if self.spec.package is None:
            raise TargetError(f"{self.name}: no distribution package; run it with --driver docker")
        if package_version(self.spec.package) is None:
            raise TargetError(f"{self.name}: package {self.spec.package} is not installed (run ci/setup.sh)")

    def _packaged_text(self, path: str) -> str:
        return Path(path).read_text()

    def _install_files(self) -> None:
        shutil.chown(self.run_dir, self.spec.user)
        for path in self.run_dir.rglob("*"):
            shutil.chown(path, self.spec.user)

    def _installed_version(self) -> str | None:
        return package_version(self.spec.package) if self.spec.package else None

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
                    env={**os.environ, **SERVER_ENV},
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

    def _launch(self, proc: dict[str, Any], argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.run_dir / "logs" / f"{proc['name']}.out"
        with log.open("ab") as out, interrupts.shielded(), self._lock:
            self._refuse_if_stopped(f"process {proc['name']}")
            popen = subprocess.Popen(
                self._wrap(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
                env={**os.environ, **SERVER_ENV, **env},
                start_new_session=True,
            )
            self._children.append(popen)
            return popen

    def _exit_code(self, handle: subprocess.Popen[bytes]) -> int | None:
        return handle.poll()

    def _end(self, handle: subprocess.Popen[bytes], grace: float) -> None:
        _end_group(handle, grace)
        self._forget(handle)

    def _forget(self, popen: subprocess.Popen[Any] | None) -> None:
        """``popen``'s group has ended: stop() need not end it."""
        with self._lock:
            if popen in self._children:
                self._children.remove(popen)

    def _output_tail(self, name: str) -> str:
        path = self.run_dir / "logs" / f"{name}.out"
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return " | ".join(lines[-3:]) or "(nothing)"

    def log_files(self) -> list[Path]:
        outs = [self.run_dir / "logs" / f"{name}.out" for name, _ in self._procs]
        return outs + [self.run_dir / rel for rel in self.spec.logs]

    def key_log_size(self) -> int:
        # no file before the first TLS handshake: the shim creates it with the first key
        return self.key_log.stat().st_size if self.key_log and self.key_log.exists() else 0

    def read_key_log(self, start: int) -> bytes:
        if self.key_log is None or not self.key_log.exists():
            return b""
        with self.key_log.open("rb") as src:
            src.seek(start)
            return src.read()

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


def processes_naming(*markers: str) -> list[int]:
    """Ids of the processes (this one excepted) whose command line contains every marker."""
    needles = [m.encode() for m in markers]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if all(n in cmdline for n in needles):
            found.append(int(proc.name))
    return found


def end_processes_under(root: Path, grace: float = STOP_GRACE_S) -> list[int]:
    """End the process groups of every process whose command line names ``root`` (a run's own
    server folder: each server's wrapper names its hosts file there): SIGTERM, ``grace``
    seconds, then SIGKILL. The last resort after a worker was cut off before it stopped its
    servers; returns the groups it found."""
    groups: set[int] = set()
    for pid in processes_naming(str(root)):
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            continue  # gone meanwhile
    groups.discard(os.getpgrp())  # never the run's own group
    alive = [g for g in groups if _signal_group(g, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for exit during teardown, not a verdict
        alive = [g for g in alive if _signal_group(g, 0)]
    for group in alive:
        _signal_group(group, signal.SIGKILL)
    return sorted(groups)


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
