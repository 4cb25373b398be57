"""The double's ad-hoc commands (XEP-0050) with one XEP-0133 administrative command."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_service import DoubleService, service
from tests.doubles.xmpp_xml import _local

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import _Connection

FLAWS.update(
    {
        "adhoc-no-admin-check": "any user may execute the XEP-0133 administrative commands, XEP-0133 §6",
        "adhoc-admin-refused": "the administrator is listed the administrative commands but refused "
        "(<forbidden/>) when executing them, XEP-0133 §4.20",
        "adhoc-wrong-condition": "a user without privileges who executes an administrative command gets "
        "<not-allowed/> instead of <forbidden/>, XEP-0133 §5",
    }
)

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DATA = "jabber:x:data"
NS_ADMIN = "http://jabber.org/protocol/admin"
GET_ONLINE_USERS_LIST = f"{NS_ADMIN}#get-online-users-list"
COMMANDS = {GET_ONLINE_USERS_LIST: "Get List of Online Users"}  # node -> name (admins only)


@service
class AdhocService(DoubleService):
    """Ad-hoc commands (XEP-0050) of the server's domain, for its administrators: the accounts
    called ``admin`` (the double's answer to the knob ``admins``).

    disco#items of the node http://jabber.org/protocol/commands (§2.2) lists the commands the
    requester may execute: "Get List of Online Users" (XEP-0133 §4.20) for an administrator,
    nothing for anyone else. Executing it (any action) as an administrator completes at once
    with a result form listing the bare JIDs of the users with a bound session (field
    onlineuserjids); anyone else gets <forbidden/> (XEP-0133 §5, §6), an unknown node
    <item-not-found/> (XEP-0050 §4.4). Not modelled: disco#info, multi-stage commands,
    sessions.
    """

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        if _local(el.tag) != "iq" or el.get("to") != self.cfg.domain:
            return False
        stanza_type = el.get("type")
        items = el.find(f"{{{NS_DISCO_ITEMS}}}query")
        command = el.find(f"{{{NS_COMMANDS}}}command")
        if stanza_type == "get" and items is not None and items.get("node") == NS_COMMANDS:
            await self.command_list(conn, el)
        elif stanza_type == "set" and command is not None:
            await self.execute(conn, el, command)
        else:
            return False
        return True

    @staticmethod
    def is_admin(conn: _Connection) -> bool:
        return conn.bare.partition("@")[0] == "admin"

    async def command_list(self, conn: _Connection, el: ET.Element) -> None:
        domain = self.cfg.domain
        items = "".join(
            f"<item jid={quoteattr(domain)} node={quoteattr(node)} name={quoteattr(name)}/>"
            for node, name in COMMANDS.items()
            if self.is_admin(conn)
        )
        await conn.iq_result(
            el, f"<query xmlns='{NS_DISCO_ITEMS}' node='{NS_COMMANDS}'>{items}</query>", sender=domain
        )

    async def execute(self, conn: _Connection, el: ET.Element, command: ET.Element) -> None:
        node = command.get("node", "")
        if node not in COMMANDS:
            await conn.stanza_error(el, "item-not-found")
            return
        admin = self.is_admin(conn)
        if admin and self.cfg.has("adhoc-admin-refused"):
            conn.log("flaw adhoc-admin-refused")
            await conn.stanza_error(el, "forbidden")
            return
        if not admin and self.cfg.has("adhoc-no-admin-check"):
            conn.log(f"flaw adhoc-no-admin-check: {conn.bare} executes {node}")
        elif not admin:
            condition = "not-allowed" if self.cfg.has("adhoc-wrong-condition") else "forbidden"
            await conn.stanza_error(el, condition)
            return
        online = sorted({full.split("/", 1)[0] for full in self.server.sessions})
        values = "".join(f"<value>{escape(jid)}</value>" for jid in online)
        conn.log(f"ad-hoc: {conn.bare} executes {node}")
        await conn.iq_result(
            el,
            f"<command xmlns='{NS_COMMANDS}' node={quoteattr(node)} sessionid='{os.urandom(6).hex()}'"
            f" status='completed'><x xmlns='{NS_DATA}' type='result'>"
            f"<field type='hidden' var='FORM_TYPE'><value>{NS_ADMIN}</value></field>"
            f"<field type='jid-multi' var='onlineuserjids' label='The list of all online users'>{values}"
            "</field></x></command>",
            sender=self.cfg.domain,
        )
