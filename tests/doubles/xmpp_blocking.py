"""The double's blocking command (XEP-0191): block lists, pushes and the filtering they imply."""

from __future__ import annotations

import copy as copy_module
import os
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_service import DoubleService, service
from tests.doubles.xmpp_xml import NS_CLIENT, _local, bare_jid, domain_of

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble, _Connection

FLAWS.update(
    {
        "block-no-push": "a block command is answered, but no block push goes to the user's resources "
        "that requested the block list, XEP-0191 §3.3",
        "block-without-unavailable": "blocking a contact sends it no unavailable presence, so the "
        "user still looks online to it, XEP-0191 §3.3",
        "block-ignored-messages": "messages from a blocked JID are still delivered to the user, XEP-0191 §3.3",
        "block-ignored-presence": "presence from a blocked JID (notifications, subscription requests) is "
        "still delivered to the user, XEP-0191 §3.3",
        "blocker-outbound-routed": "a stanza from the user to a JID the user blocked is routed to it, "
        "without the <not-acceptable/> error, XEP-0191 §3.3",
        "blocker-outbound-no-condition": "a stanza from the user to a JID the user blocked gets "
        "<not-acceptable/> without the <blocked/> condition of urn:xmpp:blocking:errors, XEP-0191 §3.3",
        "blocked-message-dropped": "a chat message from a blocked JID is dropped silently, without the "
        "<service-unavailable/> error recommended for its sender, XEP-0191 §3.3",
        "blocked-iq-dropped": "an IQ get or set from a blocked JID is dropped silently, without the error "
        "due to its sender, XEP-0191 §3.3",
        "blocked-presence-bounced": "presence from a blocked JID is answered with a presence error, XEP-0191 §3.3",
        "blocked-iq-result-bounced": "an IQ result from a blocked JID is answered with an error instead of "
        "being dropped silently, XEP-0191 §3.3",
    }
)

NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


def jid_matches(item: str, jid: str) -> bool:
    """XEP-0191 §5 (as XEP-0016): a block list item matches ``jid`` when it is that full JID,
    its bare JID, its domain/resource or its domain."""
    domain, resource = domain_of(jid), jid.partition("/")[2]
    return item in (jid, bare_jid(jid), domain) or (bool(resource) and item == f"{domain}/{resource}")


