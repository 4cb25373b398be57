"""The docker driver: a catalogue entry run as containers, through the docker SDK.

Per target: a volume mounted at the run directory (the same path as under the local driver, so
the rendered files are the same), a tool container where one-off commands run with ``exec``
(setup, accounts, admin, reset, version, readiness), and one container per server process,
whose output the engine keeps. Files go in through the API (``put_archive``), never a bind
mount, so the engine may be remote (``DOCKER_HOST``). Everything made is labelled with the run
and the owning process, so ``interop targets clean`` can remove what a killed run left.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
import requests.exceptions

from harness import interrupts
from harness.environment.pki import IssuedCertificate
from harness.targets.docker_exec import ExecResult, exec_command
from harness.targets.docker_images import product_image
from harness.targets.docker_network import Networking, TargetAddressing, networking
from harness.targets.managed import SERVER_ENV, STOP_GRACE_S, ManagedTarget
from harness.verdict import TargetError

RUN_LABEL = "interop.run"
TARGET_LABEL = "interop.target"
PROCESS_LABEL = "interop.process"
OWNER_LABEL = "interop.owner"  # "<host>:<pid>" of the harness process that made it
TOOL = "tool"
ENGINE_TIMEOUT_S = 600  # an image build streams for minutes
SYMLINK_HOPS = 8
# the target's readiness is the harness's (ready:); an image's own HEALTHCHECK would run its
# commands in every container, outside the run's deadlines (and may start listeners of its own)
NO_HEALTHCHECK = {"test": ["NONE"]}


def owner() -> str:
    """This process as the owner of what it makes (a parallel run's workers name their controller)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def connect() -> docker.DockerClient:
    """The engine of ``DOCKER_HOST`` (or the local socket), or TargetError saying how to get one."""
    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "the local socket")
        raise TargetError(f"no docker engine at {where}: {exc} (ci/setup.sh starts one)") from exc
    return client


@dataclass
class DockerRun:
    """What the docker targets of one run share: the engine, the run's label, its networking."""

    client: docker.DockerClient
    run_id: str
    networking: Networking
    owner: str  # "<host>:<pid>" of the run's process: `targets clean` removes it once that is gone

    @classmethod
    def open(cls, run_id: str, mode: str, run_owner: str | None = None) -> DockerRun:
        run_owner = run_owner or owner()
        labels = {RUN_LABEL: run_id, OWNER_LABEL: run_owner}
        return cls(connect(), run_id, networking(mode, run_id, labels), run_owner)

    def labels(self, target: str, **more: str) -> dict[str, str]:
        return {RUN_LABEL: self.run_id, TARGET_LABEL: target, OWNER_LABEL: self.owner, **more}

    def close(self) -> None:
        self.networking.close(self.client)


