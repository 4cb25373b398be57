"""XML namespaces, JIDs and stanza serialization: the vocabulary every module of the double
(core and services) shares, kept apart so that none of them imports another for it."""

from __future__ import annotations

import copy as copy_module
import xml.etree.ElementTree as ET

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_REGISTER = "jabber:iq:register"
NS_ROSTER = "jabber:iq:roster"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def bare_jid(jid: str) -> str:
    return jid.split("/", 1)[0]


def domain_of(jid: str) -> str:
    return bare_jid(jid).rpartition("@")[2]


def _client_xml(el: ET.Element) -> str:
    """Serialize a stanza for the stream: jabber:client elements without prefix or xmlns."""
    copy = copy_module.deepcopy(el)
    for node in copy.iter():
        if node.tag.startswith(f"{{{NS_CLIENT}}}"):
            node.tag = node.tag[len(NS_CLIENT) + 2 :]
    # ElementTree names foreign namespaces ns0, ns1...: legal XML, which is all a client needs
    return ET.tostring(copy, encoding="unicode")
