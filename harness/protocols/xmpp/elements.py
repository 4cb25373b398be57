"""Namespaces, tags and small helpers over XMPP stream elements, shared by the XMPP actors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from harness.protocols.xmpp.match import NS_CLIENT, NS_STREAM
from harness.verdict import HarnessError

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_PING = "urn:xmpp:ping"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"  # XEP-0440
NS_SERVER = "jabber:server"  # the default namespace of server-to-server streams (RFC 6120 4.8.3)
NS_DIALBACK = "jabber:server:dialback"  # XEP-0220 db: elements
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"  # XEP-0220 stream feature

STREAM_TAG = f"{{{NS_STREAM}}}stream"
FEATURES_TAG = f"{{{NS_STREAM}}}features"
STREAM_ERROR_TAG = f"{{{NS_STREAM}}}error"
IQ_TAG = f"{{{NS_CLIENT}}}iq"

__all__ = [
    "FEATURES_TAG",
    "IQ_TAG",
    "NS_BIND",
    "NS_CLIENT",
    "NS_DIALBACK",
    "NS_DIALBACK_FEATURE",
    "NS_PING",
    "NS_SASL",
    "NS_SASL_CB",
    "NS_SERVER",
    "NS_SESSION",
    "NS_STANZAS",
    "NS_STREAM",
    "NS_STREAM_ERRORS",
    "NS_TLS",
    "STREAM_ERROR_TAG",
    "STREAM_TAG",
    "attr",
    "check_well_formed",
    "condition",
    "local",
    "namespace",
    "offered_mechanisms",
    "serialize",
]


def local(tag: str) -> str:
    """``{ns}name`` -> ``name``."""
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    """``{ns}name`` -> ``ns`` (``""`` without a namespace)."""
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def condition(el: ET.Element) -> str:
    """The defined condition of a SASL failure, stream error or stanza error (+ its text)."""
    container = el
    if el.tag == IQ_TAG or local(el.tag) in ("message", "presence"):
        err = el.find(f"{{{NS_CLIENT}}}error")
        container = err if err is not None else el
    cond = None
    text = None
    for child in container:
        if local(child.tag) == "text":
            text = (child.text or "").strip() or None
        elif cond is None:
            cond = local(child.tag)
    out = cond or "no condition"
    return f"{out} ({text})" if text else out


def attr(value: str) -> str:
    """An attribute value in single quotes, escaped."""
    return "'" + escape(value, {"'": "&apos;", '"': "&quot;"}) + "'"


def offered_mechanisms(features: ET.Element | None) -> list[str]:
    """The SASL mechanisms a ``<stream:features/>`` element offers, in its order."""
    if features is None:
        return []
    return [(m.text or "").strip() for m in features.iter(f"{{{NS_SASL}}}mechanism")]


def check_well_formed(xml: str, action: str = "send", hint: str = "") -> None:
    """:class:`HarnessError` unless ``xml`` is well-formed content of a client stream."""
    try:
        ET.fromstring(f"<stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}'>{xml}</stream:stream>")
    except ET.ParseError as exc:
        raise HarnessError(f"{action}: not well-formed XML ({exc}){hint}") from None


_XML_NS = "http://www.w3.org/XML/1998/namespace"


def serialize(el: ET.Element, open_only: bool = False, in_scope: str = NS_CLIENT) -> str:
    """An element as it reads on a client stream (for logs): ``stream:`` prefix for the stream
    namespace, ``xmlns`` only where the default namespace changes, no ``ns0:`` prefixes.
    ``open_only``: just the start tag, declaring the stream's namespaces (for a stream header)."""
    ns, name = namespace(el.tag), local(el.tag)
    parts: list[str] = []
    if ns == NS_STREAM:
        tag = f"stream:{name}"
        if open_only:
            parts.append(f" xmlns={attr(in_scope)} xmlns:stream={attr(NS_STREAM)}")
        child_scope = in_scope
    else:
        tag = name
        if ns != in_scope:
            parts.append(f" xmlns={attr(ns)}")
        child_scope = ns
    extra = 0
    for key, value in el.attrib.items():
        if key.startswith("{"):
            key_ns, key_name = namespace(key), local(key)
            if key_ns == _XML_NS:
                key = f"xml:{key_name}"
            else:
                extra += 1
                parts.append(f" xmlns:a{extra}={attr(key_ns)}")
                key = f"a{extra}:{key_name}"
        parts.append(f" {key}={attr(value)}")
    head = f"<{tag}{''.join(parts)}"
    if open_only:
        return head + ">"
    body = escape(el.text or "") + "".join(
        serialize(child, in_scope=child_scope) + escape(child.tail or "") for child in el
    )
    return f"{head}>{body}</{tag}>" if body else f"{head}/>"
