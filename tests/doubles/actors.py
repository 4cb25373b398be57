"""An XMPP actor of any kind against a fresh double, for the actor unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from harness.actors import Account, ActorContext, TargetView
from harness.protocols.xmpp.base import XmppActor
from tests.doubles.xmpp_server import DoubleConfig, Pki, XmppDouble

DOMAIN = "double.test"
PASSWORD = "s3cret-Pa55"

A = TypeVar("A", bound=XmppActor)


def make_actor(
    kind: type[A],
    tmp_path: Path,
    server: XmppDouble,
    ca_file: Path | None,
    client_cert: tuple[Path, Path] | None = None,
    source_address: str | None = None,
    ports: dict[str, int] | None = None,
) -> A:
    view = TargetView(
        name="double",
        product="double",
        domain=DOMAIN,
        address=server.host,
        ports=dict(ports if ports is not None else server.ports),
        ca_file=ca_file,
    )
    ctx = ActorContext(
        name="alice",
        target=view,
        account=Account("alice", DOMAIN, PASSWORD),
        evidence_dir=tmp_path / "evidence",
        keylog_file=tmp_path / "evidence" / "keylog.txt",
        step_timeout=5.0,
        client_cert=client_cert,
        source_address=source_address,
    )
    return kind(ctx, {})


def run_with(
    kind: type[A],
    pki: Pki,
    tmp_path: Path,
    body: Callable[[A, XmppDouble], Awaitable[None]],
    config: DoubleConfig | None = None,
    ca: Path | None | str = "default",
    client_cert: bool = False,
    source_address: str | None = None,
    ports: dict[str, int] | None = None,
    after_close: Callable[[], None] | None = None,
) -> A:
    """Run ``body`` with an actor of ``kind`` against a fresh double; ``after_close`` checks
    what must hold once the actor is closed (still inside the event loop)."""

    async def main() -> A:
        async with XmppDouble(pki, config) as server:
            actor = make_actor(
                kind,
                tmp_path,
                server,
                pki.ca_file if ca == "default" else ca,  # type: ignore[arg-type]
                (pki.client_cert_file, pki.client_key_file) if client_cert else None,
                source_address,
                ports,
            )
            try:
                await body(actor, server)
            finally:
                await actor.close()
            if after_close is not None:
                after_close()
            return actor

    return asyncio.run(main())
