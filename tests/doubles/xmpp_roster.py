"""Rosters (RFC 6121 §2): a user's items with their subscription states (§3, Appendix A), a
session's roster get and set, and the pushes of every change to the interested resources."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from tests.doubles.xmpp_config import DoubleConfig
from tests.doubles.xmpp_connection import ConnectionBase
from tests.doubles.xmpp_routing import Router
from tests.doubles.xmpp_xml import NS_CLIENT, NS_ROSTER, bare_jid

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import _Connection


@dataclass
class RosterItem:
    """A contact in a user's roster: the subscription states of RFC 6121 §3 and Appendix A."""

    to: bool = False  # the user receives the contact's presence
    from_: bool = False  # the contact receives the user's presence
    ask: bool = False  # the user asked to subscribe, no answer yet ("Pending Out")
    pending_in: ET.Element | None = None  # the contact's request, not answered yet ("Pending In")
    added: bool = False  # put in the roster by a roster set (RFC 6121 §2.3)
    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def subscription(self) -> str:
        return {(False, False): "none", (True, False): "to", (False, True): "from"}.get(
            (self.to, self.from_), "both"
        )

    @property
    def listed(self) -> bool:
        """In the roster result: added by a roster set, a subscription, or a pending request of
        the user's own (a request from the contact alone is not an item, RFC 6121 §3.1.3)."""
        return self.added or self.to or self.from_ or self.ask

    def xml(self, contact: str) -> str:
        ask = " ask='subscribe'" if self.ask else ""
        name = f" name={quoteattr(self.name)}" if self.name is not None else ""
        groups = "".join(f"<group>{escape(g)}</group>" for g in self.groups)
        return f"<item jid={quoteattr(contact)} subscription='{self.subscription}'{ask}{name}>{groups}</item>"


class RosterRouter(Router):
    """The server's rosters: every user's items, and who hears of their changes."""

    def __init__(self, config: DoubleConfig) -> None:
        super().__init__(config)
        self.rosters: dict[str, dict[str, RosterItem]] = {}  # user's bare JID -> contact's -> item

    def interested(self, bare: str) -> list[_Connection]:
        """The interested resources of a user: requested the roster (RFC 6121 §2.1.6)."""
        return [c for c in self.sessions_for(bare) if c.interested]

    def roster_item(self, user: str, contact: str) -> RosterItem:
        return self.rosters.setdefault(user, {}).setdefault(contact, RosterItem())

    async def roster_push(self, user: str, contact: str, item_xml: str | None = None) -> None:
        """RFC 6121 §2.1.6: the changed item (``item_xml``, by default the item as it is now) to
        every interested resource of ``user``."""
        item = item_xml if item_xml is not None else self.roster_item(user, contact).xml(contact)
        targets = self.interested(user)
        if self.config.has("roster-push-to-all"):
            self.log(f"flaw roster-push-to-all: {user}'s push to every interested resource")
            targets = [c for conns in self.sessions.values() for c in conns if c.interested]
        for conn in targets:
            await conn.send(
                f"<iq type='set' id='push-{os.urandom(4).hex()}' to={quoteattr(conn.jid or user)}>"
                f"<query xmlns='{NS_ROSTER}'>{item}</query></iq>"
            )


class RosterMixin(ConnectionBase):
    """A session's roster requests: its own roster, and the refusal of another user's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interested = False  # requested the roster (RFC 6121 §2.1.6)

    async def roster_get(self, el: ET.Element, owner: str | None = None) -> None:
        """RFC 6121 §2.1.3: the roster (of ``owner``, by default the session's own user, which
        is interested from now on, §2.1.6)."""
        if owner is None:
            self.interested = True
        roster = self.server.rosters.get(owner or self.bare, {})
        items = "".join(item.xml(contact) for contact, item in sorted(roster.items()) if item.listed)
        await self.iq_result(el, f"<query xmlns='{NS_ROSTER}'>{items}</query>", sender=owner)

    async def roster_set(self, el: ET.Element, owner: str) -> None:
        """RFC 6121 §2.1.5, §2.3-§2.5: one item, added or updated (its subscription attribute
        ignored) or removed (``subscription='remove'``; a subscription is cancelled both ways);
        a result, and a push to every interested resource of ``owner``."""
        server = self.server
        items = el.findall(f"{{{NS_ROSTER}}}query/{{{NS_ROSTER}}}item")
        if len(items) != 1 or not items[0].get("jid"):
            await self.stanza_error(el, "bad-request", "modify")
            return
        contact = bare_jid(items[0].get("jid", ""))
        roster = server.rosters.setdefault(owner, {})
        if items[0].get("subscription") == "remove":
            item = roster.get(contact)
            if item is None or not item.listed:
                await self.stanza_error(el, "item-not-found")
                return
            if item.to or item.ask:
                await server.inbound_unsubscribe(
                    self.subscription_stanza("unsubscribe", owner, contact), owner, contact
                )
            if item.from_:
                await server.unavailable_to(owner, contact)
                item.from_ = False
                await server.inbound_unsubscribed(
                    self.subscription_stanza("unsubscribed", owner, contact), owner, contact
                )
            del roster[contact]
            await self.iq_result(el)
            await server.roster_push(
                owner, contact, f"<item jid={quoteattr(contact)} subscription='remove'/>"
            )
            return
        item = server.roster_item(owner, contact)
        item.added, item.name = True, items[0].get("name")
        item.groups = tuple((g.text or "") for g in items[0].findall(f"{{{NS_ROSTER}}}group"))
        await self.iq_result(el)
        await server.roster_push(owner, contact)

    @staticmethod
    def subscription_stanza(presence_type: str, user: str, contact: str) -> ET.Element:
        return ET.Element(f"{{{NS_CLIENT}}}presence", {"type": presence_type, "from": user, "to": contact})

    async def roster_of_other_user(self, el: ET.Element, kind: str | None, owner: str) -> None:
        """A roster request addressed to another user's bare JID: only the account itself may
        read or change its roster, so <forbidden/> (RFC 6121 §2.1.5, §2.3.3)."""
        if kind == "get" and self.cfg.has("roster-of-other-user"):
            self.log(f"flaw roster-of-other-user: {owner}'s roster to {self.jid}")
            await self.roster_get(el, owner)
        elif kind == "set" and self.cfg.has("roster-set-by-other-user"):
            self.log(f"flaw roster-set-by-other-user: {self.jid} changes {owner}'s roster")
            await self.roster_set(el, owner)
        elif kind in ("get", "set"):
            await self.stanza_error(el, "forbidden", "auth")
