"""The double's multi-user chat service (XEP-0045) at ``conference.<domain>``."""

from __future__ import annotations

import copy as copy_module
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from tests.doubles.xmpp_server import (
    FLAWS,
    NS_CLIENT,
    DoubleService,
    XmppDouble,
    _Connection,
    _local,
    bare_jid,
    domain_of,
    service,
)

FLAWS.update(
    {
        "muc-no-join-broadcast": "a room sends a new occupant's presence to the new occupant only, "
        "not to the occupants already there, XEP-0045 §7.2.2",
        "muc-no-self-presence-status": "the presence a room sends an occupant about itself lacks "
        "status code 110, XEP-0045 §7.2.3",
    }
)

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = f"{NS_MUC}#user"
NS_MUC_OWNER = f"{NS_MUC}#owner"
NS_DATA = "jabber:x:data"


@dataclass
class _Occupant:
    conn: _Connection
    presence: ET.Element  # the occupant's current presence, without the join's <x/>


@dataclass
class _Room:
    owner: str  # the creator's bare JID
    locked: bool = True  # until the owner accepts the default configuration (XEP-0045 §10.1.2)
    occupants: dict[str, _Occupant] = field(default_factory=dict)  # nick -> occupant

    def nick_of(self, conn: _Connection) -> str | None:
        return next((nick for nick, o in self.occupants.items() if o.conn is conn), None)


