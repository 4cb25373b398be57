"""What every XMPP actor kind shares: connect parameters, the inbox with expect and
expect-nothing, the stream log, validation of patterns and how XMPP text is redacted."""

from __future__ import annotations

import abc
import asyncio
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

from harness.actors import Actor, ActorContext
from harness.protocols.xmpp.inbox import WITHIN_SCHEMA, Inbox, SendText
from harness.protocols.xmpp.match import PatternError, compile_match, summarize
from harness.protocols.xmpp.ports import PORT_SCHEMA
from harness.protocols.xmpp.redact import redact_xml_text
from harness.protocols.xmpp.streamlog import StreamLog
from harness.protocols.xmpp.tls import VERSION_SCHEMA
from harness.verdict import Failed, Observation, StepOutcome, TargetError

_PLACEHOLDER = re.compile(r"\$\{[^}]*\}")


# connect parameters both XMPP actor kinds understand the same way
CONNECT_PARAMS: dict[str, Any] = {
    "tls": {"enum": ["starttls", "direct", "none"], "default": "starttls"},
    "port": PORT_SCHEMA,
    "tls_min": VERSION_SCHEMA,
    "tls_max": VERSION_SCHEMA,
    "client_cert": {"type": "boolean", "default": False},
    "refused": {
        "enum": ["error", "fail"],
        "default": "error",
        "description": "fail: a refused TCP connection is the target's failure (it stopped serving)",
    },
    "within": WITHIN_SCHEMA,
}


def refused_connection(refused: str, where: str) -> StepOutcome:
    """What a refused TCP connection means for ``connect``: by default the target could not be
    reached (an error of the run); with ``refused: fail``, after the scenario reached it before,
    the target stopped serving (a finding)."""
    if refused == "fail":
        return Failed(f"connection to {where} refused: the server no longer accepts connections")
    return TargetError(f"cannot connect to {where}: connection refused")


class XmppActor(Actor):
    """Shared by the XMPP kinds: every received element goes to ``self._inbox``, and the
    ``expect`` / ``expect-nothing`` actions work on it the same way whatever the kind."""

    protocol = "xmpp"
    deciding_actions: ClassVar[frozenset[str]] = frozenset(
        {"connect", "authenticate", "expect", "expect-nothing"}
    )
    options_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }

    def __init__(self, ctx: ActorContext, options: dict[str, Any]) -> None:
        super().__init__(ctx, options)
        self._log = StreamLog.for_actor(ctx)
        self._inbox = Inbox()  # unconsumed elements of the current stream
        self._ids = 0
        self._closing = False  # the actor itself is closing the connection
        self._client_cert_used = False
        self.header: ET.Element | None = None
        self.features: ET.Element | None = None
        self.tls_info: dict[str, Any] | None = None
        self.full_jid: str | None = None
        self.authenticated = False

    @property
    def stream_logs(self) -> list[Path]:
        return [self._log.path] if self._log.path.exists() else []

    @abc.abstractmethod
    def _require_connection(self, action: str) -> None:
        """Raise HarnessError when ``action`` comes before ``connect``."""

    @abc.abstractmethod
    async def _send_text(self, text: str, deadline: float | None = None) -> None:
        """Write stream text (logged, redacted)."""

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids}"

    def _deadline(self, within: float | None) -> float:
        return asyncio.get_running_loop().time() + (within if within is not None else self.ctx.step_timeout)

    def _closed_summary(self) -> str:
        return self._inbox.closed_summary(self._closing)

    async def expect(
        self, match: str | list[str], within: float | None = None, consume: bool = True
    ) -> Observation:
        self._require_connection("expect")
        wait = within if within is not None else self.ctx.step_timeout
        el = await self._inbox.expect(match, self._deadline(within), wait, consume, self._closing)
        return Observation(f"received {summarize(el)}")

    async def expect_nothing(
        self,
        match: str | list[str],
        barrier: str = "ping",
        via: str | None = None,
        within: float | None = None,
    ) -> Observation:
        self._require_connection("expect-nothing")
        ping = barrier == "ping" and not self._inbox.ended
        return await self._inbox.expect_nothing(
            match,
            barrier,
            self._deadline(within),
            self._barrier_sender("expect-nothing") if ping else self._send_text,
            self._next_id("barrier") if ping else "",
            via or self.ctx.target.domain,
        )

    async def round_trip(self, via: str | None = None) -> None:
        self._require_connection("a round trip (after:)")
        if self._inbox.ended:
            return  # the server ended the stream: it read everything this actor sent
        await self._inbox.round_trip(
            self._barrier_sender("a round trip (after:)"),
            self._next_id("barrier"),
            via or self.ctx.target.domain,
            self._deadline(None),
        )

    def _barrier_sender(self, what: str) -> SendText:
        """How this kind writes a barrier ping for ``what`` (raises HarnessError when it cannot)."""
        return self._send_text

    @classmethod
    def param_problems(cls, action: str, params: dict[str, Any]) -> list[str]:
        """A ``match`` pattern must parse (placeholders stand in as plain text)."""
        if "match" not in params:
            return []
        match = params["match"]
        try:
            compile_match(
                [_PLACEHOLDER.sub("x", m) for m in match]
                if isinstance(match, list)
                else _PLACEHOLDER.sub("x", match)
            )
        except PatternError as exc:
            return [f"match: {exc}"]
        return []

    @classmethod
    def redact(cls, text: str, secrets: list[str]) -> str:
        """Decode SASL payloads and drop credentials (server log slices pass here too)."""
        return redact_xml_text(text, secrets)
