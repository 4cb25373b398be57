"""The double's personal eventing service (XEP-0163 PEP, on XEP-0060 publish-subscribe): every
account's bare JID is a virtual pubsub service."""

from __future__ import annotations

import copy as copy_module
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from tests.doubles.xmpp_config import FLAWS
from tests.doubles.xmpp_service import DoubleService, service
from tests.doubles.xmpp_xml import NS_CLIENT, NS_STANZAS, _client_xml, _local, bare_jid

if TYPE_CHECKING:
    from tests.doubles.xmpp_server import XmppDouble, _Connection

FLAWS.update(
    {
        "pep-presence-model-open": "a PEP node with the presence access model gives its items to "
        "users without a presence subscription to the owner, XEP-0060 §6.5.9.6",
        "pep-presence-forbidden": "a user without a presence subscription asking for the items of a "
        "presence-access node gets <forbidden/> instead of <not-authorized/> (as Prosody 0.12 "
        "answers), XEP-0060 §6.5.9.6",
        "pep-whitelist-open": "a PEP node with the whitelist access model gives its items to the "
        "owner's presence subscribers, XEP-0060 §6.5.9.8 / XEP-0223 §2",
        "pep-whitelist-forbidden": "a user not on the whitelist asking for the items of a whitelist "
        "node gets <forbidden/> instead of <not-allowed/> with <closed-node/> (as Prosody 0.12 "
        "answers), XEP-0060 §6.5.9.8",
        "pep-notify-unauthorized": "a PEP publish notifies every available session of the double's "
        "other users, whatever the node's access model, XEP-0163 §4",
        "pep-anyone-publishes": "anyone may publish to a user's PEP node (the item is stored and "
        "notified), XEP-0060 §7.1.3.1 / XEP-0163 §2.2",
        "pep-refused-publish-broadcast": "a publish by someone other than the owner gets <forbidden/>, "
        "but the item is stored and notified all the same, XEP-0060 §7.1.3.1",
        "pep-refused-publish-stored": "a publish by someone other than the owner gets <forbidden/> "
        "and is not notified, but the item is stored all the same, XEP-0060 §7.1.3.1",
    }
)

NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_PUBSUB_EVENT = f"{NS_PUBSUB}#event"
NS_PUBSUB_ERRORS = f"{NS_PUBSUB}#errors"
NS_PUBLISH_OPTIONS = f"{NS_PUBSUB}#publish-options"
NS_DATA = "jabber:x:data"

ACCESS_MODELS = ("open", "presence", "whitelist")  # roster and authorize are not modelled
# the XEP-0060 features of every account (XEP-0163 §6.1; access-presence: the default model)
PEP_FEATURES = tuple(
    f"{NS_PUBSUB}#{name}"
    for name in (
        "access-presence",
        "auto-create",
        "persistent-items",
        "publish",
        "publish-options",
        "retrieve-items",
        "subscribe",
    )
)
# publish-options fields the double knows (XEP-0060 §7.1.5: unknown fields are refused)
KNOWN_OPTIONS = ("FORM_TYPE", "pubsub#access_model", "pubsub#persist_items")


@dataclass
class _Node:
    access_model: str = "presence"  # the PEP default (XEP-0163 §5)
    items: dict[str, ET.Element] = field(default_factory=dict)  # item id -> <item/>, oldest first
    subscribers: list[str] = field(default_factory=list)  # JIDs of explicit subscriptions


