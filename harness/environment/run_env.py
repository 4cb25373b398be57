"""The per-run environment every target shares: CA, name resolution and the address plan.

Servers' configuration, data and logs live in a private work directory outside the reports
(their stores hold the test accounts' passwords); only redacted slices reach the evidence.

A run owns a block of loopback addresses ``127.B.0.0/16``: the DNS responder on ``.0.10``,
targets from ``.0.11`` on, actors' source addresses in ``.1.0/24``. The block is chosen by
binding the DNS responder: the first free block wins, so two runs on one machine never share
addresses; a block where anything already listens is skipped. The workers of a parallel run
each own a block (and a work folder); they share the run's certificate authorities
(:func:`run_authorities`). A run that federates with servers it did not start issues from the
CA those servers trust (an event's, given with its key) instead of a fresh one, and its servers
also trust the CAs of those servers' certificates (:meth:`RunEnvironment.trust`).
"""

from __future__ import annotations

import datetime
import fcntl
import itertools
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness.environment.dns import RunDNS
from harness.environment.pki import CertificateAuthority
from harness.verdict import HarnessError

MAX_BLOCKS = 64


KEEP_ENV = "INTEROP_KEEP_WORKDIR"  # set to keep the servers' directories after a run, for debugging
WORKDIR_ENV = "INTEROP_WORKDIR"  # put the servers' directories here (kept after the run)


@dataclass
class RunEnvironment:
    run_dir: Path  # reports and evidence
    work_dir: Path  # servers' directories, removed at the end of the run
    block: int
    ca: CertificateAuthority
    untrusted_ca: CertificateAuthority
    dns: RunDNS
    hosts_file: Path
    resolv_file: Path
    id: str = field(default_factory=lambda: secrets.token_hex(6))  # labels what the run makes
    # the CA certificates the run's servers trust for their peers: the run's CA, and those of
    # servers the run did not start that they federate with (see trust())
    trusted_cas: Path | None = None
    _next_target: itertools.count = field(default_factory=lambda: itertools.count(11))
    _next_source: itertools.count = field(default_factory=lambda: itertools.count(0))
    _next_isolated: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def dns_address(self) -> str:
        return f"127.{self.block}.0.10"

    def target_address(self) -> str:
        index = next(self._next_target)
        if index > 250:
            raise HarnessError("more than 240 targets in one run")
        return f"127.{self.block}.0.{index}"

    def source_address(self) -> str:
        """A fresh client source address, round robin: spreads per-address limits (fail2ban)."""
        return f"127.{self.block}.1.{next(self._next_source) % 254 + 1}"

    def isolated_address(self) -> str:
        """A client source address no other actor of this run (worker) uses: a ban provoked on
        purpose (failed-login limits) stays with the actor that provoked it."""
        index = next(self._next_isolated)
        if index > 254:
            raise HarnessError("more than 254 actors with an address of their own in one run")
        return f"127.{self.block}.2.{index}"

    def add_name(self, domain: str, address: str, srv: dict[str, int]) -> None:
        """Make ``domain`` resolve for every target (DNS A/SRV and the private hosts file)."""
        self.dns.add_host(domain, address, srv=srv)
        self.dns.write_hosts(self.hosts_file)

    def trust(self, ca_files: list[Path]) -> None:
        """Make the run's servers also trust ``ca_files`` (the CAs of external targets'
        certificates): one bundle with the run's CA, which ``{{ ca_file }}`` then names."""
        extra = [
            path for path in dict.fromkeys(ca_files) if path.read_bytes() != self.ca.cert_path.read_bytes()
        ]
        if not extra:
            return
        bundle = self.hosts_file.with_name("trusted-cas.pem")
        bundle.write_bytes(
            b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in [self.ca.cert_path, *extra])
        )
        bundle.chmod(0o644)  # read by the servers' own users
        self.trusted_cas = bundle

    def server_certificate(
        self,
        domain: str,
        directory: Path,
        *,
        trusted: bool = True,
        expired: bool = False,
    ) -> tuple[Path, Path]:
        """A server certificate for an actor that plays a server (see ``CertificateIssuer``)."""
        ca = self.ca if trusted else self.untrusted_ca
        validity: dict[str, datetime.datetime] = {}
        if expired:
            now = datetime.datetime.now(datetime.UTC)
            validity = {
                "not_before": now - datetime.timedelta(days=30),
                "not_after": now - datetime.timedelta(days=1),
            }
        issued = ca.issue_server(domain, directory, **validity)
        return issued.cert_path, issued.key_path

    def close(self) -> None:
        self.dns.stop()
        if not keeps_work_dir():
            shutil.rmtree(self.work_dir, ignore_errors=True)