class DockerTarget(ManagedTarget):
    driver = "docker"

    def __init__(self, *args: Any, docker_run: DockerRun, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.docker_run = docker_run
        self.image = ""
        self._volume: Any = None
        self._tool: Any = None
        self._containers: list[Any] = []  # every container made and not yet removed
        self._earlier_output: dict[str, bytes] = {}  # output of restarted processes' old containers
        self._addressing: TargetAddressing | None = None

    @property
    def _client(self) -> docker.DockerClient:
        return self.docker_run.client

    def _resource(self, part: str) -> str:
        return f"interop-{self.docker_run.run_id}-{self.name}-{part}"

    def _labels(self, **more: str) -> dict[str, str]:
        return self.docker_run.labels(self.name, **more)

    def _mounts(self) -> dict[str, dict[str, str]]:
        return {self._volume.name: {"bind": str(self.run_dir), "mode": "rw"}}

    # -- ManagedTarget hooks ------------------------------------------------------------------

    def _prepare(self) -> None:
        if not self.spec.docker:
            raise TargetError(f"{self.name}: its catalogue entry has no docker: section (docs/targets.md)")
        self.image = product_image(self._client, self.spec)
        self._addressing = TargetAddressing(
            address=self.address,
            names=[self.domain, *self.service_domains],
            ports=dict(self.ports),
            dns_address=self.env.dns_address,
            hosts=self.env.dns.hosts(),
        )
        options = self.docker_run.networking.first_container(self._client, self._addressing)
        with interrupts.shielded(), self._lock:
            self._refuse_if_stopped("its volume")
            self._volume = self._client.volumes.create(self._resource("data"), labels=self._labels())
            self._tool = self._client.containers.create(
                self.image,
                entrypoint=["tail", "-f", "/dev/null"],
                name=self._resource(TOOL),
                user="0",
                volumes=self._mounts(),
                labels=self._labels(**{PROCESS_LABEL: TOOL}),
                init=True,
                healthcheck=NO_HEALTHCHECK,
                **options,
            )
            self._containers.append(self._tool)
        self._engine_call(self._tool.start, "starting its tool container")

    def _shim_loads(self) -> bool:
        """Only in images built here on the harness's Debian base: the shim is compiled against
        this machine's glibc and OpenSSL 3, which a pulled image may not have (glibc stops a process
        whose preload needs a newer glibc than the image's; musl is another loader altogether)."""
        return "build" in self.spec.docker

    def _listen_address(self) -> str:
        assert self._addressing is not None
        return self.docker_run.networking.listen_address(self._addressing)

    def _ca_file_for_server(self, cert: IssuedCertificate) -> Path:
        """The CAs the server trusts (the run's, and external targets' for federation with them)
        travel with the run directory (no file of this machine is mounted)."""
        path = cert.cert_path.parent / "run-ca.crt"
        shutil.copy(self.env.trusted_cas or self.env.ca.cert_path, path)
        return path

    def _packaged_text(self, path: str) -> str:
        for _ in range(SYMLINK_HOPS):
            try:
                stream, _stat = self._tool.get_archive(path)
            except docker.errors.NotFound:
                raise OSError(f"no such file in image {self.image}") from None
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.getmembers()[0]
                if member.issym():
                    path = str(PurePosixPath(path).parent / member.linkname)
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:
                    raise OSError(f"{path} in image {self.image} is not a regular file")
                return extracted.read().decode()
        raise OSError(f"{path} in image {self.image}: too many symbolic links")

    def _install_files(self) -> None:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.add(self.run_dir, arcname=".")
        self._engine_call(
            lambda: self._tool.put_archive(str(self.run_dir), archive.getvalue()),
            "copying the run directory into its volume",
        )
        self._exec(["chown", "-R", self.spec.user, str(self.run_dir)], "giving it to its user", user="0")

    def _run_command(self, argv: list[str], what: str, timeout: float = 60) -> str:
        return self._exec(argv, what, user=self.spec.user, timeout=timeout)

    def _exec(self, argv: list[str], what: str, *, user: str, timeout: float = 60) -> str:
        """Run ``argv`` in the tool container, ended by ``timeout`` inside it if it overruns."""
        with self._lock:
            self._refuse_if_stopped(what)
            tool = self._tool
        limited = ["timeout", "-k", "5", f"{max(1, round(timeout))}", *argv]
        result = self._engine_call(lambda: self._exec_in(tool, limited, user), what)
        code = result.exit_code
        stdout, stderr = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
        if code == 124:
            raise TargetError(f"{self.name}: {what} did not finish within {timeout:.0f} s")
        if code != 0:
            tail = (stderr or stdout).strip().splitlines()[-3:]
            raise TargetError(f"{self.name}: {what} exited {code}: {' | '.join(tail)}")
        return stdout

    def _exec_in(self, container: Any, argv: list[str], user: str) -> ExecResult:
        return exec_command(
            self._client, container.id, argv, user=user, workdir=str(self.run_dir), environment=SERVER_ENV
        )

    def _engine_call(self, call: Any, what: str) -> Any:
        try:
            return call()
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise TargetError(f"{self.name}: {what}: the engine said: {exc}") from exc

    def _launch(self, proc: dict[str, Any], argv: list[str], env: dict[str, str]) -> Any:
        assert self._addressing is not None
        name = str(proc["name"])
        options = self.docker_run.networking.process_container(self._addressing, self._tool.id)
        with interrupts.shielded(), self._lock:
            self._refuse_if_stopped(f"process {name}")
            container = self._client.containers.create(
                self.image,
                entrypoint=argv,
                name=self._resource(name),
                user=self.spec.user,
                working_dir=str(self.run_dir),
                environment={**SERVER_ENV, **env},
                volumes=self._mounts(),
                labels=self._labels(**{PROCESS_LABEL: name}),
                init=True,
                healthcheck=NO_HEALTHCHECK,
                **options,
            )
            self._containers.append(container)
        self._engine_call(container.start, f"starting process {name}")
        return container

    def _exit_code(self, handle: Any) -> int | None:
        try:
            handle.reload()
        except docker.errors.NotFound:
            return -1
        state = handle.attrs["State"]
        return None if state.get("Running") or state.get("Status") == "created" else int(state["ExitCode"])

    def _end(self, handle: Any, grace: float) -> None:
        name = handle.labels.get(PROCESS_LABEL, "")
        self._earlier_output[name] = self._earlier_output.get(name, b"") + handle.logs()
        self._remove(handle, grace)

    def _remove(self, container: Any, grace: float) -> None:
        """SIGTERM (docker stop), SIGKILL after ``grace``, then remove."""
        try:
            container.stop(timeout=max(0, round(grace)))
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass  # removed by force below
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)  # v: also the anonymous volumes of its image's VOLUMEs
        with self._lock:
            if container in self._containers:
                self._containers.remove(container)

    def _output_tail(self, name: str) -> str:
        lines = self._process_output(name).decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:]) or "(nothing)"

    def _process_output(self, name: str) -> bytes:
        handle = next((h for n, h in self._procs if n == name), None)
        current = b""
        if handle is not None:
            with contextlib.suppress(docker.errors.NotFound):
                current = handle.logs()
        return self._earlier_output.get(name, b"") + current

    def _installed_version(self) -> str | None:
        if not self.spec.package:
            return None
        argv = ["dpkg-query", "-W", "-f", "${Version}", self.spec.package]
        out = self._exec(argv, "reading the package version", user="0")
        return out.strip() or None

    # -- logs: process output from the engine, log files from the volume -----------------------

    def _log_paths(self) -> dict[str, str]:
        return {PurePosixPath(rel).name: str(self.run_dir / rel) for rel in self.spec.logs}

    def log_sizes(self) -> dict[str, int]:
        if self._tool is None or self._stopped:
            return {}
        sizes = {f"{name}.out": len(self._process_output(name)) for name, _ in self._procs}
        paths = self._log_paths()
        script = 'for f; do [ -f "$f" ] && echo "$(stat -c %s "$f") $f"; done; true'
        out = self._exec(["sh", "-c", script, "sh", *paths.values()], "reading log sizes", user="0")
        by_path = {path: name for name, path in paths.items()}
        for line in out.splitlines():
            size, _, path = line.partition(" ")
            sizes[by_path[path]] = int(size)
        return sizes

    def read_log(self, name: str, start: int) -> bytes:
        if name.endswith(".out") and name[: -len(".out")] in {n for n, _ in self._procs}:
            return self._process_output(name[: -len(".out")])[start:]
        return self._read_volume_file(self._log_paths()[name], start, f"reading {name}")

    def _read_volume_file(self, path: str, start: int, what: str) -> bytes:
        """A file of the run directory's volume from byte ``start`` on (nothing when it is not there)."""
        with self._lock:
            tool = self._tool
        argv = ["tail", "-c", f"+{start + 1}", path]
        return self._engine_call(lambda: self._exec_in(tool, argv, "0"), what).stdout

    def key_log_size(self) -> int:
        if self.key_log is None or self._tool is None or self._stopped:
            return 0
        script = '[ -f "$1" ] && stat -c %s "$1" || echo 0'
        out = self._exec(
            ["sh", "-c", script, "sh", str(self.key_log)], "reading the TLS key log size", user="0"
        )
        return int(out.strip() or 0)

    def read_key_log(self, start: int) -> bytes:
        if self.key_log is None or self._tool is None or self._stopped:
            return b""
        return self._read_volume_file(str(self.key_log), start, "reading the TLS key log")

    # -- the end --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the processes (SIGTERM, the grace, SIGKILL), then remove every container and the
        volume made for this target, also ones a start interrupted before they were recorded."""
        with self._lock:
            self._stopped = True
            containers = list(self._containers)
            volume, self._volume = self._volume, None
            self._tool = None
        for container in containers:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                container.kill(signal="SIGTERM")
        deadline = time.monotonic() + STOP_GRACE_S
        for container in reversed(containers):
            self._remove(container, grace=max(0.0, deadline - time.monotonic()))
        labels = [f"{RUN_LABEL}={self.docker_run.run_id}", f"{TARGET_LABEL}={self.name}"]
        for container in self._client.containers.list(all=True, filters={"label": labels}):
            self._remove(container, grace=0)
        if volume is not None:
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
        for leftover in self._client.volumes.list(filters={"label": labels}):
            leftover.remove(force=True)
        self._procs.clear()


def owner_alive(label: str) -> bool:
    """Whether the harness process named by an ``interop.owner`` label still runs (on this host;
    an owner on another host counts as alive: only its own ``clean`` may judge it)."""
    host, _, pid = label.rpartition(":")
    if host != socket.gethostname():
        return True
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def clean_leftovers(
    client: docker.DockerClient, *, everything: bool = False, owned_by: str | None = None
) -> list[str]:
    """Remove the containers, networks and volumes of runs whose harness process is gone (all
    the harness's, with ``everything``; only those labelled with the owner ``owned_by``, alive
    or not, with that); returns what was removed, e.g. ``container NAME``."""
    removed = []
    filters = {"label": [RUN_LABEL, f"{OWNER_LABEL}={owned_by}"] if owned_by else RUN_LABEL}
    everything = everything or owned_by is not None
    kinds = (("container", client.containers), ("network", client.networks), ("volume", client.volumes))
    for kind, collection in kinds:
        # sparse: no inspect per container after the listing, which fails with NotFound for a
        # container removed meanwhile (a killed run's workers still stopping their own)
        options = {"all": True, "sparse": True} if kind == "container" else {}
        for thing in collection.list(filters=filters, **options):
            labels = thing.attrs.get("Labels") or thing.attrs.get("Config", {}).get("Labels") or {}
            if not everything and owner_alive(labels.get(OWNER_LABEL, "")):
                continue
            try:
                if kind == "network":
                    thing.remove()
                elif kind == "container":
                    thing.remove(force=True, v=True)
                else:
                    thing.remove(force=True)
            except docker.errors.NotFound:
                continue  # removed meanwhile (a killed run's workers still stopping their own)
            name = thing.name or (thing.attrs.get("Names") or ["?"])[0].lstrip("/")  # sparse: Names
            removed.append(f"{kind} {name}")
    return removed