@service
class MucService(DoubleService):
    """A multi-user chat service at ``conference.<domain>`` (XEP-0045), as much as the federation
    scenarios use; stanzas from the double's sessions to that domain come here.

    A presence to ``room@service/nick`` joins (§7.2): a room that does not exist is created with
    the sender as its owner, answered with status 110 and 201, and stays locked (others get
    <item-not-found/>, §10.1.1) until the owner submits the instant-room form (§10.1.2). A join
    gets the presence of every occupant already there, then the newcomer's presence goes to every
    occupant, with status 110 in the newcomer's copy (§7.2.2, §7.2.3); later available presence
    is broadcast the same way (§7.7). A nick held by another session: <conflict/> (§7.2.9).
    Groupchat messages from an occupant go to every occupant from the sender's occupant JID
    (§7.4); from a non-occupant, <not-acceptable/>. Unavailable presence, or the end of the
    occupant's connection, leaves the room (§7.14); an empty room is gone. Every room is
    semi-anonymous (no real JIDs in presence). Not modelled: nick changes, private messages,
    configuration forms, disco, history, subjects, other affiliations and roles.
    """

    def __init__(self, server: XmppDouble) -> None:
        super().__init__(server)
        self.domain = f"conference.{server.config.domain}"
        self.rooms: dict[str, _Room] = {}

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        if domain_of(el.get("to", "")) != self.domain:
            return False
        await self.on_room_stanza(conn, el)
        return True

    async def on_unbind(self, conn: _Connection) -> None:
        await self.leave_all(conn)

    async def on_room_stanza(self, conn: _Connection, el: ET.Element) -> None:
        kind, stanza_type = _local(el.tag), el.get("type")
        room_jid, _, nick = el.get("to", "").partition("/")
        room = self.rooms.get(room_jid)
        submit = f"{{{NS_MUC_OWNER}}}query/{{{NS_DATA}}}x[@type='submit']"
        if kind == "presence":
            await self.on_presence(conn, el, room_jid, nick)
        elif kind == "message" and stanza_type == "groupchat" and not nick:
            await self.groupchat(conn, el, room_jid, room)
        elif kind == "iq" and stanza_type == "set" and not nick and el.find(submit) is not None:
            await self.configure(conn, el, room)
        elif stanza_type not in ("error", "result"):
            conn.log(f"MUC: <{kind}> to {el.get('to')} not modelled")
            await conn.stanza_error(el, "service-unavailable")

    async def on_presence(self, conn: _Connection, el: ET.Element, room_jid: str, nick: str) -> None:
        presence_type = el.get("type")
        room = self.rooms.get(room_jid)
        current = room.nick_of(conn) if room is not None else None
        if presence_type == "unavailable":
            if room is not None and current is not None:
                await self.leave(room_jid, room, current, el)
            return
        if presence_type is not None:  # subscriptions, probes, errors
            return
        if "@" not in room_jid or not nick:
            await conn.stanza_error(el, "jid-malformed", "modify")
            return
        created = room is None
        if room is None:
            room = self.rooms[room_jid] = _Room(owner=conn.bare)
            conn.log(f"MUC: {room_jid} created by {conn.bare}, locked")
        elif room.locked and conn.bare != room.owner:
            await conn.stanza_error(el, "item-not-found")
            return
        elif current not in (None, nick):
            conn.log("MUC: nick changes are not modelled")
            await conn.stanza_error(el, "not-acceptable", "modify")
            return
        elif current is None and nick in room.occupants:
            await conn.stanza_error(el, "conflict")
            return
        presence = self.stored(el)
        if current is None:  # a newcomer: the occupants already there first (§7.2.2)
            for other, occupant in room.occupants.items():
                await self.send(room_jid, other, occupant.presence, conn, self.item(room, occupant))
        room.occupants[nick] = _Occupant(conn, presence)
        codes = ("201",) if created else ()
        recipients = None
        if current is None and self.cfg.has("muc-no-join-broadcast"):
            conn.log("flaw muc-no-join-broadcast: the join goes to the newcomer only")
            recipients = [conn]
        await self.broadcast(room_jid, room, nick, codes, recipients)

    async def leave(self, room_jid: str, room: _Room, nick: str, el: ET.Element | None = None) -> None:
        """The occupant ``nick`` leaves: unavailable presence to every occupant (to the leaver
        itself when it said so, ``el``), and an empty room is destroyed."""
        occupant = room.occupants[nick]
        occupant.presence = self.stored(el, "unavailable")
        others = [o.conn for other, o in room.occupants.items() if other != nick]
        await self.broadcast(room_jid, room, nick, (), others if el is None else None, role="none")
        del room.occupants[nick]
        if not room.occupants:
            del self.rooms[room_jid]

    async def leave_all(self, conn: _Connection) -> None:
        """A connection ended: it leaves every room it was in."""
        for room_jid, room in list(self.rooms.items()):
            nick = room.nick_of(conn)
            if nick is not None:
                await self.leave(room_jid, room, nick)

    async def groupchat(self, conn: _Connection, el: ET.Element, room_jid: str, room: _Room | None) -> None:
        nick = room.nick_of(conn) if room is not None else None
        if room is None or nick is None:
            await conn.stanza_error(el, "not-acceptable", "modify")
            return
        for occupant in list(room.occupants.values()):
            await self.send(room_jid, nick, el, occupant.conn)

    async def configure(self, conn: _Connection, el: ET.Element, room: _Room | None) -> None:
        """§10.1.2: the owner accepts the default configuration; the room is unlocked."""
        if room is None:
            await conn.stanza_error(el, "item-not-found")
        elif conn.bare != room.owner:
            await conn.stanza_error(el, "forbidden", "auth")
        else:
            room.locked = False
            conn.log(f"MUC: {el.get('to')} unlocked")
            await conn.send(
                f"<iq type='result' id={quoteattr(el.get('id', ''))} from={quoteattr(el.get('to', ''))}"
                f" to={quoteattr(conn.jid or '')}/>"
            )

    @staticmethod
    def stored(el: ET.Element | None, presence_type: str | None = None) -> ET.Element:
        """An occupant's presence as the room keeps it: ``el``'s payload without the join's <x/>."""
        presence = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": presence_type} if presence_type else {})
        presence.extend(
            copy_module.deepcopy(c) for c in (() if el is None else el) if c.tag != f"{{{NS_MUC}}}x"
        )
        return presence

    @staticmethod
    def item(room: _Room, occupant: _Occupant, role: str | None = None) -> ET.Element:
        x = ET.Element(f"{{{NS_MUC_USER}}}x")
        owner = occupant.conn.jid is not None and bare_jid(occupant.conn.jid) == room.owner
        affiliation, default_role = ("owner", "moderator") if owner else ("none", "participant")
        ET.SubElement(x, f"{{{NS_MUC_USER}}}item", {"affiliation": affiliation, "role": role or default_role})
        return x

    async def broadcast(
        self,
        room_jid: str,
        room: _Room,
        nick: str,
        codes: tuple[str, ...],
        recipients: list[_Connection] | None = None,
        role: str | None = None,
    ) -> None:
        """The presence of occupant ``nick`` to ``recipients`` (every occupant by default), with
        status 110 and ``codes`` in the occupant's own copy (§7.2.3)."""
        occupant = room.occupants[nick]
        for to in recipients if recipients is not None else [o.conn for o in room.occupants.values()]:
            x = self.item(room, occupant, role)
            if to is occupant.conn:
                flawed = self.cfg.has("muc-no-self-presence-status")
                if flawed:
                    to.log("flaw muc-no-self-presence-status: no status 110")
                for code in codes if flawed else ("110", *codes):
                    ET.SubElement(x, f"{{{NS_MUC_USER}}}status", {"code": code})
            await self.send(room_jid, nick, occupant.presence, to, x)

    async def send(
        self, room_jid: str, nick: str, el: ET.Element, to: _Connection, x: ET.Element | None = None
    ) -> None:
        """A copy of ``el`` (with ``x`` added) from the occupant JID ``room_jid/nick`` to ``to``."""
        copy = copy_module.deepcopy(el)
        copy.attrib.update({"from": f"{room_jid}/{nick}", "to": to.jid or ""})
        if x is not None:
            copy.append(x)
        await self.server.deliver(copy, [to])
