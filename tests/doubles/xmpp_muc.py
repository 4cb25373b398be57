"""The double's multi-user chat service (XEP-0045) at ``conference.<domain>``."""

from __future__ import annotations

import copy as copy_module
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_service import DoubleService, service
from tests.doubles.xmpp_xml import NS_CLIENT, NS_DISCO_INFO, NS_PING, _local, bare_jid, domain_of

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble, _Connection

FLAWS.update(
    {
        "muc-no-join-broadcast": "a room sends a new occupant's presence to the new occupant only, "
        "not to the occupants already there, XEP-0045 §7.2.2",
        "muc-no-self-presence-status": "the presence a room sends an occupant about itself lacks "
        "status code 110, XEP-0045 §7.2.2",
        "muc-members-only-ignored": "a members-only room admits users who are not on its member "
        "list, XEP-0045 §7.2.6",
        "muc-password-ignored": "a password-protected room admits users without the right "
        "password, XEP-0045 §7.2.5",
        "muc-ban-ignored": "a room admits users whose affiliation is outcast (banned), XEP-0045 §7.2.7",
        "muc-visitor-can-speak": "in a moderated room a visitor's groupchat message is reflected to "
        "the occupants like a participant's, XEP-0045 §7.4",
        "muc-anyone-configures": "any occupant gets and submits the room configuration form, not "
        "only owners, XEP-0045 §10.2",
        "muc-anyone-kicks": "any occupant may kick another (muc#admin role='none'), not only "
        "moderators, XEP-0045 §8, §8.2",
    }
)

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = f"{NS_MUC}#user"
NS_MUC_ADMIN = f"{NS_MUC}#admin"
NS_MUC_OWNER = f"{NS_MUC}#owner"
NS_DATA = "jabber:x:data"
ROOMCONFIG = f"{NS_MUC}#roomconfig"

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")  # highest first
ROLES = ("moderator", "participant", "visitor", "none")
TRUE = ("1", "true")


@dataclass
class _Occupant:
    conn: _Connection
    presence: ET.Element  # the occupant's current presence, without the join's <x/>
    role: str = "participant"


@dataclass
class _Room:
    owner: str  # the creator's bare JID
    locked: bool = True  # until the owner accepts the default configuration (XEP-0045 §10.1.2)
    occupants: dict[str, _Occupant] = field(default_factory=dict)  # nick -> occupant
    affiliations: dict[str, str] = field(default_factory=dict)  # bare JID -> owner/admin/member/outcast
    members_only: bool = False
    moderated: bool = False
    password: str | None = None  # password-protected when set
    persistent: bool = False  # kept when the last occupant leaves (rooms made by admin operations)

    def __post_init__(self) -> None:
        self.affiliations.setdefault(self.owner, "owner")

    def nick_of(self, conn: _Connection) -> str | None:
        return next((nick for nick, o in self.occupants.items() if o.conn is conn), None)

    def affiliation(self, jid: str) -> str:
        return self.affiliations.get(bare_jid(jid), "none")

    def default_role(self, affiliation: str) -> str:
        """§5.1.2: owners and admins moderate; in a moderated room unaffiliated users are visitors."""
        if affiliation in ("owner", "admin"):
            return "moderator"
        return "visitor" if self.moderated and affiliation == "none" else "participant"


def _rank(affiliation: str) -> int:
    """Higher for a stronger affiliation (outcast lowest)."""
    return len(AFFILIATIONS) - AFFILIATIONS.index(affiliation)


