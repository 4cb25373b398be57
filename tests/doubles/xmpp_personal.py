"""The double's personal data services: message archives (XEP-0313), private XML storage
(XEP-0049) and vCards (XEP-0054), with their features in service discovery (XEP-0030)."""

from __future__ import annotations

import copy as copy_module
import datetime as dt
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_service import DoubleService, service
from tests.doubles.xmpp_xml import NS_CLIENT, _client_xml, _local, bare_jid

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble, _Connection

FLAWS.update(
    {
        "mam-archive-open": "a MAM query to another user's bare JID returns that user's archive "
        "(results and an IQ result), XEP-0313 §8.1",
        "mam-results-before-error": "a MAM query to another user's bare JID is answered with the "
        "<forbidden/> error, but only after that user's archived messages were sent, XEP-0313 §8.1",
        "private-storage-open": "private XML storage addressed to another user's bare JID reads and "
        "writes that user's data, XEP-0049 §2.3",
        "private-storage-writable-by-others": "reading another user's private XML storage is "
        "refused, but writing it is not (it overwrites that user's data), XEP-0049 §2.3",
        "vcard-anyone-sets": "an IQ set with a vCard addressed to another user's bare JID replaces "
        "that user's vCard, XEP-0054 §3.2",
        "vcard-set-error-but-stored": "an IQ set with a vCard addressed to another user's bare JID "
        "is answered with <forbidden/>, but the vCard is replaced all the same, XEP-0054 §3.2",
    }
)

NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_PRIVATE = "jabber:iq:private"
NS_VCARD = "vcard-temp"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


@dataclass
class _Archived:
    uid: str
    stamp: str
    message: ET.Element  # as routed: from and to stamped


@dataclass
class _User:
    archive: list[_Archived] = field(default_factory=list)
    private: dict[str, ET.Element] = field(default_factory=dict)  # "{ns}tag" -> stored fragment
    vcard: ET.Element | None = None