@service
class BlockingService(DoubleService):
    """The blocking command (XEP-0191) for the double's users.

    A block list per user (bare JID), kept for the double's lifetime. IQs with no 'to' (or the
    user's bare JID): <blocklist/> get (§3.2; the resource asked, so it gets pushes from now on),
    <block/> and <unblock/> set (§3.3-§3.5: IQ result, then a push to every resource of the user
    that asked for the list; a block without items is <bad-request/>). Blocking sends the
    contact unavailable presence from each available resource that shares presence with it,
    unblocking its current presence (§3.3, §3.4). Items match as XEP-0191 §5 says; a user's own
    resources are never blocked.

    Filtering (§3.3): a stanza from the user to a JID the user blocked gets <not-acceptable/>
    with <blocked xmlns='urn:xmpp:blocking:errors'/> (errors and IQ results are dropped). A
    stanza from a blocked JID to the user: presence is dropped without a word, messages of type
    chat or normal are bounced with <service-unavailable/> (others dropped), IQ get/set get
    <service-unavailable/>, IQ results and errors are dropped; and :meth:`allows` keeps anything
    else from a blocked JID (broadcast presence, say) from reaching the user's sessions.

    The service runs first (``order``): a block applies before any other service or the core
    answers for the user, so a blocked contact's IQ to the user's bare JID is refused as above
    before PEP, vCards or disco#info could answer it.
    """

    order = -1

    def __init__(self, server: XmppDouble) -> None:
        super().__init__(server)
        self.lists: dict[str, list[str]] = {}  # user's bare JID -> blocked JIDs, in order
        self.requested: set[_Connection] = set()  # sessions that asked for their block list

    def blocks(self, user: str, jid: str) -> bool:
        """Whether ``user`` (a bare JID) blocked ``jid``."""
        if not jid or bare_jid(jid) == user:
            return False
        return any(jid_matches(item, jid) for item in self.lists.get(user, ()))

    # -- hooks ------------------------------------------------------------------------------------

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        kind, stanza_type, to = _local(el.tag), el.get("type"), el.get("to", "")
        command = next((child for child in el if child.tag.startswith(f"{{{NS_BLOCKING}}}")), None)
        if kind == "iq" and command is not None and to in ("", conn.bare) and stanza_type in ("get", "set"):
            await self.command(conn, el, command)
            return True
        if not to:
            return False
        answer = stanza_type == "error" or (kind == "iq" and stanza_type == "result")
        if self.blocks(conn.bare, to):
            return await self.outbound(conn, el, answer)
        if "@" in to and conn.jid is not None and self.blocks(bare_jid(to), conn.jid):
            return await self.inbound(conn, el, kind, stanza_type, answer)
        return False

    def allows(self, el: ET.Element, to: _Connection) -> bool:
        if to.jid is None or not self.blocks(bare_jid(to.jid), el.get("from", "")):
            return True
        kind = _local(el.tag)
        return (kind == "message" and self.cfg.has("block-ignored-messages")) or (
            kind == "presence" and self.cfg.has("block-ignored-presence")
        )

    async def on_unbind(self, conn: _Connection) -> None:
        self.requested.discard(conn)

    # -- filtering (§3.3) -------------------------------------------------------------------------

    async def outbound(self, conn: _Connection, el: ET.Element, answer: bool) -> bool:
        """The user sends a stanza to a JID the user blocked."""
        if self.cfg.has("blocker-outbound-routed"):
            conn.log(f"flaw blocker-outbound-routed: <{_local(el.tag)}> to blocked {el.get('to')} routed")
            return False
        if answer:
            conn.log(f"blocking: <{_local(el.tag)} type={el.get('type')}> to blocked {el.get('to')} dropped")
            return True
        extra = (
            ""
            if self.cfg.has("blocker-outbound-no-condition")
            else f"<blocked xmlns='{NS_BLOCKING_ERRORS}'/>"
        )
        await conn.stanza_error(el, "not-acceptable", "cancel", extra)
        return True

    async def inbound(
        self, conn: _Connection, el: ET.Element, kind: str, stanza_type: str | None, answer: bool
    ) -> bool:
        """A blocked JID (``conn``) sends a stanza to the user who blocked it."""
        to = el.get("to")
        if kind == "presence":
            if self.cfg.has("block-ignored-presence"):
                conn.log(f"flaw block-ignored-presence: presence to {to} goes on")
                return False
            if self.cfg.has("blocked-presence-bounced"):
                conn.log("flaw blocked-presence-bounced")
                await conn.stanza_error(el, "service-unavailable")
            return True
        if kind == "message":
            if self.cfg.has("block-ignored-messages"):
                conn.log(f"flaw block-ignored-messages: message to {to} goes on")
                return False
            if self.cfg.has("blocked-message-dropped"):
                conn.log(f"flaw blocked-message-dropped: message to {to} dropped")
            elif stanza_type in (None, "chat", "normal"):
                await conn.stanza_error(el, "service-unavailable")
            return True
        if answer:
            if self.cfg.has("blocked-iq-result-bounced"):
                conn.log("flaw blocked-iq-result-bounced")
                await conn.stanza_error(el, "service-unavailable")
            return True
        if self.cfg.has("blocked-iq-dropped"):
            conn.log(f"flaw blocked-iq-dropped: iq to {to} dropped")
            return True
        await conn.stanza_error(el, "service-unavailable")
        return True

    # -- the commands (§3.2 - §3.5) ---------------------------------------------------------------

    async def command(self, conn: _Connection, el: ET.Element, command: ET.Element) -> None:
        name, stanza_type = _local(command.tag), el.get("type")
        user = conn.bare
        blocked = self.lists.setdefault(user, [])
        if name == "blocklist" and stanza_type == "get":
            self.requested.add(conn)
            items = "".join(f"<item jid={quoteattr(jid)}/>" for jid in blocked)
            await conn.iq_result(el, f"<blocklist xmlns='{NS_BLOCKING}'>{items}</blocklist>")
            return
        if name not in ("block", "unblock") or stanza_type != "set":
            await conn.stanza_error(el, "bad-request", "modify")
            return
        jids = [item.get("jid", "") for item in command.findall(f"{{{NS_BLOCKING}}}item")]
        if (name == "block" and not jids) or not all(jids):
            await conn.stanza_error(el, "bad-request", "modify")
            return
        if name == "block":
            added = [jid for jid in dict.fromkeys(jids) if jid not in blocked]
            blocked.extend(added)
            changed = added
        else:
            changed = [jid for jid in blocked if jid in jids] if jids else list(blocked)
            self.lists[user] = [jid for jid in blocked if jid not in changed]
        conn.log(f"blocking: {user} {name}s {', '.join(changed) or '(nothing new)'}")
        await conn.iq_result(el)
        await self.presence_after(user, changed, available=name == "unblock")
        if self.cfg.has("block-no-push"):
            conn.log("flaw block-no-push: no push")
            return
        items = "".join(f"<item jid={quoteattr(jid)}/>" for jid in jids)
        for session in self.server.sessions_for(user):
            if session in self.requested:
                await session.send(
                    f"<iq type='set' id='push-{os.urandom(4).hex()}' to={quoteattr(session.jid or user)}>"
                    f"<{name} xmlns='{NS_BLOCKING}'>{items}</{name}></iq>"
                )

    async def presence_after(self, user: str, contacts: list[str], available: bool) -> None:
        """§3.3 / §3.4: unavailable presence (block) or the current presence (unblock) of each of
        the user's available resources to each contact allowed to receive it."""
        if not available and self.cfg.has("block-without-unavailable"):
            self.server.log("flaw block-without-unavailable: no unavailable presence to the blocked")
            return
        roster = self.server.rosters.get(user, {})
        for session in self.server.available(user):
            assert session.presence is not None and session.jid is not None
            for contact in contacts:
                item = roster.get(bare_jid(contact))
                targets = {contact} if item is not None and item.from_ else set()
                targets |= {jid for jid in session.directed if jid_matches(contact, jid)}
                for to in sorted(targets):
                    presence = copy_module.deepcopy(session.presence)
                    if not available:
                        presence = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": "unavailable"})
                    presence.set("from", session.jid)
                    await self.server.deliver_presence(presence, to)