@service
class MucService(DoubleService):
    """A multi-user chat service at ``conference.<domain>`` (XEP-0045), as much as the federation
    and authorization scenarios use; stanzas from the double's sessions to that domain come here.

    A presence to ``room@service/nick`` joins (§7.2): a room that does not exist is created with
    the sender as its owner, answered with status 110 and 201, and stays locked (others get
    <item-not-found/>, §10.1.1) until the owner submits a configuration form, empty (an instant
    room, §10.1.2) or with fields. Entry is refused to outcasts (<forbidden/>, §7.2.7), without
    the room's password when it has one (<not-authorized/>, §7.2.5), and to users who are not
    members of a members-only room (<registration-required/>, §7.2.6); a nick held by another
    session: <conflict/> (§7.2.8). A join gets the presence of every occupant already there, then
    the newcomer's presence goes to every occupant, with status 110 in the newcomer's copy
    (§7.2.2); later available presence is broadcast the same way (§7.7). Roles (§5.1.2): owners
    and admins are moderators, unaffiliated users of a moderated room visitors, the others
    participants. Groupchat messages from an occupant with voice go to every occupant from the
    sender's occupant JID (§7.4); from a visitor, <forbidden/>; from a non-occupant,
    <not-acceptable/>. Unavailable presence, or the end of the occupant's connection, leaves the
    room (§7.14); an empty room is gone, unless an admin operation made it (persistent; see
    :meth:`MucService.admin_create_room` and :meth:`MucService.admin_set_affiliation`).

    IQs to the room (§8-§10): muc#owner get (the configuration form with the fields below) and
    set (a submitted form: muc#roomconfig_membersonly, _moderatedroom,
    _passwordprotectedroom, _roomsecret), owners only, else <forbidden/> (§10.2); muc#admin set
    of a role by nick (moderators only, else <forbidden/>, §8; an occupant with a higher
    affiliation: <not-allowed/>, §8.2): role none kicks (unavailable presence with status 307),
    visitor/participant revoke or grant voice (§8.3, §8.4), with updated presence to all; of an
    affiliation by bare JID (admins and owners only, else <forbidden/>, §9): outcast bans and
    removes the banned occupant (status 301, §9.1), member/none/admin/owner change the lists;
    disco#info: the room's identity and type features (§6.4); an XEP-0199 ping answers a result
    (so an ``expect-nothing`` barrier can go ``via`` a room). Every room is semi-anonymous (no
    real JIDs in presence). Not modelled: nick changes, private messages, disco of the service or
    of items, history, subjects, muc#admin gets (the lists), registration, invitations,
    destruction.
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
        if kind == "presence":
            await self.on_presence(conn, el, room_jid, nick)
        elif kind == "message" and stanza_type == "groupchat" and not nick:
            await self.groupchat(conn, el, room_jid, room)
        elif kind == "iq" and stanza_type in ("get", "set") and not nick:
            await self.on_room_iq(conn, el, room_jid, room)
        elif stanza_type not in ("error", "result"):
            conn.log(f"MUC: <{kind}> to {el.get('to')} not modelled")
            await conn.stanza_error(el, "service-unavailable")

    # -- presence: joining and leaving -------------------------------------------------------------

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
        elif current is None:
            refusal = self.refusal(conn, el, room)
            if refusal is not None:
                await conn.stanza_error(el, refusal, "auth")
                return
            if nick in room.occupants:
                await conn.stanza_error(el, "conflict")
                return
        presence = self.stored(el)
        if current is None:  # a newcomer: the occupants already there first (§7.2.2)
            for other, occupant in room.occupants.items():
                await self.send(room_jid, other, occupant.presence, conn, self.item(room, occupant))
            role = room.default_role(room.affiliation(conn.bare))
            room.occupants[nick] = _Occupant(conn, presence, role)
        else:
            room.occupants[nick].presence = presence
        codes = ("201",) if created else ()
        recipients = None
        if current is None and self.cfg.has("muc-no-join-broadcast"):
            conn.log("flaw muc-no-join-broadcast: the join goes to the newcomer only")
            recipients = [conn]
        await self.broadcast(room_jid, room, nick, codes, recipients)

    def refusal(self, conn: _Connection, el: ET.Element, room: _Room) -> str | None:
        """The error condition that keeps ``conn`` out of ``room`` (§7.2.5-§7.2.7), or None."""
        affiliation = room.affiliation(conn.bare)
        if affiliation == "outcast":
            if not self.cfg.has("muc-ban-ignored"):
                return "forbidden"
            conn.log("flaw muc-ban-ignored: an outcast enters")
        if room.password is not None:
            given = el.find(f"{{{NS_MUC}}}x/{{{NS_MUC}}}password")
            if given is None or (given.text or "") != room.password:
                if not self.cfg.has("muc-password-ignored"):
                    return "not-authorized"
                conn.log("flaw muc-password-ignored: entry without the right password")
        if room.members_only and affiliation in ("none", "outcast"):
            if not self.cfg.has("muc-members-only-ignored"):
                return "registration-required"
            conn.log("flaw muc-members-only-ignored: a non-member enters")
        return None

    async def leave(
        self,
        room_jid: str,
        room: _Room,
        nick: str,
        el: ET.Element | None = None,
        codes: tuple[str, ...] = (),
        affiliation: str | None = None,
    ) -> None:
        """The occupant ``nick`` leaves: unavailable presence to every occupant (to the leaver
        itself when it said so, ``el``, or when it is removed, ``codes``: kicked or banned), and an
        empty room is destroyed."""
        occupant = room.occupants[nick]
        occupant.presence = self.stored(el, "unavailable")
        occupant.role = "none"
        others = [o.conn for other, o in room.occupants.items() if other != nick]
        recipients = others if el is None and not codes else None
        await self.broadcast(room_jid, room, nick, codes, recipients, affiliation)
        self.remove(room_jid, room, nick)

    def remove(self, room_jid: str, room: _Room, nick: str) -> None:
        """The occupant ``nick`` is gone; an empty room is destroyed."""
        del room.occupants[nick]
        if not room.occupants and not room.persistent:
            del self.rooms[room_jid]

    # -- admin operations (docs/targets.md, "Admin operations"), for the double's target ---------

    def admin(self, op: str, params: dict[str, str]) -> bool:
        if op == "create-room":
            self.admin_create_room(params["room"], params["owner"])
        elif op == "set-affiliation":
            self.admin_set_affiliation(params["room"], params["jid"], params["affiliation"])
        else:
            return False
        return True

    def admin_create_room(self, room_jid: str, owner: str) -> None:
        """``create-room``: a persistent, unlocked room with the default configuration, owned by
        the bare JID ``owner``. Call it on the double's event loop (it changes the room table)."""
        if room_jid in self.rooms or domain_of(room_jid) != self.domain:
            raise ValueError(f"create-room: {room_jid} exists or is not on {self.domain}")
        self.rooms[room_jid] = _Room(owner=bare_jid(owner), locked=False, persistent=True)
        self.server.log(f"MUC admin: {room_jid} created, owner {owner}")

    def admin_set_affiliation(self, room_jid: str, jid: str, affiliation: str) -> None:
        """``set-affiliation``: the affiliation of the bare JID ``jid`` in an existing room (the
        occupants are not told; the scenarios set affiliations before the user enters)."""
        room = self.rooms.get(room_jid)
        if room is None or affiliation not in AFFILIATIONS:
            raise ValueError(f"set-affiliation: no room {room_jid} or no affiliation {affiliation}")
        if affiliation == "none":
            room.affiliations.pop(bare_jid(jid), None)
        else:
            room.affiliations[bare_jid(jid)] = affiliation
        self.server.log(f"MUC admin: {jid} is {affiliation} in {room_jid}")

    async def leave_all(self, conn: _Connection) -> None:
        """A connection ended: it leaves every room it was in."""
        for room_jid, room in list(self.rooms.items()):
            nick = room.nick_of(conn)
            if nick is not None:
                await self.leave(room_jid, room, nick)

    # -- messages ----------------------------------------------------------------------------------

    async def groupchat(self, conn: _Connection, el: ET.Element, room_jid: str, room: _Room | None) -> None:
        nick = room.nick_of(conn) if room is not None else None
        if room is None or nick is None:
            await conn.stanza_error(el, "not-acceptable", "modify")
            return
        if room.occupants[nick].role == "visitor":  # no voice (§7.4)
            if not self.cfg.has("muc-visitor-can-speak"):
                await conn.stanza_error(el, "forbidden", "auth")
                return
            conn.log("flaw muc-visitor-can-speak: a visitor's message is reflected")
        for occupant in list(room.occupants.values()):
            await self.send(room_jid, nick, el, occupant.conn)

    # -- iq: configuration, roles, affiliations, ping ----------------------------------------------

    async def on_room_iq(self, conn: _Connection, el: ET.Element, room_jid: str, room: _Room | None) -> None:
        query = el[0] if len(el) else None
        if room is None:
            await conn.stanza_error(el, "item-not-found")
        elif query is not None and query.tag == f"{{{NS_PING}}}ping" and el.get("type") == "get":
            await conn.iq_result(el)
        elif query is not None and query.tag == f"{{{NS_DISCO_INFO}}}query" and el.get("type") == "get":
            await conn.iq_result(el, self.room_info(room))
        elif query is not None and query.tag == f"{{{NS_MUC_OWNER}}}query":
            await self.owner_query(conn, el, query, room)
        elif query is not None and query.tag == f"{{{NS_MUC_ADMIN}}}query" and el.get("type") == "set":
            await self.admin_set(conn, el, query, room_jid, room)
        else:
            conn.log(f"MUC: iq {el.get('type')} {query.tag if query is not None else ''} not modelled")
            await conn.stanza_error(el, "service-unavailable")

    async def owner_query(self, conn: _Connection, el: ET.Element, query: ET.Element, room: _Room) -> None:
        """§10.1.2, §10.2: the configuration form (get) and its submission (set), owners only."""
        if room.affiliation(conn.bare) != "owner":
            if not self.cfg.has("muc-anyone-configures"):
                await conn.stanza_error(el, "forbidden", "auth")
                return
            conn.log(f"flaw muc-anyone-configures: {conn.bare} configures the room")
        if el.get("type") == "get":
            await conn.iq_result(el, self.form(room))
            return
        form = query.find(f"{{{NS_DATA}}}x")
        if form is None or form.get("type") not in ("submit", "cancel"):
            await conn.stanza_error(el, "bad-request", "modify")
            return
        if form.get("type") == "submit":
            values = {
                f.get("var", ""): [(v.text or "") for v in f.findall(f"{{{NS_DATA}}}value")]
                for f in form.findall(f"{{{NS_DATA}}}field")
            }

            def flag(var: str, current: bool) -> bool:
                return values[var][0].strip().lower() in TRUE if values.get(var) else current

            room.members_only = flag("muc#roomconfig_membersonly", room.members_only)
            room.moderated = flag("muc#roomconfig_moderatedroom", room.moderated)
            secret = values.get("muc#roomconfig_roomsecret")
            protected = flag("muc#roomconfig_passwordprotectedroom", bool(secret and secret[0]))
            if secret is not None or "muc#roomconfig_passwordprotectedroom" in values:
                room.password = secret[0] if protected and secret and secret[0] else None
            room.locked = False
            conn.log(
                f"MUC: {el.get('to')} configured: members_only={room.members_only} "
                f"moderated={room.moderated} password={'yes' if room.password else 'no'}"
            )
        await conn.iq_result(el)

    @staticmethod
    def room_info(room: _Room) -> str:
        """§6.4: the room's identity and the features of its type."""
        features = (
            NS_MUC,
            "muc_membersonly" if room.members_only else "muc_open",
            "muc_moderated" if room.moderated else "muc_unmoderated",
            "muc_passwordprotected" if room.password else "muc_unsecured",
            "muc_semianonymous",
            "muc_temporary",
        )
        return (
            f"<query xmlns='{NS_DISCO_INFO}'><identity category='conference' type='text'/>"
            + "".join(f"<feature var='{var}'/>" for var in features)
            + "</query>"
        )

    @staticmethod
    def form(room: _Room) -> str:
        def field_xml(var: str, kind: str, value: str) -> str:
            return f"<field var='{var}' type='{kind}'><value>{escape(value)}</value></field>"

        fields = (
            field_xml("FORM_TYPE", "hidden", ROOMCONFIG),
            field_xml("muc#roomconfig_membersonly", "boolean", "1" if room.members_only else "0"),
            field_xml("muc#roomconfig_moderatedroom", "boolean", "1" if room.moderated else "0"),
            field_xml("muc#roomconfig_passwordprotectedroom", "boolean", "1" if room.password else "0"),
            field_xml("muc#roomconfig_roomsecret", "text-private", room.password or ""),
        )
        return f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='{NS_DATA}' type='form'>{''.join(fields)}</x></query>"

    async def admin_set(
        self, conn: _Connection, el: ET.Element, query: ET.Element, room_jid: str, room: _Room
    ) -> None:
        """§8 (roles, by nick, moderators only) and §9/§10 (affiliations, by JID, admins/owners)."""
        item = query.find(f"{{{NS_MUC_ADMIN}}}item")
        if item is None or (item.get("role") is None) == (item.get("affiliation") is None):
            await conn.stanza_error(el, "bad-request", "modify")
        elif item.get("role") is not None:
            await self.set_role(conn, el, item, room_jid, room)
        else:
            await self.set_affiliation(conn, el, item, room_jid, room)

    async def set_role(
        self, conn: _Connection, el: ET.Element, item: ET.Element, room_jid: str, room: _Room
    ) -> None:
        role, nick = item.get("role", ""), item.get("nick", "")
        actor_nick = room.nick_of(conn)
        actor_is_moderator = actor_nick is not None and room.occupants[actor_nick].role == "moderator"
        if not actor_is_moderator:
            if not self.cfg.has("muc-anyone-kicks"):
                await conn.stanza_error(el, "forbidden", "auth")
                return
            conn.log(f"flaw muc-anyone-kicks: {conn.bare}, no moderator, sets a role")
        if role not in ROLES or not nick:
            await conn.stanza_error(el, "bad-request", "modify")
            return
        target = room.occupants.get(nick)
        if target is None:
            await conn.stanza_error(el, "item-not-found")
            return
        actor_affiliation = room.affiliation(conn.bare)
        higher = _rank(actor_affiliation) < _rank(room.affiliation(target.conn.bare))
        moderation = "moderator" in (role, target.role) and actor_affiliation not in ("owner", "admin")
        if higher or moderation:  # §8.2: not above one's own affiliation
            await conn.stanza_error(el, "not-allowed")
            return
        conn.log(f"MUC: {room_jid}/{nick} gets role {role}")
        if role != "none":  # voice granted or revoked (§8.3, §8.4): updated presence to all
            target.role = role
            await conn.iq_result(el)
            await self.broadcast(room_jid, room, nick, ())
            return
        # kicked (§8.2): the occupant first, then the moderator is told, then the others
        target.presence, target.role = self.stored(None, "unavailable"), "none"
        await self.broadcast(room_jid, room, nick, ("307",), [target.conn])
        await conn.iq_result(el)
        others = [o.conn for other, o in room.occupants.items() if other != nick]
        await self.broadcast(room_jid, room, nick, ("307",), others)
        self.remove(room_jid, room, nick)

    async def set_affiliation(
        self, conn: _Connection, el: ET.Element, item: ET.Element, room_jid: str, room: _Room
    ) -> None:
        affiliation, jid = item.get("affiliation", ""), bare_jid(item.get("jid", ""))
        actor = room.affiliation(conn.bare)
        if actor not in ("owner", "admin"):
            await conn.stanza_error(el, "forbidden", "auth")
            return
        if affiliation not in AFFILIATIONS or "@" not in jid:
            await conn.stanza_error(el, "bad-request", "modify")
            return
        previous = room.affiliation(jid)
        if actor == "admin" and (affiliation in ("owner", "admin") or previous in ("owner", "admin")):
            await conn.stanza_error(el, "not-allowed")
            return
        if (
            previous == "owner"
            and affiliation != "owner"
            and list(room.affiliations.values()).count("owner") == 1
        ):
            await conn.stanza_error(el, "conflict")  # the last owner (§10.2)
            return
        if affiliation == "none":
            room.affiliations.pop(jid, None)
        else:
            room.affiliations[jid] = affiliation
        conn.log(f"MUC: {jid} is {affiliation} in {room_jid}")
        await conn.iq_result(el)
        for nick, occupant in list(room.occupants.items()):
            if occupant.conn.jid is None or bare_jid(occupant.conn.jid) != jid:
                continue
            if affiliation == "outcast":  # banned (§9.1): removed with status 301
                await self.leave(room_jid, room, nick, codes=("301",), affiliation="outcast")
            elif room.members_only and affiliation == "none":  # §9.4: removed with status 321
                await self.leave(room_jid, room, nick, codes=("321",))
            else:
                occupant.role = room.default_role(affiliation)
                await self.broadcast(room_jid, room, nick, ())

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def stored(el: ET.Element | None, presence_type: str | None = None) -> ET.Element:
        """An occupant's presence as the room keeps it: ``el``'s payload without the join's <x/>."""
        presence = ET.Element(f"{{{NS_CLIENT}}}presence", {"type": presence_type} if presence_type else {})
        presence.extend(
            copy_module.deepcopy(c) for c in (() if el is None else el) if c.tag != f"{{{NS_MUC}}}x"
        )
        return presence

    @staticmethod
    def item(room: _Room, occupant: _Occupant, affiliation: str | None = None) -> ET.Element:
        x = ET.Element(f"{{{NS_MUC_USER}}}x")
        jid = occupant.conn.jid
        affiliation = affiliation or (room.affiliation(jid) if jid is not None else "none")
        ET.SubElement(x, f"{{{NS_MUC_USER}}}item", {"affiliation": affiliation, "role": occupant.role})
        return x

    async def broadcast(
        self,
        room_jid: str,
        room: _Room,
        nick: str,
        codes: tuple[str, ...],
        recipients: list[_Connection] | None = None,
        affiliation: str | None = None,
    ) -> None:
        """The presence of occupant ``nick`` to ``recipients`` (every occupant by default), with
        ``codes``, and status 110 in the occupant's own copy (§7.2.2); a status 201 (room
        created) only in that copy."""
        occupant = room.occupants[nick]
        for to in recipients if recipients is not None else [o.conn for o in room.occupants.values()]:
            x = self.item(room, occupant, affiliation)
            if to is occupant.conn:
                flawed = self.cfg.has("muc-no-self-presence-status")
                if flawed:
                    to.log("flaw muc-no-self-presence-status: no status 110")
                for code in codes if flawed else ("110", *codes):
                    ET.SubElement(x, f"{{{NS_MUC_USER}}}status", {"code": code})
            else:
                for code in codes:
                    if code != "201":
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
