"""The XMPP double as a :class:`~harness.targets.running.RunningTarget`, for the engine.

:func:`running_double` starts a double (with flaws) on its own thread and loopback address and
yields a :class:`DoubleTarget`; the harness provisions accounts into it with the passwords it
chose (so scenarios with declared passwords work, unlike external targets).
:class:`DoubleServices` is what ``run_item`` needs from a run besides the targets.

The driver name is ``double``: it exists only in the harness's own tests, never in the matrix.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.actors import Account, CertificateIssuer, PeerIdentity
from harness.targets.running import RunningTarget
from harness.verdict import HarnessError, TargetError, Unsupported
from tests.doubles.xmpp_server import DoubleConfig, DoubleThread, Pki, XmppDouble

DOMAIN = "double.test"

# Loopback addresses of the doubles: 127.0.3.1-254 (others' tests use 127.0.0.x and 127.0.1.x).
# One per double, so each item's pcap holds only its own double's traffic; ports are ephemeral.
_HOSTS = itertools.cycle(f"127.0.3.{n}" for n in range(1 + os.getpid() % 200, 255))


_ISOLATED = itertools.cycle(range(1, 255))


def next_host() -> str:
    return next(_HOSTS)


class DoubleTarget(RunningTarget):
    driver = "double"

    def __init__(self, server: XmppDouble, name: str = "double") -> None:
        super().__init__()
        cfg = server.config
        self._server = server
        self.name = name
        self.product = "xmpp-double"
        self.version = "test"
        self.domain = cfg.domain
        self.address = server.host
        self.ports = dict(server.ports)
        self.ca_file = server.pki.ca_file
        self.knobs = {"flaws": ",".join(sorted(cfg.flaws)) or "none"}
        self.features = frozenset({"in-band-registration"} if cfg.registration == "open" else ())

    @property
    def server(self) -> XmppDouble:
        return self._server

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        password = self.new_password(password_part)
        self._server.add_account(name, password)
        return Account(user=name, domain=self.domain, password=password)

    def admin(self, op: str, params: dict[str, str]) -> None:
        """The double's services carry out admin operations (on the double's own loop)."""
        done = asyncio.run_coroutine_threadsafe(self._server.admin(op, params), self._server.loop)
        try:
            handled = done.result(timeout=10)
        except ValueError as exc:
            raise TargetError(f"{self.name}: admin operation {op} failed: {exc}") from None
        if not handled:
            raise Unsupported(f"{self.name} has no admin operation {op}")

    def log_files(self) -> list[Path]:
        path = self._server.config.log_file
        return [path] if path is not None else []

    def stop(self) -> None:
        """The double's lifetime belongs to :func:`running_double`."""


class DoubleServices:
    """``RunServices`` for items against doubles: no source address, client certificates
    issued by the double's CA (a :func:`~tests.doubles.xmpp_server.pki_from_ca` PKI)."""

    keylog_foreign_accounts = True  # the double's accounts are the tests' own

    def __init__(self, pki: Pki) -> None:
        if pki.ca is None:
            raise ValueError(
                "DoubleServices needs a PKI made with pki_from_ca (it issues client certificates)"
            )
        self.ca = pki.ca

    def source_address(self, target: RunningTarget) -> str | None:
        return None

    def isolated_source(self, target: RunningTarget) -> str | None:
        """127.0.4.x, one per call: the double counts failed logins per source address."""
        return f"127.0.4.{next(_ISOLATED)}"

    def client_certificate(self, account: Account, directory: Path) -> tuple[Path, Path]:
        issued = self.ca.issue_client(account.jid, directory)
        return issued.cert_path, issued.key_path

    def peer_identity(self, index: int) -> PeerIdentity:
        raise HarnessError("the c2s double runs no scenario with an actor that plays a server")

    @property
    def pki(self) -> CertificateIssuer:
        raise HarnessError("the c2s double runs no scenario with an actor that plays a server")


@contextmanager
def running_double(
    pki: Pki,
    flaws: Iterable[str] = (),
    *,
    log_file: Path | None = None,
    host: str | None = None,
    name: str = "double",
    **config: Any,
) -> Iterator[DoubleTarget]:
    """A double with ``flaws`` (names from ``FLAWS``) listening on a fresh 127.0.3.x address,
    with c2s and a direct-TLS port; stopped on exit. ``config``: other ``DoubleConfig`` fields."""
    config.setdefault("direct_tls", True)
    config.setdefault("channel_bindings", ("tls-server-end-point", "tls-unique"))
    config.setdefault("accounts", {})
    cfg = DoubleConfig(domain=DOMAIN, flaws=frozenset(flaws), log_file=log_file, **config)
    thread = DoubleThread(pki, cfg, host or next_host())
    try:
        server = thread.start()
        yield DoubleTarget(server, name)
    finally:
        thread.stop()
