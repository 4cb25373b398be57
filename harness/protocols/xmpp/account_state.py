"""Bringing an XMPP test account to a known state: what an external target's items need.

A server the harness does not run keeps what one item left on its test accounts for the next:
roster entries and subscriptions, blocked JIDs, privacy lists, PEP nodes, a vCard, private XML,
offline messages, unanswered subscription requests. Any of them can change a later verdict
(a leftover block swallows a control message). Before an item uses an account, and after it, the
keeper logs in as an ordinary client (the ``xmpp-client`` actor, so TLS, SASL, the stream log and
its redaction are the scenarios' own) and removes each, recording what it found:

- roster (RFC 6121 §2.5): every item removed, which also cancels the subscriptions both ways;
- block list (XEP-0191 §3.5): unblock all;
- privacy lists (XEP-0016), where offered: active and default declined, every list removed;
- vCard (XEP-0054): set empty when it is not;
- private XML (XEP-0049): the fragments scenarios store (:data:`PRIVATE_STORAGE`), set empty;
- PEP nodes (XEP-0163, XEP-0060 §8.4): disco#items on the account's bare JID, each node deleted
  (after the vCard: servers that mirror a vCard into PEP create nodes when it is set);
- initial presence, then a round trip: offline messages are delivered and discarded, pending
  subscription requests answered ``unsubscribed``;
- message archive (XEP-0313): counted only; a client cannot clear an archive in general.

A feature the server does not offer (``service-unavailable``, ``feature-not-implemented``) is
recorded as such; any other error, a login that fails or a request left unanswered is a
:class:`~harness.verdict.TargetError`: the item cannot start from a known state.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from harness.actors import ActorContext, register_account_keeper
from harness.protocols.xmpp.client import ClientXmppActor
from harness.protocols.xmpp.elements import IQ_TAG, NS_CLIENT, attr, condition, local
from harness.verdict import StepOutcome, TargetError

NS_ROSTER = "jabber:iq:roster"
NS_BLOCKING = "urn:xmpp:blocking"
NS_PRIVACY = "jabber:iq:privacy"
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"

#: The private XML fragments (element, namespace) scenarios store (XEP-0049 has no way to list
#: them); tests/unit/test_external_accounts.py checks that every one the scenarios use is here.
PRIVATE_STORAGE = (("note", "urn:interop:test:private"),)

NOT_OFFERED = frozenset({"service-unavailable", "feature-not-implemented"})
NOTHING_THERE = frozenset({"item-not-found"})


class _Session:
    """IQ requests on the keeper's logged-in stream, one at a time, each with its reply."""

    def __init__(self, actor: ClientXmppActor, bare_jid: str) -> None:
        self.actor = actor
        self.bare_jid = bare_jid
        self._ids = 0

    async def iq(self, kind: str, payload: str, to: str | None = None) -> ET.Element:
        """The reply (result or error) to an IQ of type ``kind`` carrying ``payload``."""
        self._ids += 1
        iq_id = f"account-state-{self._ids}"
        target = f" to={attr(to)}" if to else ""
        await self.actor.send(f"<iq type='{kind}' id='{iq_id}'{target}>{payload}</iq>")
        inbox = self.actor._inbox
        reply = await inbox.wait_for(
            lambda e: e.tag == IQ_TAG and e.get("id") == iq_id and e.get("type") in ("result", "error"),
            self.actor._deadline(None),
        )
        if reply is None:
            raise TargetError(f"no reply to {payload[:80]} ({inbox.closed_summary()})")
        inbox.consume(reply)
        return reply

    async def get(self, what: str, payload: str, to: str | None = None) -> ET.Element | None:
        """The result of a query; None when the server does not offer it; an empty result when
        there is nothing (``item-not-found``)."""
        reply = await self.iq("get", payload, to)
        if reply.get("type") == "result":
            return reply
        cause = condition(reply).split(" ")[0]
        if cause in NOT_OFFERED:
            return None
        if cause in NOTHING_THERE:
            return ET.Element(IQ_TAG)
        raise TargetError(f"{what}: the query was refused ({condition(reply)})")

    async def change(self, what: str, payload: str, to: str | None = None) -> None:
        """An IQ set that must succeed (a clear the state depends on)."""
        reply = await self.iq("set", payload, to)
        if reply.get("type") != "result":
            raise TargetError(f"{what}: refused ({condition(reply)})")


def _children(reply: ET.Element, namespace: str, parent: str, child: str) -> list[ET.Element]:
    """``reply``'s ``<parent xmlns=namespace><child/>...`` elements."""
    return reply.findall(f"{{{namespace}}}{parent}/{{{namespace}}}{child}")


def _listed(what: str, jids: list[str], done: str) -> str:
    shown = ", ".join(jids[:5]) + (f" and {len(jids) - 5} more" if len(jids) > 5 else "")
    return f"{what}: {len(jids)} ({shown}), {done}" if jids else f"{what}: none"


async def _roster(s: _Session) -> str:
    reply = await s.get("roster", f"<query xmlns='{NS_ROSTER}'/>")
    if reply is None:
        return "roster: not offered"
    jids = [item.get("jid", "") for item in _children(reply, NS_ROSTER, "query", "item")]
    for jid in jids:
        await s.change(
            f"removing roster item {jid}",
            f"<query xmlns='{NS_ROSTER}'><item jid={attr(jid)} subscription='remove'/></query>",
        )
    return _listed("roster items", jids, "removed (subscriptions cancelled)")


