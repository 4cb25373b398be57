"""Presence subscriptions (RFC 6121 §3): subscribe, subscribed, unsubscribe and unsubscribed,
on the user's server and on the contact's, both of which the double plays (it has one domain)."""

from __future__ import annotations

import copy as copy_module
import xml.etree.ElementTree as ET

from tests.doubles.xmpp_connection import ConnectionBase
from tests.doubles.xmpp_presence import PresenceRouter
from tests.doubles.xmpp_xml import NS_CLIENT

SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")


class SubscriptionRouter(PresenceRouter):
    """A subscription stanza's effect on the other side: the roster changes and pushes it makes
    and the presence it releases or stops."""

    async def approve(self, contact: str, user: str, el: ET.Element | None = None) -> None:
        """RFC 6121 §3.1.5: ``contact`` approves ``user``'s pending request (``el``: the
        'subscribed' stanza, else one made by the server): roster push, the approval to the
        user, then the contact's current presence."""
        item = self.roster_item(contact, user)
        item.pending_in, item.from_ = None, True
        await self.roster_push(contact, user)
        if el is None:
            el = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "subscribed", "from": contact})
        await self.inbound_subscribed(el, contact, user)
        if self.config.has("no-presence-after-approval"):
            self.log("flaw no-presence-after-approval: no current presence sent")
            return
        for conn in self.available(contact):  # the approving contact's current presence
            assert conn.presence is not None
            await self.deliver_presence(conn.presence, user)

    async def inbound_unsubscribe(self, el: ET.Element, user: str, contact: str) -> None:
        """RFC 6121 §3.3.3, the contact's server: ``user`` unsubscribes from ``contact``."""
        item = self.rosters.get(contact, {}).get(user)
        if item is None:
            return
        if not item.from_:  # no subscription: only a pending request is forgotten
            item.pending_in = None
            return
        copy = copy_module.deepcopy(el)
        await self.deliver(copy, self.interested(contact))
        item.from_ = False
        await self.roster_push(contact, user)
        if self.config.has("unsubscribe-keeps-presence"):
            self.log(f"flaw unsubscribe-keeps-presence: {user} still gets {contact}'s presence")
            self.stale_subscribers.add((contact, user))
        await self.unavailable_to(contact, user)

    async def inbound_unsubscribed(self, el: ET.Element, contact: str, user: str) -> None:
        """RFC 6121 §3.2.3, the user's server: ``contact`` cancelled or denied ``user``'s
        subscription (or request)."""
        item = self.rosters.get(user, {}).get(contact)
        if item is None or not (item.to or item.ask):
            self.log(f"unsubscribed from {contact} to {user} without a subscription: ignored")
            return
        copy = copy_module.deepcopy(el)
        copy.set("to", user)
        await self.deliver(copy, self.interested(user))
        item.to, item.ask = False, False
        await self.roster_push(user, contact)

    async def inbound_subscribe(self, el: ET.Element, user: str, contact: str) -> None:
        """RFC 6121 §3.1.3, the contact's server: a subscription request from ``user``."""
        if not self.exists(contact):  # no such contact: the request is declined (§8.5.1)
            self.roster_item(user, contact).ask = False
            await self.roster_push(user, contact)
            reply = ET.Element(
                f"{{{NS_CLIENT}}}presence", {"type": "unsubscribed", "from": contact, "to": user}
            )
            await self.deliver(reply, self.interested(user))
            return
        item = self.roster_item(contact, user)
        if item.from_:  # approved before: the contact's server answers at once
            approval = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "subscribed", "from": contact})
            await self.inbound_subscribed(approval, contact, user)
            return
        item.pending_in = copy_module.deepcopy(el)  # delivered again at each initial presence
        await self.deliver(item.pending_in, self.available(contact))
        if self.config.has("presence-before-approval"):
            self.log(f"flaw presence-before-approval: {contact} approves {user} by itself")
            await self.approve(contact, user)

    async def inbound_subscribed(self, el: ET.Element, contact: str, user: str) -> None:
        """RFC 6121 §3.1.6, the user's server: ``contact`` approved ``user``'s request."""
        item = self.roster_item(user, contact)
        if not item.ask:
            self.log(f"subscribed from {contact} to {user} without a request: ignored")
            return
        item.ask, item.to = False, True
        await self.roster_push(user, contact)
        copy = copy_module.deepcopy(el)
        copy.set("to", user)
        await self.deliver(copy, self.interested(user))


class SubscriptionMixin(ConnectionBase):
    """A session's outbound subscription stanzas."""

    async def on_subscription(self, el: ET.Element, presence_type: str, contact: str) -> None:
        """Outbound subscription stanzas (RFC 6121 §3.1.2, §3.1.5): stamped with the user's bare
        JID and addressed to the contact's bare JID; the contact's side is this double too."""
        server, user = self.server, self.bare
        if self.cfg.has("subscription-from-full-jid"):
            assert self.jid is not None
            el.set("from", self.jid)
        else:
            el.set("from", user)
        el.set("to", contact)
        if presence_type == "subscribe":
            item = server.roster_item(user, contact)
            if not item.to:
                item.ask = True
                await server.roster_push(user, contact)
            await server.inbound_subscribe(el, user, contact)
        elif presence_type == "subscribed":
            item = server.roster_item(user, contact)
            if item.pending_in is None:  # no request to approve (pre-approval is not supported)
                self.log(f"subscribed to {contact} without a pending request: ignored")
                return
            await server.approve(user, contact, el)
        elif presence_type == "unsubscribe":  # RFC 6121 §3.3.2
            if self.cfg.has("unsubscribe-ignored"):
                self.log(f"flaw unsubscribe-ignored: unsubscribe to {contact} dropped")
                return
            item = server.rosters.get(user, {}).get(contact)
            if item is not None and (item.to or item.ask):
                item.to, item.ask = False, False
                await server.roster_push(user, contact)
            await server.inbound_unsubscribe(el, user, contact)
        else:  # unsubscribed, RFC 6121 §3.2.2: cancel a subscription or deny a request
            item = server.rosters.get(user, {}).get(contact)
            if item is None or not (item.from_ or item.pending_in is not None):
                self.log(f"unsubscribed to {contact} without a subscription or request: ignored")
                return
            if item.from_:
                await server.unavailable_to(user, contact)
            item.from_, item.pending_in = False, None
            if item.listed:
                await server.roster_push(user, contact)
            await server.inbound_unsubscribed(el, user, contact)
