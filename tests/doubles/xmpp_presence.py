"""Presence (RFC 6121 §4): who gets a session's broadcast and directed presence, who shares
presence with whom, and the presence the server sends on a user's behalf."""

from __future__ import annotations

import copy as copy_module
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from tests.doubles.xmpp_config import DoubleConfig
from tests.doubles.xmpp_connection import ConnectionBase
from tests.doubles.xmpp_roster import RosterRouter
from tests.doubles.xmpp_xml import NS_CLIENT, _client_xml, bare_jid

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import _Connection


class PresenceRouter(RosterRouter):
    """Presence delivery on the server: the available resources of a user and the sessions that
    share presence with a sender."""

    def __init__(self, config: DoubleConfig) -> None:
        super().__init__(config)
        # (user, contact): still gets the user's broadcasts after unsubscribing (a flaw)
        self.stale_subscribers: set[tuple[str, str]] = set()

    def available(self, bare: str) -> list[_Connection]:
        """The available resources of a user: bound and sent available presence (RFC 6121 §4.2)."""
        return [c for c in self.sessions_for(bare) if c.presence is not None]

    def shares_presence(self, recipient: _Connection, sender: str) -> bool:
        """RFC 6121 §8.5.3.1: the recipient shares presence with ``sender`` (a full JID) by a
        subscription (``from`` or ``both``) or by directed presence; a user's own resources do."""
        assert recipient.jid is not None
        bare = bare_jid(sender)
        if bare_jid(recipient.jid) == bare:
            return True
        item = self.rosters.get(bare_jid(recipient.jid), {}).get(bare)
        return (item is not None and item.from_) or bool({sender, bare} & recipient.directed)

    async def deliver_presence(self, el: ET.Element, to: str) -> None:
        """Presence (not a subscription stanza) to ``to``: the session of a full JID, every
        available resource of a bare JID (RFC 6121 §8.5.2.1.1, §8.5.3.1)."""
        copy = copy_module.deepcopy(el)
        copy.set("to", to)
        await self.deliver(copy, list(self.sessions.get(to, [])) if "/" in to else self.available(to))

    async def unavailable_to(self, contact: str, user: str) -> None:
        """Presence of type unavailable from each available resource of ``contact`` to ``user``
        (RFC 6121 §3.2.2, §3.3.3)."""
        for conn in self.available(contact):
            assert conn.jid is not None
            gone = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "unavailable", "from": conn.jid})
            await self.deliver_presence(gone, user)


class PresenceMixin(ConnectionBase):
    """A session's presence: its current available presence, and where it went."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.presence: ET.Element | None = None  # the current available presence (RFC 6121 §4.2)
        self.directed: set[str] = set()  # JIDs this resource sent directed available presence to
        self.sticky: set[str] = set()  # directed presence targets kept in broadcasts (a flaw)

    async def broadcast_presence(self, el: ET.Element) -> None:
        """RFC 6121 §4.2.2 / §4.4.2 / §4.5.2: to the user's own available resources (this one
        included) and the contacts subscribed to the user; unavailable presence also to those
        that got directed presence. Initial presence gets the current presence of the contacts
        the user is subscribed to (the probes, answered locally) and pending requests (§3.1.3)."""
        server, user = self.server, self.bare
        initial = self.presence is None and el.get("type") is None
        self.presence = el if el.get("type") is None else None
        roster = server.rosters.get(user, {})
        recipients = [user] + [contact for contact, item in roster.items() if item.from_]
        recipients += sorted({c for u, c in server.stale_subscribers if u == user} - set(recipients))
        if self.presence is not None:
            recipients += sorted(self.sticky - set(recipients))
        if self.cfg.has("presence-broadcast-to-all"):
            everyone = {bare_jid(c.jid) for conns in server.sessions.values() for c in conns if c.jid}
            self.log("flaw presence-broadcast-to-all: to every user online")
            recipients += sorted(everyone - set(recipients))
        if self.presence is None:
            recipients += sorted(self.directed - set(recipients))
            self.directed.clear()
            self.sticky.clear()
        for to in recipients:
            await server.deliver_presence(el, to)
        if not initial:
            return
        assert self.jid is not None
        for contact, item in roster.items():
            if item.to:
                for conn in server.available(contact):
                    assert conn.presence is not None
                    await server.deliver_presence(conn.presence, self.jid)
            if item.pending_in is not None:
                await self.send(_client_xml(item.pending_in))

    async def directed_presence(self, el: ET.Element, to: str) -> None:
        """RFC 6121 §4.6: delivered (to a full JID's session, or a bare JID's available
        resources) and remembered: the sender shares presence with ``to`` from now on."""
        if el.get("type") is None:
            self.directed.add(to)
            if self.cfg.has("directed-presence-sticky"):
                self.log(f"flaw directed-presence-sticky: {to} gets later broadcasts")
                self.sticky.add(to)
        else:
            self.directed.discard(to)
            self.sticky.discard(to)
        await self.server.deliver_presence(el, to)
        if self.cfg.has("directed-presence-broadcast"):
            self.log("flaw directed-presence-broadcast: to the subscribers too")
            roster = self.server.rosters.get(self.bare, {})
            for contact in sorted(c for c, item in roster.items() if item.from_ and c != bare_jid(to)):
                await self.server.deliver_presence(el, contact)