def blocks_with_listeners(table: Path = Path("/proc/net/tcp")) -> set[int]:
    """Loopback blocks ``127.B/16`` where some TCP socket listens: servers of another run (or
    left by a killed one) that no DNS responder marks; a run takes none of them."""
    blocks = set()
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        address = int(local.split(":")[0], 16).to_bytes(4, "little")
        if state == "0A" and address[0] == 127:  # LISTEN
            blocks.add(address[1])
    return blocks


def new_work_dir() -> Path:
    """The folder the run's servers live in: ``INTEROP_WORKDIR`` or a new temporary one."""
    chosen = os.environ.get(WORKDIR_ENV)
    work_dir = Path(chosen).resolve() if chosen else Path(tempfile.mkdtemp(prefix="interop-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    closed = [p for p in work_dir.parents if not p.stat().st_mode & 0o001]
    if closed:
        raise HarnessError(
            f"{WORKDIR_ENV}={work_dir}: {closed[0]} is not searchable by other users, "
            "so the servers' users could not reach their directories; choose another place"
        )
    work_dir.chmod(0o755)  # the servers' users must reach their directories inside
    return work_dir


def keeps_work_dir() -> bool:
    """Whether the servers' directories stay after the run (for debugging, or a chosen place)."""
    return bool(os.environ.get(KEEP_ENV) or os.environ.get(WORKDIR_ENV))


def run_authorities(
    directory: Path, run_dir: Path, issuer: tuple[Path, Path] | None = None
) -> tuple[CertificateAuthority, CertificateAuthority]:
    """The run's CA and its untrusted one, made by the first worker of a run and loaded by the
    others (a lock file orders them), so that one CA issues every certificate of the run.
    ``issuer``: (certificate, key) of the CA to issue from instead of a new one (an event's CA,
    which servers the run did not start trust)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / "ca" / "ca.key").exists():
            return (
                CertificateAuthority.load(directory / "ca"),
                CertificateAuthority.load(directory / "untrusted-ca"),
            )
        if issuer is None:
            ca = CertificateAuthority.create(directory / "ca", "Interop Run CA")
        else:
            (directory / "ca").mkdir()
            for source, name in zip(issuer, ("ca.crt", "ca.key"), strict=True):
                shutil.copy(source, directory / "ca" / name)
            ca = CertificateAuthority.load(directory / "ca")
        untrusted = CertificateAuthority.create(directory / "untrusted-ca", "Interop Untrusted CA")
        (run_dir / "environment").mkdir(parents=True, exist_ok=True)
        shutil.copy(ca.cert_path, run_dir / "environment" / "run-ca.crt")  # to check the pcaps' certificates
        return ca, untrusted


def create_environment(
    run_dir: Path,
    work_dir: Path | None = None,
    authorities_dir: Path | None = None,
    issuer: tuple[Path, Path] | None = None,
) -> RunEnvironment:
    """This process's environment: its servers' folder ``work_dir`` (default :func:`new_work_dir`),
    the run's CAs from ``authorities_dir`` (default: made here; ``issuer``: see
    :func:`run_authorities`), and a free loopback block."""
    work_dir = work_dir or new_work_dir()
    work_dir.mkdir(parents=True, exist_ok=True)
    work_dir.chmod(0o755)
    env_dir = work_dir / "environment"
    env_dir.mkdir()
    ca, untrusted = run_authorities(authorities_dir or env_dir, run_dir, issuer)
    busy = blocks_with_listeners()
    for block in range(MAX_BLOCKS):
        if block in busy:
            continue
        dns = RunDNS(f"127.{block}.0.10", 53)
        try:
            dns.start()
        except OSError:
            continue
        env = RunEnvironment(
            run_dir=run_dir,
            work_dir=work_dir,
            block=block,
            ca=ca,
            untrusted_ca=untrusted,
            dns=dns,
            hosts_file=env_dir / "hosts",
            resolv_file=env_dir / "resolv.conf",
        )
        dns.write_hosts(env.hosts_file)
        dns.write_resolv_conf(env.resolv_file)
        return env
    shutil.rmtree(work_dir, ignore_errors=True)
    raise HarnessError(f"no free loopback block: port 53 is taken on 127.0-{MAX_BLOCKS - 1}.0.10")
