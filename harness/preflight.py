"""Checks of a federation with servers the run did not start, before any item relies on it.

The harness cannot configure an external target (a vendor's server), so whatever federation
needs from it is the event's to provide (docs/interop-events.md, "Federation at an event"): the
CA it trusts for peer servers with that CA's key for the harness, and a name plan that tells it
where the run's servers and peer actors are. A mistake there would make items fail for a reason
that is not the server's behaviour, so it is checked first and reported as what it is:

- when the run is set up (:func:`event_issuer`): the files exist, the key belongs to the
  certificate, and every target file names the same CA (the run issues from one CA): a usage
  error, exit 2, before anything starts;
- before the first item that federates a set of targets with an external one
  (:func:`federation_problems`): each external target's name plan has the run's targets among
  them and the run's peer actors (and its DNS server, when the file names one, answers those
  and the other external members as planned), the run's own resolver resolves the external
  ones, and a peer server the harness plays reaches the external target's server-to-server port,
  finds a certificate that chains to every CA that must trust it and names its domain, and is
  not refused for the certificate the run issued it. A problem there makes every item over
  that set an ``error`` naming it, never a verdict; the rest of the matrix runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from dnslib import DNSError

from harness.actors import ActorContext, CertificateIssuer, PeerIdentity, actor_kinds
from harness.environment.dns import lookup as dns_lookup
from harness.targets.external import ExternalTarget
from harness.targets.spec import CatalogueError
from harness.verdict import StepOutcome

PROBE_TIMEOUT_S = 20.0
STEP_TIMEOUT_S = 10.0
NO_FEDERATION = (
    "{name}'s target file has no federation section, so the harness cannot make it trust and "
    "resolve the run's own servers and peer servers (docs/interop-events.md, Federation at an event)"
)


def event_issuer(targets: list[ExternalTarget]) -> tuple[Path, Path] | None:
    """The CA (certificate, key) the run must issue from so that the external targets trust
    its servers and peer actors (None: no target file has a federation section). Raises
    CatalogueError when the files are missing, the key is not the certificate's, or two files
    name different CAs."""
    chosen: tuple[Path, Path] | None = None
    for target in targets:
        fed = target.federation
        if fed is None:
            continue
        for path in (fed.ca_file, fed.ca_key):
            if not path.is_file():
                raise CatalogueError(f"--target-file {target.name}: federation: {path} is not a file")
        try:
            cert = x509.load_pem_x509_certificate(fed.ca_file.read_bytes())
            key = serialization.load_pem_private_key(fed.ca_key.read_bytes(), password=None)
        except ValueError as exc:
            raise CatalogueError(
                f"--target-file {target.name}: federation: cannot read the CA: {exc}"
            ) from None
        if _public(key.public_key()) != _public(cert.public_key()):
            raise CatalogueError(
                f"--target-file {target.name}: federation: {fed.ca_key.name} is not the key of "
                f"{fed.ca_file.name}"
            )
        if chosen is None:
            chosen = (fed.ca_file, fed.ca_key)
        elif chosen[0].read_bytes() != fed.ca_file.read_bytes():
            raise CatalogueError(
                f"--target-file {target.name}: federation: it trusts {fed.ca_file}, another target file "
                f"{chosen[0]}; the run issues every certificate from one CA, so the event needs one CA"
            )
    return chosen


def _public(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# (external target, CA file its certificate must chain to) -> a problem, or None
CertificateCheck = Callable[[ExternalTarget, Path], "str | None"]
# (DNS server, domain) -> the address it gives (None: none); OSError/ValueError: no answer
Lookup = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Member:
    """A target of an item that federates, as the checks see it."""

    name: str
    domain: str
    address: str
    external: ExternalTarget | None  # None: a target the run started


def federation_problems(
    members: list[Member],
    peers: list[PeerIdentity],
    run_resolver: str,
    certificate: CertificateCheck,
    lookup: Lookup = dns_lookup,
) -> list[str]:
    """What stops ``members`` from federating with each other and with the run's peer actors
    (``peers``), as far as the harness can check (empty: nothing found). ``run_resolver`` is
    the DNS server of the run's own servers."""
    problems: list[str] = []
    for member in members:
        target = member.external
        if target is None or target.federation is None:
            continue
        plan = target.federation.names
        ours = [m.domain for m in members if m.external is None] + [p.domain for p in peers]
        problems += [
            f"{target.name} cannot reach {domain}: the event's name plan for it (federation: names) "
            "has no address for it"
            for domain in ours
            if domain not in plan
        ]
        resolver = target.federation.resolver
        if resolver is not None:
            wanted = {d: plan[d] for d in ours if d in plan}
            wanted |= {m.domain: m.address for m in members if m.external is not None and m is not member}
            problems += _resolution(f"{target.name} (through {resolver})", resolver, wanted, lookup)
        cas = {target.ca_file: f"the CA of its target file ({target.ca_file.name})"} if target.ca_file else {}
        for other in members:
            if other is not member and other.external is not None and other.external.federation is not None:
                cas.setdefault(other.external.federation.ca_file, f"the CA {other.name} trusts")
        for ca_file, whose in cas.items():
            problem = certificate(target, ca_file)
            if problem is not None:
                problems.append(
                    f"a peer server the harness plays, checking {target.name} against {whose}: {problem}"
                )
    externals = {m.domain: m.address for m in members if m.external is not None}
    if any(m.external is None for m in members):
        problems += _resolution(
            f"the run's servers (through {run_resolver})", run_resolver, externals, lookup
        )
    return problems


def _resolution(who: str, resolver: str, wanted: dict[str, str], lookup: Lookup) -> list[str]:
    problems = []
    for domain, address in wanted.items():
        try:
            found = lookup(resolver, domain)
        except (OSError, ValueError, DNSError) as exc:
            return [f"{who}: the DNS server does not answer ({type(exc).__name__}: {exc})"]
        if found != address:
            problems.append(f"{who}: {domain} resolves to {found or 'nothing'}, not {address}")
    return problems


def certificate_check(pki: CertificateIssuer, peer: PeerIdentity, evidence_dir: Path) -> CertificateCheck:
    """The check of an external target's certificate by a peer server the harness plays (the
    protocol family's server-playing actor kind, connecting as in every federation scenario):
    it reaches the server-to-server port, verifies the certificate against the CA and the
    target's domain, and presents the certificate the run issued for ``peer``. Its stream logs
    go to ``evidence_dir``."""

    def check(target: ExternalTarget, ca_file: Path) -> str | None:
        kinds = [k for k in actor_kinds().values() if k.plays_server and k.protocol == target.protocol]
        if not kinds:
            return f"the harness cannot play a {target.protocol} server"
        evidence_dir.mkdir(parents=True, exist_ok=True)
        ctx = ActorContext(
            name=f"preflight-{target.name}",
            target=dataclasses.replace(target.view(), ca_file=ca_file),
            account=None,
            evidence_dir=Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=evidence_dir)),
            keylog_file=None,
            step_timeout=STEP_TIMEOUT_S,
            peer=peer,
            pki=pki,
        )

        async def probe() -> str | None:
            actor = kinds[0](ctx, {})
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await actor.perform("connect", {})
            except TimeoutError:
                return f"no answer within {PROBE_TIMEOUT_S:.0f} s"
            except StepOutcome as exc:
                return exc.reason
            finally:
                await actor.close()
            return None

        # in a thread of its own: the caller may be on a running event loop
        with ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, probe()).result()

    return check
