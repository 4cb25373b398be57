"""What an XMPP actor received and has not yet used: the queue behind ``expect`` and
``expect-nothing``, shared by every XMPP actor kind.

Everything the server sends on a connection is queued in arrival order: the stream header (as an
empty ``{stream}stream`` element with the header's attributes), every top-level element
(features, stanzas, SASL and TLS negotiation elements, stream errors) and events represented as
elements of the matcher namespace (``<m:closed what='stream|connection'/>``,
``<m:not-well-formed>``).

``expect``
    takes the first *unconsumed* element that matches (a pattern, or any of a list of patterns)
    and, by default, consumes it, so the next ``expect`` needs a new element. Past its deadline,
    once the connection is gone with nothing matching (nothing more can arrive), or as soon as
    an element arrived that rules a match out (the IQ's one reply, the SASL outcome, a stream
    error: :func:`rules_out`), it is a ``fail`` explaining, for each alternative, how the
    closest element differs.
``expect-nothing``
    proves absence without sleeping: it sends an ordering barrier, an XEP-0199 ping to the
    server on the same stream, and waits for its reply. The server processes what it sent
    before the reply first, so once the reply is here, nothing matching can still be on its
    way. Then no unconsumed element may match. A missing barrier reply is an ``error``
    (absence not proven); on a closed connection everything received is final (``barrier:
    none`` requires that).

The owner (an actor) puts elements in with :meth:`Inbox.put`, tells it when the connection is
gone (:meth:`Inbox.connection_lost`) and when a stream restarts (:meth:`Inbox.new_stream`:
RFC 6120 discards the old stream, and a pattern must not match features of a stream that is
gone; they stay in the stream log).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

from harness.protocols.xmpp.elements import (
    FEATURES_TAG,
    IQ_TAG,
    NS_PING,
    NS_SASL,
    NS_TLS,
    STREAM_ERROR_TAG,
    attr,
    condition,
)
from harness.protocols.xmpp.match import (
    CLOSED,
    NOT_WELL_FORMED,
    Matcher,
    Pattern,
    PatternError,
    alternatives,
    compile_match,
    summarize,
)
from harness.verdict import Failed, HarnessError, Observation

# JSON schemas of the parameters of the two actions (the actors' ``actions`` use them).
WITHIN_SCHEMA: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
MATCH_SCHEMA: dict[str, Any] = {
    "type": ["string", "array"],
    "minLength": 1,
    "minItems": 1,
    "items": {"type": "string", "minLength": 1},
    "description": "a pattern, or a list of patterns of which any one may match",
}
BARRIERS = ("ping", "none")


def params_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema of an action's parameters: an object with exactly these properties."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


EXPECT_SCHEMA = params_schema(
    {"match": MATCH_SCHEMA, "within": WITHIN_SCHEMA, "consume": {"type": "boolean", "default": True}},
    ["match"],
)
VIA_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "description": "the JID the barrier pings go to (default: the server's domain), e.g. a room "
    "that relays the stanzas in question",
}
EXPECT_NOTHING_SCHEMA = params_schema(
    {
        "match": MATCH_SCHEMA,
        "barrier": {"enum": list(BARRIERS), "default": "ping"},
        "via": VIA_SCHEMA,
        "within": WITHIN_SCHEMA,
    },
    ["match"],
)


def compile_step_match(match: str | list[str]) -> Matcher:
    """A step's ``match`` compiled; a bad pattern is the scenario's (harness) error."""
    try:
        return compile_match(match)
    except PatternError as exc:
        raise HarnessError(f"bad pattern: {exc}") from None


# Answers a request gets exactly one of: once one is here and does not match, none that
# matches can follow (a scenario that pipelines two such requests expects the first answer
# before it sends the second).
_ONE_ANSWER = (
    (frozenset({FEATURES_TAG}), "a stream has one features element"),
    (frozenset({f"{{{NS_SASL}}}success", f"{{{NS_SASL}}}failure"}), "a SASL exchange has one outcome"),
    (frozenset({f"{{{NS_TLS}}}proceed", f"{{{NS_TLS}}}failure"}), "STARTTLS has one answer"),
)
_EVENTS = (CLOSED, NOT_WELL_FORMED)  # what can still be observed after the stream's end


def rules_out(pattern: Pattern, el: ET.Element) -> str | None:
    """Why ``el``, received and not matching ``pattern``, means no later element can match it
    (RFC 6120: one features element per stream, one outcome per SASL exchange and STARTTLS, one
    reply per IQ id (8.2.3), nothing after a stream error (4.9.1.1) or the stream's close (4.4));
    None when a matching element may still come."""
    if pattern.tag is None or pattern.tag in _EVENTS or pattern.matches(el):
        return None
    if el.tag == CLOSED and el.get("what") == "stream":
        return "the server closed its stream: nothing can follow"
    if el.tag == STREAM_ERROR_TAG:
        return "a stream has one stream error and nothing after it but its end"
    for tags, why in _ONE_ANSWER:
        if el.tag in tags and pattern.tag in tags:
            return why
    wanted_id = pattern.attribute("id")
    if (
        el.tag == pattern.tag
        and el.tag.endswith("}iq")
        and wanted_id not in (None, "*")
        and el.get("id") == wanted_id
        and el.get("type") in ("result", "error")
    ):
        return f"IQ {wanted_id} has its one reply"
    return None


SendText = Callable[[str, float], Awaitable[None]]


class Inbox:
    """The received, not yet consumed elements of one connection (see the module documentation)."""

    def __init__(self) -> None:
        self.pending: list[ET.Element] = []
        self.closed = False  # the connection is gone: nothing more can arrive
        # the server ended the stream (a stream error, or its closing tag), even if the
        # connection is not gone yet: it read everything sent before, and takes nothing more
        self.stream_ended = False
        self._arrived = asyncio.Event()

    # -- filling -----------------------------------------------------------------------------

    def put(self, el: ET.Element, ends_stream: bool = True) -> None:
        """Queue ``el``; a stream error or close ends the stream (``ends_stream=False``: it came
        on another stream than the one this inbox follows)."""
        self.pending.append(el)
        if ends_stream and (el.tag == STREAM_ERROR_TAG or el.tag == CLOSED):
            self.stream_ended = True
        self._arrived.set()

    @property
    def ended(self) -> bool:
        """Nothing sent now can be handled: the connection or the server's stream is gone."""
        return self.closed or self.stream_ended

    def notify(self) -> None:
        """Wake the waiters to re-check their condition (something else than an element changed)."""
        self._arrived.set()

    def connection_lost(self) -> None:
        """Nothing more can arrive (the owner queued ``<m:closed what='connection'/>`` first)."""
        self.closed = True
        self._arrived.set()

    def new_stream(self) -> None:
        """A stream restart: the unconsumed elements of the old stream are gone."""
        self.pending.clear()

    def reset(self) -> None:
        """A new connection: forget everything of the earlier one."""
        self.pending.clear()
        self.closed = False
        self.stream_ended = False

    def consume(self, el: ET.Element) -> None:
        for i, item in enumerate(self.pending):
            if item is el:
                del self.pending[i]
                return

    # -- waiting -----------------------------------------------------------------------------

    def find(self, pred: Callable[[ET.Element], bool]) -> ET.Element | None:
        return next((el for el in self.pending if pred(el)), None)

    async def wait_until(self, cond: Callable[[], bool], deadline: float) -> bool:
        """Wait until ``cond()`` holds (re-checked at every arrival or :meth:`notify`). False once
        the deadline passed, or the connection is gone and ``cond()`` still does not hold."""
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    if cond():
                        return True
                    if self.closed:
                        return False
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False

    async def wait_for(self, pred: Callable[[ET.Element], bool], deadline: float) -> ET.Element | None:
        """First unconsumed element satisfying ``pred``; None once the deadline passed or the
        connection is gone with nothing matching (nothing more can arrive)."""
        found: list[ET.Element] = []

        def cond() -> bool:
            el = self.find(pred)
            if el is not None:
                found.append(el)
            return el is not None

        return found[0] if await self.wait_until(cond, deadline) else None

    # -- descriptions --------------------------------------------------------------------------

    def summary(self, limit: int = 8) -> str:
        if not self.pending:
            return "nothing (unconsumed)"
        items = [summarize(e) for e in self.pending[-limit:]]
        more = len(self.pending) - limit
        return ("... " if more > 0 else "") + ", ".join(items)

    def closed_summary(self, closing: bool = False) -> str:
        """How the connection ended (``closing``: the actor itself closed it)."""
        closes = [e for e in self.pending if e.tag == CLOSED]
        errors = [e for e in self.pending if e.tag == STREAM_ERROR_TAG]
        parts = []
        if errors:
            parts.append(f"stream error {condition(errors[-1])}")
        if closes or self.closed:
            parts.append("closed by the server" if not closing else "closed")
        return ", ".join(parts) or "not open"

    def explain_miss(self, matcher: Matcher) -> str:
        """Why nothing unconsumed matches: per alternative, how the closest element differs."""
        patterns = alternatives(matcher)
        out = []
        for index, pattern in enumerate(patterns, 1):
            closest = self._closest(pattern)
            head = f"alternative {index} ({pattern.describe(60)}): " if len(patterns) > 1 else ""
            if closest is not None:
                out.append(f"{head}got {summarize(closest)}: {pattern.explain(closest)}; ")
            elif head:
                out.append(f"{head}nothing like it received; ")
        return "".join(out)

    def _closest(self, pattern: Pattern) -> ET.Element | None:
        """The element to show against ``pattern``: the one that ruled it out (the IQ's reply),
        else the last one with its tag."""
        deciding = next((el for el in self.pending if rules_out(pattern, el)), None)
        if deciding is not None:
            return deciding
        same = [el for el in self.pending if pattern.tag is None or el.tag == pattern.tag]
        return same[-1] if same else None

    # -- the two actions -----------------------------------------------------------------------

    async def expect(
        self,
        match: str | list[str],
        deadline: float,
        wait: float,
        consume: bool = True,
        closing: bool = False,
    ) -> ET.Element:
        """The ``expect`` action: the matching element, or :class:`Failed` (``wait`` is the
        seconds until ``deadline``, for the message). It fails as soon as the outcome is
        certain: when, for every alternative, an element arrived after which no matching one
        can (:func:`rules_out`), or the connection is gone."""
        matcher = compile_step_match(match)
        patterns = alternatives(matcher)
        found: list[ET.Element] = []
        decided: list[str] = []

        def outcome_known() -> bool:
            el = self.find(matcher.matches)
            if el is not None:
                found.append(el)
                return True
            reasons = [self._ruled_out(pattern) for pattern in patterns]
            if all(reasons):
                decided.extend(dict.fromkeys(r for r in reasons if r))
                return True
            return False

        await self.wait_until(outcome_known, deadline)
        if found:
            if consume:
                self.consume(found[0])
            return found[0]
        hint = self.explain_miss(matcher)
        if decided:
            raise Failed(
                f"{hint}expected {matcher.describe()} ({'; '.join(decided)}); received: {self.summary()}"
            )
        if self.closed:
            raise Failed(
                f"{hint}expected {matcher.describe()}; connection closed ({self.closed_summary(closing)}); "
                f"received: {self.summary()}"
            )
        raise Failed(f"{hint}expected {matcher.describe()} within {wait:g}s; received: {self.summary()}")

    def _ruled_out(self, pattern: Pattern) -> str | None:
        """Why no element can match ``pattern`` any more (an unconsumed element says so)."""
        return next((r for r in (rules_out(pattern, el) for el in self.pending) if r), None)

    async def round_trip(self, send: SendText, barrier_id: str, to: str, deadline: float) -> bool:
        """The ordering barrier: an XEP-0199 ping to ``to`` and its answer (a result, or an error
        from an entity that does not answer pings: both mean the ping was handled). On a closed
        connection nothing can be on its way any more: nothing to do. True when the answer came."""
        if self.ended:
            return False
        await send(
            f"<iq type='get' id={attr(barrier_id)} to={attr(to)}><ping xmlns='{NS_PING}'/></iq>", deadline
        )
        reply = await self.wait_for(
            lambda e: e.tag == IQ_TAG and e.get("id") == barrier_id and e.get("type") in ("result", "error"),
            deadline,
        )
        if reply is not None:
            self.consume(reply)
        elif not self.closed:  # closed before the reply: everything received is final
            raise HarnessError(f"no reply to the barrier ping {barrier_id} to {to} in time; order not proven")
        return reply is not None

    async def expect_nothing(
        self,
        match: str | list[str],
        barrier: str,
        deadline: float,
        send: SendText,
        barrier_id: str,
        to: str,
    ) -> Observation:
        """The ``expect-nothing`` action. ``send(text, deadline)`` writes on the actor's stream;
        the barrier is ``<iq type='get' id=barrier_id to=to><ping/></iq>``."""
        matcher = compile_step_match(match)
        answered = False
        if barrier == "none":
            if not self.closed:
                raise HarnessError("expect-nothing with barrier none needs a closed connection")
        elif barrier == "ping":
            answered = await self.round_trip(send, barrier_id, to, deadline)
        else:
            raise HarnessError(f"expect-nothing: unknown barrier {barrier!r} (ping or none)")
        for el in self.pending:
            pattern = next((p for p in alternatives(matcher) if p.matches(el)), None)
            if pattern is not None:
                raise Failed(
                    f"received {summarize(el)}, which matches {pattern.describe()} and must not be sent"
                )
        if barrier == "ping" and not answered:
            # the server closed the observer's connection: nothing could arrive on it any more, so
            # the absence proves nothing (barrier: none says the closed connection is the point)
            return Observation(
                f"the connection was closed before the barrier's reply ({self.closed_summary(False)}): "
                f"nothing matching {matcher.describe()} could arrive on it",
                exercised=False,
            )
        proof = (
            "the end of the connection" if barrier == "none" else f"the reply to barrier ping {barrier_id}"
        )
        return Observation(
            f"nothing matching {matcher.describe()} by {proof} ({len(self.pending)} unconsumed)"
        )
