"""The ``hold-connections`` action of the raw actor: many client connections from the actor's one
source address, each opened to its stream features and then left idle, held until the actor
disconnects (XEP-0205: a server should not let one address deny service to others).

Each connection is plain TCP to the client port with an ordinary stream header, unencrypted and
unauthenticated, as a flood would be. A connection counts as held when the server answered with
stream features; one refused, reset, closed or answered with a stream error counts as refused
(a per-address limit, XEP-0205 §4.1). The counts are the step's observation, so they are recorded
in the results; a server that held none put nothing to the test. Use it from an actor with
``own_address: true``, so that the connections share one address that no other actor uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from harness.protocols.xmpp.elements import FEATURES_TAG, STREAM_ERROR_TAG, condition
from harness.protocols.xmpp.inbox import WITHIN_SCHEMA, params_schema
from harness.protocols.xmpp.parser import StreamParser
from harness.verdict import Failed, Observation

MAX_CONNECTIONS = 60  # the network rule: bounded counts

HOLD_CONNECTIONS_SCHEMA = params_schema(
    {"count": {"type": "integer", "minimum": 1, "maximum": MAX_CONNECTIONS}, "within": WITHIN_SCHEMA},
    required=["count"],
)


async def _open_one(host: str, port: int, source: str | None, header: str) -> tuple[Any, str]:
    """One connection to its stream features: (writer, "") when held, (None, why) when refused."""
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)
    except OSError as exc:
        return None, f"connection refused ({exc.strerror or exc})"
    parser = StreamParser()
    writer.write(header.encode())
    while True:
        try:
            data = await reader.read(65536)
        except OSError as exc:
            data, why = b"", f"connection reset ({exc.strerror or exc})"
        else:
            why = "the server closed the connection"
        if not data:
            writer.close()
            return None, why
        for kind, element, _ in parser.feed(data):
            if element is not None and element.tag == FEATURES_TAG:
                return writer, ""
            if element is not None and element.tag == STREAM_ERROR_TAG:
                writer.close()
                return None, f"stream error {condition(element)}"
            if kind in ("close", "error"):
                writer.close()
                return None, "the server ended the stream"


class HeldConnectionsMixin:
    """Adds ``hold_connections`` to the raw actor (its context, stream header and ``close``)."""

    _held: list[Any]

    async def hold_connections(self, count: int, within: float | None = None) -> Observation:
        actor: Any = self
        ctx = actor.ctx
        port = actor._resolve_port("none", None)
        source = ctx.source_address
        header = actor._stream_header(None)
        refusals: dict[str, int] = {}
        self._held = getattr(self, "_held", [])
        try:
            async with asyncio.timeout(within if within is not None else 60.0):
                for _ in range(count):  # one after the other, as a client opening them would
                    writer, why = await _open_one(ctx.target.address, port, source, header)
                    if writer is None:
                        refusals[why] = refusals.get(why, 0) + 1
                    else:
                        self._held.append(writer)
        except TimeoutError:
            raise Failed(
                f"{len(self._held)} connections held, {sum(refusals.values())} refused, and the rest not "
                f"answered with stream features before the deadline of {within} s"
            ) from None
        reached = f"{len(self._held)} of {count} connections from {source or 'one address'} held open"
        refused = "; ".join(f"{n} refused: {why}" for why, n in refusals.items())
        seen = reached + (f" ({refused})" if refused else "")
        actor._log.event(seen)
        return Observation(seen, exercised=bool(self._held))

    async def release_held(self) -> None:
        """Close every held connection (at the actor's disconnect and close)."""
        held, self._held = getattr(self, "_held", []), []
        for writer in held:
            writer.close()
        for writer in held:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await writer.wait_closed()
