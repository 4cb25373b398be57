"""The images the docker driver runs: found in the engine, built from a catalogue folder, or pulled.

A catalogue entry's Dockerfile starts ``FROM ${BASE}``. Where no image registry is reachable
(as on our machines) the base is built here: ``debootstrap --variant=minbase`` of the Debian
release, with this machine's apt sources so that the product images get the same package
versions as the local driver, imported into the engine. Where a registry is reachable, setting
``INTEROP_DOCKER_BASE=debian:bookworm`` uses the official Debian image instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness.targets.spec import TargetSpec
from harness.verdict import TargetError

BASE_ENV = "INTEROP_DOCKER_BASE"
BASE_IMAGE = "interop-base:bookworm"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_LABEL = "interop.build-digest"  # what an image was built from: rebuilt when that changes
# this machine's Debian sources (deb822 first); other repositories it may have are not copied
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
# no service starts while packages are installed in an image (as in Debian's official images)
POLICY_RC = "#!/bin/sh\n# installed by the harness's base image: no service starts in a build\nexit 101\n"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@contextmanager
def _lock(name: str) -> Iterator[None]:
    """One lock per image name, over the threads of a process (targets start in parallel) and
    over processes (the workers of a parallel run): an image is built once."""
    with _locks_guard:
        thread_lock = _locks.setdefault(name, threading.Lock())
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    with thread_lock, (Path(tempfile.gettempdir()) / f"interop-image-{digest}.lock").open("w") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield


def _find(client: docker.DockerClient, name: str) -> Any | None:
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def product_image(client: docker.DockerClient, spec: TargetSpec) -> str:
    """The image of a catalogue entry, ready in the engine (found, built or pulled)."""
    section = spec.docker
    name = str(section["image"])
    with _lock(name):
        if "build" in section:
            return _build(client, spec, name, str(section["build"]))
        if _find(client, name) is not None:
            return name
        if not section.get("pull"):
            raise TargetError(f"image {name} is not in the engine (the entry neither builds nor pulls it)")
        try:
            client.images.pull(name)
        except docker.errors.APIError as exc:
            raise TargetError(f"cannot pull image {name}: {exc.explanation or exc}") from exc
        return name


def _build(client: docker.DockerClient, spec: TargetSpec, name: str, dockerfile: str) -> str:
    base = base_image(client)
    digest = hashlib.sha256()
    digest.update((spec.folder / dockerfile).read_bytes())
    digest.update(client.images.get(base).id.encode())
    wanted = digest.hexdigest()
    found = _find(client, name)
    if found is not None and found.labels.get(BUILD_LABEL) == wanted:
        return name
    try:
        client.images.build(
            path=str(spec.folder),
            dockerfile=dockerfile,
            tag=name,
            buildargs={"BASE": base},
            network_mode="host",  # apt inside the build reaches the mirror as this machine does
            labels={BUILD_LABEL: wanted},
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = " | ".join(str(line.get("stream", line)).strip() for line in list(exc.build_log)[-5:])
        raise TargetError(f"building image {name} from {spec.folder / dockerfile} failed: {tail}") from exc
    return name


def base_image(client: docker.DockerClient) -> str:
    """The image product Dockerfiles start from: ``INTEROP_DOCKER_BASE``, or one built here."""
    chosen = os.environ.get(BASE_ENV)
    with _lock(chosen or BASE_IMAGE):
        if chosen:
            if _find(client, chosen) is None:
                client.images.pull(chosen)
            return chosen
        if _find(client, BASE_IMAGE) is None:
            _import_debootstrap(client)
        return BASE_IMAGE


def apt_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str:
    """The Debian mirror this machine installs from (the first ``URIs:``/``deb`` line)."""
    for path in (s for s in sources if s.is_file()):
        for line in path.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in words[1]:
                return words[1] if not words[1].startswith("[") else words[2]
    return DEFAULT_MIRROR


def _import_debootstrap(client: docker.DockerClient) -> None:
    if shutil.which("debootstrap") is None:
        raise TargetError(
            f"no base image {BASE_IMAGE} and no debootstrap to build it (run ci/setup.sh, or set "
            f"{BASE_ENV}=debian:{SUITE} where a registry is reachable)"
        )
    with tempfile.TemporaryDirectory(prefix="interop-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), apt_mirror()], "debootstrap")
        source = next((s for s in APT_SOURCES if s.is_file()), None)
        if source is not None:  # the same suites (updates, security) as this machine
            (rootfs / "etc/apt/sources.list").write_text("")
            shutil.copy(source, rootfs / source.relative_to("/"))
        policy = rootfs / "usr/sbin/policy-rc.d"
        policy.write_text(POLICY_RC)
        policy.chmod(0o755)
        archive = Path(tmp) / "rootfs.tar"
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(archive), "."], "tar of the base")
        repository, tag = BASE_IMAGE.split(":")
        client.api.import_image(src=str(archive), repository=repository, tag=tag)


def _run(argv: list[str], what: str) -> None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
        raise TargetError(f"building the base image {BASE_IMAGE}: {what} exited {out.returncode}: {tail}")
