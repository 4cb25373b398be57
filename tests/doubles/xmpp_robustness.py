"""The double's answers to bad input from a client, and whether it keeps serving afterwards.

Correct by default (RFC 6120): XML that is not well-formed (also: not namespace-well-formed,
invalid UTF-8, an undeclared entity reference, a DOCTYPE inside the stream) ends the stream with
<not-well-formed/> (§11.3, the parser in ``_Connection.run``); a comment or a processing
instruction with <restricted-xml/> (§11.1); an initial stream header for a domain the double
does not serve with <host-unknown/> (§4.9.3.6); an unknown first-level element with
<unsupported-stanza-type/> (§4.9.3.24); a stanza to a JID whose localpart is longer than 1023
octets is returned with <jid-malformed/> (RFC 7622 §3.3, RFC 6120 §8.3.3.8). It has no limit on
stanza size or connections, and an incomplete stanza of one client holds up no other client.
After any of these it keeps serving every other connection and accepts new ones.

The core calls :func:`bad_input` for each stream error caused by a client's input,
:func:`restricted` for a comment or processing instruction the parser reported,
:func:`refuses` when a connection is accepted, and :func:`partial` / :func:`wait_turn` around
each read (a stanza left incomplete); the stanza checks are the service
:class:`RobustnessService`, which sees a bound session's stanzas before every other service.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, ClassVar

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_service import DoubleService, service
from tests.doubles.xmpp_xml import _local

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble, _Connection

FLAWS.update(
    {
        "echo-stream-version": "a stream header with version 11.0 is answered with version 11.0 "
        "(the client's, not the lower of the two) and features, RFC 6120 §4.7.5",
        "accept-any-stream-namespace": "a stream header in another namespace than the streams "
        "namespace is answered with features, RFC 6120 §4.8.1",
        "prefix-refused-without-error": "a stream element with a prefix other than 'stream' is refused "
        "by closing the connection, without a stream error, RFC 6120 §4.8.5",
        "accept-restricted-xml": "comments and processing instructions inside the stream are "
        "ignored silently instead of ending the stream with <restricted-xml/>, RFC 6120 §11.1",
        "wrong-condition-bad-xml": "XML that is not well-formed, restricted XML and bytes that are "
        "not UTF-8 end the stream with <internal-server-error/>, RFC 6120 §11.1 / §11.3 / §11.6",
        "silent-on-bad-xml": "XML the parser cannot read (not well-formed, not UTF-8, a DOCTYPE, an "
        "undeclared entity or prefix) gets no stream error: the connection stays open and everything "
        "after it is ignored, RFC 6120 §11.1 / §11.3 / §11.6",
        "serve-unknown-host": "an initial stream header whose 'to' names a domain the server does "
        "not serve is answered with features, RFC 6120 §4.9.3.6",
        "route-arbitrary-elements": "a first-level element that is not a stanza but has a 'to' "
        "address is delivered to that address, RFC 6120 §4.8.4",
        "accept-long-jid": "a stanza to a JID with a localpart of more than 1023 octets is routed as "
        "to any unknown user (<service-unavailable/>), RFC 7622 §3.3 / RFC 6120 §8.3.3.8",
        "drop-oversized-stanza": "a stanza larger than 64 KiB is discarded without a word (no "
        "delivery, no stanza or stream error), XEP-0205 / RFC 6120 §4.9.3.14",
        "partial-stanza-blocks-others": "while one client has sent part of a stanza, the server "
        "serves no other connection (one reader for all), XEP-0205",
        "overload-drops-stanzas": "with more than 32 connections open, messages are accepted but "
        "never delivered (resources exhausted), XEP-0205",
        "crash-on-bad-input": "after ending a stream for bad input the server drops every "
        "connection and closes every new one at once (a crashed process), RFC 6120 §4.9.1.1",
        "refuse-after-bad-input": "after ending a stream for bad input the server keeps its open "
        "sessions but closes every new connection at once (a broken listener), RFC 6120 §4.9.1.1",
    }
)

MAX_LOCALPART_OCTETS = 1023  # RFC 7622 §3.3
SIZE_LIMIT = 64 * 1024  # of the flaw drop-oversized-stanza
OVERLOAD_CONNECTIONS = 32  # of the flaw overload-drops-stanzas
BAD_XML = {"not-well-formed", "restricted-xml"}


class _State:
    """What the double remembers about bad input: whether it broke, who holds a partial stanza."""

    def __init__(self) -> None:
        self.broken = False
        self.blocker: object | None = None  # the connection with an incomplete stanza
        self.unblocked = asyncio.Event()
        self.unblocked.set()


def _state(server: XmppDouble) -> _State:
    state = server.__dict__.get("_robustness")
    if state is None:
        state = server.__dict__["_robustness"] = _State()
    return state


def refuses(server: XmppDouble) -> bool:
    """A new connection is to be closed at once (the flaws that stop serving)."""
    cfg = server.config
    return _state(server).broken and (cfg.has("crash-on-bad-input") or cfg.has("refuse-after-bad-input"))


def answered_version(conn: _Connection, el: ET.Element) -> str:
    """The version of the double's response header: 1.0, the lower of the two (RFC 6120 §4.7.5)."""
    return el.get("version", "1.0") if conn.cfg.has("echo-stream-version") else "1.0"


