"""A client connection's io and its replies: what every concern of a session (SASL, binding,
stanzas, rosters, presence) builds on, and what the services answer with."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from tests.doubles.xmpp_xml import NS_STANZAS, NS_STREAMS, _client_xml, _local, bare_jid

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble


class _Restart(Exception):
    """Start a new parser (after STARTTLS or SASL success)."""


class _Close(Exception):
    """End the connection (what had to be sent was sent)."""


class ConnectionBase:
    """One client connection: its transport, who it is (``user`` after SASL, ``jid`` after
    binding), and how it writes, logs, answers stanzas and ends. The concerns of a connection
    are mixins on top of it (see :class:`~tests.doubles.xmpp_server._Connection`)."""

    def __init__(
        self,
        server: XmppDouble,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tls: bool,
        number: int,
    ) -> None:
        self.server = server
        self.cfg = server.config
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.direct = tls
        self.number = number
        self.user: str | None = None
        self.jid: str | None = None
        self.closed = False

    @property
    def bare(self) -> str:
        assert self.jid is not None
        return bare_jid(self.jid)

    # -- io --------------------------------------------------------------------------------------

    @property
    def peer_address(self) -> str:
        """The client's source address (limits on failed logins count per address)."""
        peer = self.writer.get_extra_info("peername")
        return str(peer[0]) if peer else "?"

    def log(self, text: str) -> None:
        self.server.log(f"#{self.number} {text}")

    async def send(self, text: str) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(text.encode())
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def stream_error(self, condition: str, text: str | None = None) -> None:
        extra = f"<text xmlns='{NS_STREAMS}'>{escape(text)}</text>" if text else ""
        self.log(f"stream error {condition}")
        await self.send(
            f"<stream:error><{condition} xmlns='{NS_STREAMS}'/>{extra}</stream:error></stream:stream>"
        )
        self.closed = True

    def drop(self) -> None:
        """Close the TCP connection at once, without a word."""
        self.log("dropping the TCP connection")
        self.closed = True
        self.writer.transport.abort()

    # -- replies to a stanza of this session -----------------------------------------------------

    async def iq_result(self, el: ET.Element, payload: str = "", sender: str | None = None) -> None:
        """Answer the IQ request ``el`` of this session with a result carrying ``payload``, from
        ``sender`` (default: the address the request went to, if any)."""
        attrs = {"type": "result", "id": el.get("id", ""), "to": self.jid or ""}
        origin = sender or el.get("to")
        if origin:
            attrs["from"] = origin
        head = " ".join(f"{name}={quoteattr(value)}" for name, value in attrs.items())
        await self.send(f"<iq {head}>{payload}</iq>")

    async def stanza_error(
        self, el: ET.Element, condition: str, error_type: str = "cancel", extra: str = ""
    ) -> None:
        """Return ``el`` to this session as an error from the address it was sent to, with the
        original payload (RFC 6120 §8.3.1); ``extra``: an application-specific condition."""
        kind = _local(el.tag)
        attrs = {"type": "error", "from": el.get("to") or self.cfg.domain, "to": self.jid or ""}
        if el.get("id") is not None:
            attrs["id"] = el.get("id", "")
        head = " ".join(f"{name}={quoteattr(value)}" for name, value in attrs.items())
        payload = "".join(_client_xml(child) for child in el)
        self.log(f"<{kind}> to {el.get('to')}: {condition}")
        await self.send(
            f"<{kind} {head}>{payload}<error type='{error_type}'><{condition} xmlns='{NS_STANZAS}'/>{extra}"
            f"</error></{kind}>"
        )