@service
class PepService(DoubleService):
    """A PEP service (XEP-0163) at every account's bare JID, as much as the authorization
    scenarios use.

    Service discovery: the disco#info of every account's bare JID (without a node, answered by
    the core) lists the identity pubsub/pep and :data:`PEP_FEATURES` (XEP-0163 §6.1).

    Publish (XEP-0060 §7.1): only the owner publishes (XEP-0163 §2.2); anyone else gets
    <forbidden/> (§7.1.3.1). A node that does not exist is created (auto-create) with the
    access model of the publish-options (§7.1.5) or the default "presence"; an existing node
    whose model differs from the options: <conflict/> with <precondition-not-met/>; an unknown
    option field: <bad-request/>. Items are kept by id (a new item with an existing id replaces
    it). Event notifications (``<message type='headline'>`` from the owner's bare JID) go to the
    node's explicit subscribers that the access model admits; entity capabilities are not
    modelled, so there are no implicit (presence-based) notifications.

    Retrieve items (§6.5) and subscribe (§6.1): the owner always; otherwise per access model:
    "open" anyone; "presence" users to whom the owner's roster gives a subscription "from" or
    "both" (else <not-authorized/> with <presence-subscription-required/>, §6.5.9.6, §6.1.3.2);
    "whitelist" nobody but the owner (the whitelist is not manageable: <not-allowed/> with
    <closed-node/>, §6.5.9.8, §6.1.3.4). A node that does not exist: <item-not-found/>. A
    subscription sends the node's last item at once (XEP-0163 §4.3.4). Other pubsub requests:
    <feature-not-implemented/>.
    """

    def __init__(self, server: XmppDouble) -> None:
        super().__init__(server)
        self.nodes: dict[str, dict[str, _Node]] = {}  # owner's bare JID -> node id -> node

    async def on_stanza(self, conn: _Connection, el: ET.Element) -> bool:
        if _local(el.tag) != "iq" or el.get("type") not in ("get", "set"):
            return False
        to = el.get("to", "")
        owner = bare_jid(to) if to else conn.bare
        if "/" in to or "@" not in owner or not self.server.exists(owner):
            return False
        pubsub = el.find(f"{{{NS_PUBSUB}}}pubsub")
        if pubsub is None:
            return False
        await self.on_pubsub(conn, el, pubsub, owner)
        return True

    def disco_info(self, to: str, requester: _Connection) -> tuple[list[str], list[str]]:
        """XEP-0163 §6.1: every account is a PEP service."""
        if "@" not in to:  # the server's domain
            return [], []
        return ["<identity category='pubsub' type='pep'/>"], [NS_PUBSUB, *PEP_FEATURES]

    # -- replies -----------------------------------------------------------------------------------

    @staticmethod
    async def error(
        conn: _Connection,
        el: ET.Element,
        owner: str,
        error_type: str,
        condition: str,
        pubsub_condition: str = "",
    ) -> None:
        """An IQ error from the owner's bare JID, with a pubsub-specific condition if given."""
        extra = f"<{pubsub_condition} xmlns='{NS_PUBSUB_ERRORS}'/>" if pubsub_condition else ""
        conn.log(f"PEP: <iq> to {owner}: {condition} {pubsub_condition}".rstrip())
        await conn.send(
            f"<iq type='error' id={quoteattr(el.get('id', ''))} from={quoteattr(owner)} to={quoteattr(conn.jid or '')}>"
            f"<error type='{error_type}'><{condition} xmlns='{NS_STANZAS}'/>{extra}</error></iq>"
        )

    # -- pubsub ------------------------------------------------------------------------------------

    async def on_pubsub(self, conn: _Connection, el: ET.Element, pubsub: ET.Element, owner: str) -> None:
        publish = pubsub.find(f"{{{NS_PUBSUB}}}publish")
        items = pubsub.find(f"{{{NS_PUBSUB}}}items")
        subscribe = pubsub.find(f"{{{NS_PUBSUB}}}subscribe")
        if el.get("type") == "set" and publish is not None:
            await self.publish(conn, el, pubsub, publish, owner)
        elif el.get("type") == "get" and items is not None:
            await self.retrieve(conn, el, items, owner)
        elif el.get("type") == "set" and subscribe is not None:
            await self.subscribe(conn, el, subscribe, owner)
        else:
            conn.log("PEP: pubsub request not modelled")
            await self.error(conn, el, owner, "cancel", "feature-not-implemented")

    def access_error(self, owner: str, node: _Node, requester: str) -> tuple[str, str, str] | None:
        """Why ``requester`` (a bare JID) may not retrieve items of (or subscribe to) ``node``:
        (error type, condition, pubsub condition), or None when it may (XEP-0060 §4.5, §6.5.1)."""
        cfg = self.cfg
        if requester == owner or node.access_model == "open":
            return None
        if node.access_model == "presence":
            item = self.server.rosters.get(owner, {}).get(requester)
            if item is not None and item.from_:
                return None
            if cfg.has("pep-presence-model-open"):
                self.server.log(f"flaw pep-presence-model-open: {requester} reads {owner}'s node")
                return None
            if cfg.has("pep-presence-forbidden"):
                return ("auth", "forbidden", "")
            return ("auth", "not-authorized", "presence-subscription-required")
        # whitelist: the owner only (the whitelist cannot be managed in the double)
        if cfg.has("pep-whitelist-open"):
            item = self.server.rosters.get(owner, {}).get(requester)
            if item is not None and item.from_:
                self.server.log(f"flaw pep-whitelist-open: {requester} reads {owner}'s node")
                return None
        if cfg.has("pep-whitelist-forbidden"):
            return ("auth", "forbidden", "")
        return ("cancel", "not-allowed", "closed-node")

    async def publish(
        self, conn: _Connection, el: ET.Element, pubsub: ET.Element, publish: ET.Element, owner: str
    ) -> None:
        cfg = self.cfg
        node_id = publish.get("node", "")
        if not node_id:
            await self.error(conn, el, owner, "modify", "bad-request", "nodeid-required")
            return
        item = publish.find(f"{{{NS_PUBSUB}}}item")
        item = copy_module.deepcopy(item) if item is not None else ET.Element(f"{{{NS_PUBSUB}}}item")
        item_id = item.get("id") or os.urandom(8).hex()
        item.set("id", item_id)
        refused = owner != conn.bare
        if refused and cfg.has("pep-anyone-publishes"):
            conn.log(f"flaw pep-anyone-publishes: {conn.bare} publishes to {owner}")
            refused = False
        if refused:  # XEP-0163 §2.2: the owner is the only publisher; XEP-0060 §7.1.3.1
            await self.error(conn, el, owner, "auth", "forbidden")
            node = self.nodes.get(owner, {}).get(node_id)
            if node is not None and cfg.has("pep-refused-publish-broadcast"):
                conn.log("flaw pep-refused-publish-broadcast: the refused item is stored and notified")
                node.items[item_id] = item
                await self.notify(owner, node_id, node, item)
            elif node is not None and cfg.has("pep-refused-publish-stored"):
                conn.log("flaw pep-refused-publish-stored: the refused item is stored")
                node.items[item_id] = item
            return
        options = self.publish_options(pubsub)
        if options is None:
            await self.error(conn, el, owner, "modify", "bad-request", "invalid-options")
            return
        wanted = options.get("pubsub#access_model")
        if wanted is not None and wanted not in ACCESS_MODELS:
            await self.error(conn, el, owner, "cancel", "conflict", "precondition-not-met")
            return
        node = self.nodes.setdefault(owner, {}).get(node_id)
        if node is None:  # auto-create (XEP-0163 §3), with the options as configuration (§7.1.5)
            node = self.nodes[owner][node_id] = _Node(access_model=wanted or "presence")
            conn.log(f"PEP: {owner} node {node_id} created, access model {node.access_model}")
        elif wanted is not None and wanted != node.access_model:
            await self.error(conn, el, owner, "cancel", "conflict", "precondition-not-met")
            return
        node.items.pop(item_id, None)
        node.items[item_id] = item
        await conn.iq_result(
            el,
            f"<pubsub xmlns='{NS_PUBSUB}'><publish node={quoteattr(node_id)}><item id={quoteattr(item_id)}/>"
            "</publish></pubsub>",
            sender=owner,
        )
        await self.notify(owner, node_id, node, item)

    @staticmethod
    def publish_options(pubsub: ET.Element) -> dict[str, str] | None:
        """The fields of the publish-options form (empty without one); None when a field is
        unknown or the form type is wrong (XEP-0060 §7.1.5)."""
        form = pubsub.find(f"{{{NS_PUBSUB}}}publish-options/{{{NS_DATA}}}x")
        if form is None:
            return {}
        values = {}
        for fld in form.findall(f"{{{NS_DATA}}}field"):
            var = fld.get("var", "")
            if var not in KNOWN_OPTIONS:
                return None
            values[var] = (fld.findtext(f"{{{NS_DATA}}}value") or "").strip()
        if values.get("FORM_TYPE") != NS_PUBLISH_OPTIONS:
            return None
        return values

    async def notify(self, owner: str, node_id: str, node: _Node, item: ET.Element) -> None:
        """Event notifications of ``item`` to the subscribers the access model admits."""
        recipients = [
            jid for jid in node.subscribers if self.access_error(owner, node, bare_jid(jid)) is None
        ]
        if self.cfg.has("pep-notify-unauthorized"):
            others = [
                conn.jid
                for conns in self.server.sessions.values()
                for conn in conns
                if conn.jid and conn.presence is not None and bare_jid(conn.jid) != owner
            ]
            self.server.log(f"flaw pep-notify-unauthorized: notifying {others}")
            recipients += [jid for jid in others if jid not in recipients]
        for to in recipients:
            await self.send_event(owner, node_id, item, to)

    async def send_event(self, owner: str, node_id: str, item: ET.Element, to: str) -> None:
        message = ET.Element(f"{{{NS_CLIENT}}}message", {"type": "headline", "from": owner, "to": to})
        event = ET.SubElement(message, f"{{{NS_PUBSUB_EVENT}}}event")
        items = ET.SubElement(event, f"{{{NS_PUBSUB_EVENT}}}items", {"node": node_id})
        copied = ET.SubElement(items, f"{{{NS_PUBSUB_EVENT}}}item", dict(item.attrib))
        copied.extend(copy_module.deepcopy(child) for child in item)
        targets = self.server.sessions_for(to) if "/" in to else self.server.available(to)
        await self.server.deliver(message, targets)

    async def accessible(self, conn: _Connection, el: ET.Element, owner: str, node_id: str) -> _Node | None:
        """The node, when it exists and its access model lets the requester in; otherwise the
        requester gets the error and None comes back."""
        node = self.nodes.get(owner, {}).get(node_id)
        refusal = (
            ("cancel", "item-not-found", "") if node is None else self.access_error(owner, node, conn.bare)
        )
        if refusal is not None:
            await self.error(conn, el, owner, *refusal)
            return None
        return node

    async def retrieve(self, conn: _Connection, el: ET.Element, items: ET.Element, owner: str) -> None:
        node_id = items.get("node", "")
        node = await self.accessible(conn, el, owner, node_id)
        if node is None:
            return
        listed = "".join(_client_xml(item) for item in node.items.values())
        await conn.iq_result(
            el,
            f"<pubsub xmlns='{NS_PUBSUB}'><items node={quoteattr(node_id)}>{listed}</items></pubsub>",
            sender=owner,
        )

    async def subscribe(self, conn: _Connection, el: ET.Element, subscribe: ET.Element, owner: str) -> None:
        node_id, jid = subscribe.get("node", ""), subscribe.get("jid", "")
        if bare_jid(jid) != conn.bare:  # XEP-0060 §6.1.3.1
            await self.error(conn, el, owner, "modify", "bad-request", "invalid-jid")
            return
        node = await self.accessible(conn, el, owner, node_id)
        if node is None:
            return
        if jid not in node.subscribers:
            node.subscribers.append(jid)
        conn.log(f"PEP: {jid} subscribed to {owner} node {node_id}")
        await conn.iq_result(
            el,
            f"<pubsub xmlns='{NS_PUBSUB}'><subscription node={quoteattr(node_id)} jid={quoteattr(jid)}"
            " subscription='subscribed'/></pubsub>",
            sender=owner,
        )
        if node.items:  # XEP-0163 §4.3.4: the last published item to the new subscriber
            await self.send_event(owner, node_id, list(node.items.values())[-1], jid)