@service
class PersonalDataService(DoubleService):
    """Per-account data of the double's users, stored on the server and reached at the user's
    bare JID.

    Service discovery (XEP-0030, answered by the core): the disco#info of the domain lists
    private storage and vcard-temp; that of the user's own bare JID, asked by the user,
    ``urn:xmpp:mam:2`` (and ``#extended``, without implementing it).

    Archives (XEP-0313): every message of type chat or normal with a body between two existing
    users of the double is archived for both (outgoing for the sender, incoming for the
    recipient) before it is routed, with a fresh UID. A query (IQ set, ``<query
    xmlns='urn:xmpp:mam:2'/>``) with no ``to`` or to the user's own bare JID gets every archived
    message (``<result/>`` messages with ``<forwarded/>``, then the IQ result with ``<fin/>``
    and an RSM set); to another user's bare JID, ``<forbidden/>`` (§8.1). Preferences (``<prefs
    default='always'/>``) are acknowledged; everything is archived whatever they say. Not
    modelled: filters, paging, archive metadata.

    Private XML storage (XEP-0049): a get or set with no ``to`` or to the user's own bare JID
    reads or writes the user's fragments (by qualified name; a get of a fragment never stored
    returns it empty); another user's bare JID: ``<forbidden/>`` (§2.3); a query without a child:
    ``<not-acceptable/>``.

    vCards (XEP-0054): a set with no ``to`` or to the user's own bare JID stores the vCard; a get
    returns it (an empty ``<vCard/>`` when none was stored); a get to another user's bare JID
    returns that user's vCard (``<service-unavailable/>`` when there is none or no such user); a
    set to another user's bare JID: ``<forbidden/>`` (§3.2).
    """

    def __init__(self, server: XmppDouble) -> None:
        super().__init__(server)
        self.users: dict[str, _User] = {}  # bare JID -> data

    def user(self, bare: str) -> _User:
        return self.users.setdefault(bare, _User())

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        kind = _local(el.tag)
        if kind == "message":
            self.archive(conn, el)
            return False
        if kind != "iq" or el.get("type") not in ("get", "set"):
            return False
        to = el.get("to", "")
        if "/" in to or not (to == "" or self.server.exists(to)):
            return False
        own = to in ("", conn.bare)
        handlers = {NS_MAM: self.mam, NS_PRIVATE: self.private, NS_VCARD: self.vcard}
        for child in el:
            namespace = child.tag[1:].split("}", 1)[0] if child.tag.startswith("{") else ""
            handler = handlers.get(namespace)
            if handler is not None:
                return await handler(conn, el, child, own)
        return False

    def disco_info(self, to: str, requester: _Connection) -> tuple[list[str], list[str]]:
        if to == self.cfg.domain:
            return [], [NS_PRIVATE, NS_VCARD]
        return [], ([NS_MAM, f"{NS_MAM}#extended"] if to == requester.bare else [])

    # -- message archives (XEP-0313) --------------------------------------------------------------

    def archive(self, conn: _Connection, el: ET.Element) -> None:
        """Archive a message between two users of the double, for both (see the class doc)."""
        to = el.get("to", "")
        if el.get("type", "normal") not in ("chat", "normal") or el.find(f"{{{NS_CLIENT}}}body") is None:
            return
        if not (to and self.server.exists(to)) or conn.jid is None:
            return
        stored = copy_module.deepcopy(el)
        stored.set("from", conn.jid)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for owner in dict.fromkeys((conn.bare, bare_jid(to))):
            self.user(owner).archive.append(_Archived(os.urandom(8).hex(), stamp, stored))
        conn.log(f"MAM: message from {conn.jid} to {to} archived")

    async def mam(self, conn: _Connection, el: ET.Element, child: ET.Element, own: bool) -> bool:
        name = _local(child.tag)
        if name == "prefs":
            if el.get("type") == "set" and not own:
                await conn.stanza_error(el, "forbidden", "auth")
                return True
            default = child.get("default", "always")
            prefs = f"<prefs xmlns='{NS_MAM}' default={quoteattr(default)}><always/><never/></prefs>"
            await conn.iq_result(el, prefs)
            return True
        if name != "query" or el.get("type") != "set":
            return False
        archive_jid = el.get("to") or conn.bare
        if not own:
            if self.cfg.has("mam-archive-open"):
                conn.log(f"flaw mam-archive-open: {conn.jid} reads the archive of {archive_jid}")
            elif self.cfg.has("mam-results-before-error"):
                conn.log(f"flaw mam-results-before-error: {conn.jid} gets the archive of {archive_jid}")
                await self.send_results(conn, child, archive_jid)
                await conn.stanza_error(el, "forbidden", "auth")
                return True
            else:
                await conn.stanza_error(el, "forbidden", "auth")
                return True
        archived = await self.send_results(conn, child, archive_jid)
        rsm = (
            f"<set xmlns='{NS_RSM}'><first index='0'>{archived[0].uid}</first><last>{archived[-1].uid}</last>"
            "<count>" + str(len(archived)) + "</count></set>"
            if archived
            else f"<set xmlns='{NS_RSM}'><count>0</count></set>"
        )
        await conn.iq_result(el, f"<fin xmlns='{NS_MAM}' complete='true'>{rsm}</fin>")
        return True

    async def send_results(self, conn: _Connection, query: ET.Element, archive_jid: str) -> list[_Archived]:
        archived = list(self.user(bare_jid(archive_jid)).archive)
        queryid = query.get("queryid")
        qid = f" queryid={quoteattr(queryid)}" if queryid is not None else ""
        for item in archived:
            await conn.send(
                f"<message to={quoteattr(conn.jid or '')} from={quoteattr(bare_jid(archive_jid))}"
                f" id='mam-{os.urandom(4).hex()}'><result xmlns='{NS_MAM}'{qid} id='{item.uid}'>"
                f"<forwarded xmlns='{NS_FORWARD}'><delay xmlns='{NS_DELAY}' stamp='{item.stamp}'/>"
                f"{_with_client_ns(item.message)}</forwarded></result></message>"
            )
        return archived

    # -- private XML storage (XEP-0049) -----------------------------------------------------------

    async def private(self, conn: _Connection, el: ET.Element, query: ET.Element, own: bool) -> bool:
        if _local(query.tag) != "query":
            return False
        owner = bare_jid(el.get("to") or conn.bare)
        is_set = el.get("type") == "set"
        if not own:
            if self.cfg.has("private-storage-open"):
                conn.log(f"flaw private-storage-open: {conn.jid} uses the private storage of {owner}")
            elif is_set and self.cfg.has("private-storage-writable-by-others"):
                conn.log(f"flaw private-storage-writable-by-others: {conn.jid} writes {owner}'s storage")
            else:
                await conn.stanza_error(el, "forbidden")
                return True
        fragments = list(query)
        if not fragments or (not is_set and len(fragments) > 1):
            await conn.stanza_error(el, "not-acceptable", "modify")
            return True
        storage = self.user(owner).private
        if is_set:
            for fragment in fragments:
                storage[fragment.tag] = copy_module.deepcopy(fragment)
            await conn.iq_result(el)
            return True
        stored = storage.get(fragments[0].tag)
        fragment = ET.tostring(
            stored if stored is not None else ET.Element(fragments[0].tag), encoding="unicode"
        )
        await conn.iq_result(el, f"<query xmlns='{NS_PRIVATE}'>{fragment}</query>")
        return True

    # -- vCards (XEP-0054) ------------------------------------------------------------------------

    async def vcard(self, conn: _Connection, el: ET.Element, vcard: ET.Element, own: bool) -> bool:
        if _local(vcard.tag) != "vCard":
            return False
        owner = bare_jid(el.get("to") or conn.bare)
        if el.get("type") == "set":
            if not own:
                if self.cfg.has("vcard-set-error-but-stored"):
                    conn.log(f"flaw vcard-set-error-but-stored: {conn.jid} replaces {owner}'s vCard")
                    self.user(owner).vcard = copy_module.deepcopy(vcard)
                if not self.cfg.has("vcard-anyone-sets"):
                    await conn.stanza_error(el, "forbidden", "auth")
                    return True
                conn.log(f"flaw vcard-anyone-sets: {conn.jid} replaces {owner}'s vCard")
            self.user(owner).vcard = copy_module.deepcopy(vcard)
            await conn.iq_result(el)
            return True
        stored = self.user(owner).vcard
        if stored is None and not own:
            await conn.stanza_error(el, "service-unavailable")
            return True
        text = (
            ET.tostring(stored, encoding="unicode") if stored is not None else f"<vCard xmlns='{NS_VCARD}'/>"
        )
        await conn.iq_result(el, text)
        return True


def _with_client_ns(el: ET.Element) -> str:
    """A jabber:client stanza inside another namespace's element: with its xmlns."""
    text = _client_xml(el)
    tag = _local(el.tag)
    return f"<{tag} xmlns='{NS_CLIENT}'" + text[len(tag) + 1 :] if text.startswith(f"<{tag}") else text