async def _block_list(s: _Session) -> str:
    reply = await s.get("block list", f"<blocklist xmlns='{NS_BLOCKING}'/>")
    if reply is None:
        return "block list (XEP-0191): not offered"
    jids = [item.get("jid", "") for item in _children(reply, NS_BLOCKING, "blocklist", "item")]
    if jids:
        await s.change("unblocking all", f"<unblock xmlns='{NS_BLOCKING}'/>")
    return _listed("blocked JIDs", jids, "unblocked")


async def _privacy_lists(s: _Session) -> str:
    reply = await s.get("privacy lists", f"<query xmlns='{NS_PRIVACY}'/>")
    if reply is None:
        return "privacy lists (XEP-0016): not offered"
    names = [item.get("name", "") for item in _children(reply, NS_PRIVACY, "query", "list")]
    for which in ("active", "default") if names else ():
        decline = f"<query xmlns='{NS_PRIVACY}'><{which}/></query>"
        await s.change(f"declining the {which} privacy list", decline)
    for name in names:
        await s.change(
            f"removing privacy list {name}", f"<query xmlns='{NS_PRIVACY}'><list name={attr(name)}/></query>"
        )
    return _listed("privacy lists", names, "removed")


async def _vcard(s: _Session) -> str:
    reply = await s.get("vCard", f"<vCard xmlns='{NS_VCARD}'/>")
    if reply is None:
        return "vCard (XEP-0054): not offered"
    card = reply.find(f"{{{NS_VCARD}}}vCard")
    fields = [local(child.tag) for child in card] if card is not None else []
    if fields:
        await s.change("emptying the vCard", f"<vCard xmlns='{NS_VCARD}'/>")
    return f"vCard: {', '.join(fields)}, emptied" if fields else "vCard: empty"


async def _private_storage(s: _Session) -> str:
    found = []
    for name, namespace in PRIVATE_STORAGE:
        empty = f"<query xmlns='{NS_PRIVATE}'><{name} xmlns={attr(namespace)}/></query>"
        reply = await s.get(f"private XML {namespace}", empty)
        if reply is None:
            return "private XML (XEP-0049): not offered"
        stored = reply.find(f"{{{NS_PRIVATE}}}query/{{{namespace}}}{name}")
        if stored is not None and (len(stored) or (stored.text or "").strip()):
            await s.change(f"emptying private XML {namespace}", empty)
            found.append(namespace)
    return _listed("private XML fragments", found, "emptied")


async def _pep_nodes(s: _Session) -> str:
    reply = await s.get("PEP nodes", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=s.bare_jid)
    if reply is None:
        return "PEP nodes: not offered"
    nodes = [item.get("node", "") for item in _children(reply, NS_DISCO_ITEMS, "query", "item")]
    nodes = [node for node in nodes if node]
    for node in nodes:
        await s.change(
            f"deleting PEP node {node}",
            f"<pubsub xmlns='{NS_PUBSUB_OWNER}'><delete node={attr(node)}/></pubsub>",
            to=s.bare_jid,
        )
    return _listed("PEP nodes", nodes, "deleted")


async def _offline(s: _Session) -> str:
    """Initial presence: the server delivers what it held (offline messages, subscription
    requests); the round trip after it proves everything held has arrived."""
    await s.actor.send("<presence/>")
    await s.actor.round_trip()
    inbox = s.actor._inbox
    messages = [e for e in inbox.pending if e.tag == f"{{{NS_CLIENT}}}message"]
    requests = [
        e.get("from", "")
        for e in inbox.pending
        if e.tag == f"{{{NS_CLIENT}}}presence" and e.get("type") == "subscribe"
    ]
    for jid in requests:
        await s.actor.send(f"<presence type='unsubscribed' to={attr(jid)}/>")
    if requests:
        await s.actor.round_trip()
    for el in messages:
        inbox.consume(el)
    held = f"offline messages: {len(messages)}" + (", discarded" if messages else "")
    return f"{held}; {_listed('subscription requests', requests, 'declined')}"


async def _archive(s: _Session) -> str:
    """Counted, not cleared: XEP-0313 gives a client no way to empty its archive."""
    reply = await s.iq("set", f"<query xmlns='{NS_MAM}'><set xmlns='{NS_RSM}'><max>0</max></set></query>")
    if reply.get("type") == "error":
        return f"message archive (XEP-0313): {condition(reply)}"
    count = reply.find(f"{{{NS_MAM}}}fin/{{{NS_RSM}}}set/{{{NS_RSM}}}count")
    size = count.text if count is not None else "size not given"
    return f"message archive (XEP-0313): {size} (a client cannot clear it)"


CLEARS: tuple[Callable[[_Session], Awaitable[str]], ...] = (
    _roster,
    _block_list,
    _privacy_lists,
    _vcard,
    _private_storage,
    _pep_nodes,
    _offline,
    _archive,
)


@register_account_keeper("xmpp")
async def keep_account(ctx: ActorContext) -> list[str]:
    """Log in as ``ctx.account`` and clear what a scenario may have left (module documentation)."""
    assert ctx.account is not None
    actor = ClientXmppActor(ctx, {})
    try:
        try:
            await actor.connect()
            # slixmpp would answer a subscription request with its own approval and request
            # (its roster's defaults): the keeper declines them instead
            client = actor._require("authenticate")
            client.auto_authorize = None
            client.auto_subscribe = False
            await actor.authenticate()
        except StepOutcome as exc:
            raise TargetError(f"cannot log in as {ctx.account.jid}: {exc.reason}") from None
        session = _Session(actor, ctx.account.jid)
        try:
            lines = [await clear(session) for clear in CLEARS]
        except StepOutcome as exc:
            raise TargetError(f"{ctx.account.jid}: {exc.reason}") from None
        with contextlib.suppress(StepOutcome):  # the state is known; how the stream ends is not
            await actor.disconnect()
        return lines
    finally:
        await actor.close()