def header_problem(conn: _Connection, el: ET.Element) -> str | None:
    """The stream error a header deserves for its version or its prefix (None: none). The
    double's parser resolves prefixes, so the prefix is read from the raw bytes."""
    cfg = conn.cfg
    version = el.get("version", "1.0")
    if version.split(".")[0] != "1" and not cfg.has("echo-stream-version"):
        return "unsupported-version"
    raw = getattr(conn, "last_data", b"")
    if b"<stream:stream" not in raw:  # the double accepts only 'stream', as RFC 6120 §4.8.5 allows
        return "bad-namespace-prefix"
    return None


async def bad_input(conn: _Connection, condition: str, text: str | None = None) -> None:
    """End ``conn``'s stream with the stream error ``condition`` for what its client sent."""
    cfg = conn.cfg
    if condition == "bad-namespace-prefix" and cfg.has("prefix-refused-without-error"):
        conn.log("flaw prefix-refused-without-error: closing without a stream error")
        return
    if condition == "not-well-formed" and cfg.has("silent-on-bad-xml"):
        conn.log("flaw silent-on-bad-xml: no stream error; ignoring everything from now on")
        while await conn.reader.read(65536):
            pass
        return
    if condition in BAD_XML and cfg.has("wrong-condition-bad-xml"):
        conn.log(f"flaw wrong-condition-bad-xml: <internal-server-error/> instead of <{condition}/>")
        condition = "internal-server-error"
    await conn.stream_error(condition, text)
    server = conn.server
    _state(server).broken = True
    if cfg.has("crash-on-bad-input"):
        server.log("flaw crash-on-bad-input: dropping every connection")
        me = asyncio.current_task()
        for task in list(server._tasks):
            if task is not me:
                task.cancel()


async def restricted(conn: _Connection, event: str) -> bool:
    """A comment or processing instruction inside the stream (RFC 6120 §11.1); True: the
    stream ended."""
    if conn.cfg.has("accept-restricted-xml"):
        conn.log(f"flaw accept-restricted-xml: ignoring a {event}")
        return False
    conn.log(f"restricted XML: a {event}")
    await bad_input(conn, "restricted-xml")
    return True


def partial(conn: _Connection, depth: int) -> None:
    """After a read: ``depth`` > 1 means the client left a first-level element incomplete."""
    state = _state(conn.server)
    if depth > 1 and state.blocker is None:
        state.blocker = conn
        state.unblocked.clear()
    elif depth <= 1 and state.blocker is conn:
        release(conn)


def release(conn: _Connection) -> None:
    """``conn`` holds no incomplete stanza any more (or it ended)."""
    state = _state(conn.server)
    if state.blocker is conn:
        state.blocker = None
        state.unblocked.set()


async def wait_turn(conn: _Connection) -> None:
    """Before handling what was read: with the flaw partial-stanza-blocks-others, wait while
    another connection holds an incomplete stanza."""
    if not conn.cfg.has("partial-stanza-blocks-others"):
        return
    state = _state(conn.server)
    while state.blocker is not None and state.blocker is not conn:
        conn.log("flaw partial-stanza-blocks-others: waiting for another client's stanza")
        await state.unblocked.wait()


def _localpart(jid: str) -> str:
    bare = jid.split("/", 1)[0]
    return bare.partition("@")[0] if "@" in bare else ""


@service
class RobustnessService(DoubleService):
    """The stanza checks of bad input (see the module documentation); first of all services."""

    order: ClassVar[int] = -1000

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        cfg = self.cfg
        to = el.get("to", "")
        if len(_localpart(to).encode()) > MAX_LOCALPART_OCTETS and not cfg.has("accept-long-jid"):
            if el.get("type") == "error":
                return True
            await conn.stanza_error(el, "jid-malformed", "modify")
            return True
        if cfg.has("drop-oversized-stanza") and len(ET.tostring(el)) > SIZE_LIMIT:
            conn.log(f"flaw drop-oversized-stanza: dropping a <{_local(el.tag)}> over {SIZE_LIMIT} bytes")
            return True
        if (
            cfg.has("overload-drops-stanzas")
            and _local(el.tag) == "message"
            and len(self.server._tasks) > OVERLOAD_CONNECTIONS
        ):
            conn.log(
                f"flaw overload-drops-stanzas: {len(self.server._tasks)} connections, dropping a message"
            )
            return True
        return False
