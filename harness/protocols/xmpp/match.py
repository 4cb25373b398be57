"""Structural matching of received XMPP stream elements against patterns written in scenarios.

A pattern is a piece of XML. It is parsed inside an implicit root that declares
``xmlns='jabber:client'`` and two prefixes, so scenario authors write stanzas as they appear
on a client stream::

    stream  http://etherx.jabber.org/streams
    m       urn:interop:match          (matcher directives)

Children inherit their parent's default namespace as in ordinary XML, so
``<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>``
puts ``mechanism`` in the SASL namespace.

Rules (a pattern matches an element when all hold):

* the tag (namespace-aware) is equal, or the pattern element is the wildcard ``<m:any/>``;
* every attribute of the pattern exists on the element with an equal value; the value ``*``
  means "present, any value";
* every pattern child matches *some* child of the element (unordered; each pattern child is
  checked independently, so two pattern children may match the same element child);
* a pattern child with ``m:absent='true'`` matches when *no* child of the element matches it;
* pattern text, when not blank, equals the element's stripped text (``*``: any non-empty text);
* ``m:text-contains='...'``: the element's text contains the value;
* ``m:without='type id'``: the element has none of these attributes (e.g. an available
  presence is a ``<presence/>`` without ``type``).

A scenario's ``match`` may also be a list of patterns, meaning "any of these"
(:func:`compile_match` returns an :class:`AnyOf` then).

Events that are not elements are represented by elements in the ``m`` namespace, produced by
the raw actor: ``<m:closed what='stream|connection'/>`` when the server closed its stream or the
TCP connection, ``<m:not-well-formed>reason</m:not-well-formed>`` when the server sent bytes that
are not well-formed XML. Patterns may use them like any tag (``<m:closed/>``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_MATCH = "urn:interop:match"

ANY = f"{{{NS_MATCH}}}any"
CLOSED = f"{{{NS_MATCH}}}closed"
NOT_WELL_FORMED = f"{{{NS_MATCH}}}not-well-formed"
_M_ELEMENTS = {ANY, CLOSED, NOT_WELL_FORMED}

_ABSENT = f"{{{NS_MATCH}}}absent"
_TEXT_CONTAINS = f"{{{NS_MATCH}}}text-contains"
_WITHOUT = f"{{{NS_MATCH}}}without"
_M_ATTRIBUTES = {_ABSENT: "absent", _TEXT_CONTAINS: "text-contains", _WITHOUT: "without"}

_PREFIXES = {NS_STREAM: "stream", NS_MATCH: "m"}

_WRAP_OPEN = f"<m:pattern-root xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' xmlns:m='{NS_MATCH}'>"
_WRAP_CLOSE = "</m:pattern-root>"


class PatternError(ValueError):
    """A pattern in a scenario is not a valid pattern (bad XML, unknown directive...)."""


def closed_event(what: str) -> ET.Element:
    """The element standing for "the server closed its stream" (``stream``) or the TCP
    connection (``connection``)."""
    return ET.Element(CLOSED, {"what": what})


def not_well_formed_event(reason: str) -> ET.Element:
    el = ET.Element(NOT_WELL_FORMED)
    el.text = reason
    return el


def short_tag(tag: str) -> str:
    """``{http://etherx.jabber.org/streams}features`` -> ``stream:features``; client namespace
    dropped; other namespaces kept in Clark notation."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        if ns == NS_CLIENT:
            return local
        if ns in _PREFIXES:
            return f"{_PREFIXES[ns]}:{local}"
    return tag


def summarize(el: ET.Element, limit: int = 120) -> str:
    """One short line for an element: tag, the attributes that identify it, first child, text.

    Namespaces other than the stream prefixes are dropped: in a verdict reason the element
    names say enough, and the full evidence is in the stream log."""
    tag = short_tag(el.tag)
    parts = [tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag]
    for key in ("type", "id", "what", "mechanism", "from", "to", "version"):
        if key in el.attrib:
            parts.append(f"{key}={el.attrib[key]!r}")
    children = [short_tag(c.tag).rsplit("}", 1)[-1] for c in el]
    if children:
        shown = ",".join(children[:4]) + (",..." if len(children) > 4 else "")
        parts.append(f"[{shown}]")
    text = (el.text or "").strip()
    if text:
        parts.append(repr(text[:40] + ("..." if len(text) > 40 else "")))
    out = "<" + " ".join(parts) + ">"
    return out if len(out) <= limit else out[: limit - 4] + "...>"


@dataclass
class _Node:
    tag: str | None  # None: wildcard <m:any/>
    attrs: dict[str, str]
    text: str | None
    text_contains: str | None
    absent: bool
    without: tuple[str, ...] = ()  # attributes the element must not have
    children: list[_Node] = field(default_factory=list)

    # -- matching ----------------------------------------------------------------------------

    def match(self, el: ET.Element) -> bool:
        return self.explain(el) is None

    def explain(self, el: ET.Element) -> str | None:
        """None when ``el`` matches this node, else the reason (one line)."""
        if self.tag is not None and el.tag != self.tag:
            return f"element is {el.tag}, expected {self.tag}"
        for key, want in self.attrs.items():
            have = el.get(key)
            if have is None:
                return f"missing attribute {key}" + ("" if want == "*" else f"={want!r}")
            if want != "*" and have != want:
                return f"attribute {key} is {have!r}, expected {want!r}"
        for key in self.without:
            if el.get(key) is not None:
                return f"attribute {key}={el.get(key)!r} present, expected none"
        own_text = (el.text or "").strip()
        if self.text is not None:
            if self.text == "*":
                if not own_text:
                    return "text is empty, expected some text"
            elif own_text != self.text:
                return f"text is {own_text!r}, expected {self.text!r}"
        if self.text_contains is not None and self.text_contains not in (el.text or ""):
            return f"text {own_text!r} does not contain {self.text_contains!r}"
        for child in self.children:
            reason = child._explain_as_child(el)
            if reason is not None:
                return reason
        return None

    def _explain_as_child(self, parent: ET.Element) -> str | None:
        if self.absent:
            for cand in parent:
                if self.match(cand):
                    return f"unexpected child {self.describe_short()} (m:absent)"
            return None
        same_tag = []
        for cand in parent:
            if self.match(cand):
                return None
            if self.tag is None or cand.tag == self.tag:
                same_tag.append(cand)
        if len(same_tag) == 1 and self.children:
            return f"in child {same_tag[0].tag}: {self.explain(same_tag[0])}"
        extra = ""
        if same_tag:
            texts = [repr((c.text or "").strip()) for c in same_tag[:6] if (c.text or "").strip()]
            extra = f" (present: {', '.join(texts)})" if texts else f" ({len(same_tag)} of that name differ)"
        return f"missing child {self.describe_short()}{extra}"

    # -- description ---------------------------------------------------------------------------

    def describe_short(self) -> str:
        out = self.tag if self.tag is not None else "any element"
        for key, value in self.attrs.items():
            out += f" with {key}" + ("" if value == "*" else f"={value!r}")
        if self.text is not None:
            out += " with some text" if self.text == "*" else f" with text {self.text!r}"
        if self.text_contains is not None:
            out += f" with text containing {self.text_contains!r}"
        for key in self.without:
            out += f" without {key}"
        return out


class Pattern:
    """A compiled pattern. Create with :func:`compile_pattern`."""

    def __init__(self, source: str, root: _Node) -> None:
        self.source = source
        self._root = root

    @property
    def tag(self) -> str | None:
        """The tag the pattern's top element requires (None for ``<m:any/>``)."""
        return self._root.tag

    def attribute(self, name: str) -> str | None:
        """The value the pattern's top element requires for attribute ``name`` (``*``: any)."""
        return self._root.attrs.get(name)

    def matches(self, el: ET.Element) -> bool:
        return self._root.match(el)

    def explain(self, el: ET.Element) -> str:
        """Why ``el`` does not match (one line); ``"matches"`` when it does."""
        reason = self._root.explain(el)
        return "matches" if reason is None else reason

    def describe(self, limit: int = 160) -> str:
        """The pattern as written, on one line, without namespace declarations (they are noise
        in a verdict reason: the element names already say what is meant)."""
        text = _XMLNS.sub("", " ".join(self.source.split())).replace("> <", "><")
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def __repr__(self) -> str:
        return f"Pattern({self.describe()!r})"


_XMLNS = re.compile(r"""\s+xmlns(:\w+)?=(['"])[^'"]*\2""")
_BOOL = {"true": True, "1": True, "false": False, "0": False}


def _build(el: ET.Element, is_root: bool) -> _Node:
    if el.tag.startswith(f"{{{NS_MATCH}}}") and el.tag not in _M_ELEMENTS:
        known = ", ".join(sorted("m:" + t.rsplit("}", 1)[1] for t in _M_ELEMENTS))
        raise PatternError(f"unknown matcher element m:{el.tag.rsplit('}', 1)[1]}; known: {known}")
    attrs: dict[str, str] = {}
    absent = False
    text_contains = None
    without: tuple[str, ...] = ()
    for key, value in el.attrib.items():
        if key.startswith(f"{{{NS_MATCH}}}"):
            if key not in _M_ATTRIBUTES:
                known = ", ".join("m:" + v for v in _M_ATTRIBUTES.values())
                raise PatternError(
                    f"unknown matcher directive m:{key.rsplit('}', 1)[1]} on {short_tag(el.tag)}; "
                    f"known: {known}"
                )
            if key == _ABSENT:
                if value.strip().lower() not in _BOOL:
                    raise PatternError(f"m:absent must be 'true' or 'false', not {value!r}")
                absent = _BOOL[value.strip().lower()]
                if absent and is_root:
                    raise PatternError(
                        'm:absent is for children ("no child like this"); '
                        "for the whole element use an expect-nothing step"
                    )
            elif key == _WITHOUT:
                without = tuple(value.split())
            else:
                text_contains = value
        else:
            attrs[key] = value
    text = (el.text or "").strip() or None
    node = _Node(
        tag=None if el.tag == ANY else el.tag,
        attrs=attrs,
        text=text,
        text_contains=text_contains,
        absent=absent,
        without=without,
    )
    node.children = [_build(child, False) for child in el]
    return node


_POSITION = re.compile(r": line (\d+), column (\d+)$")


def compile_pattern(text: str) -> Pattern:
    """Parse a pattern (see the module documentation). Raises :class:`PatternError`."""
    if not isinstance(text, str):
        raise PatternError(f"a pattern is a string of XML, not {type(text).__name__}")
    source = text.strip()
    if not source:
        raise PatternError("empty pattern; write the element to match, e.g. <m:closed/>")
    if source.startswith("<?"):
        raise PatternError("a pattern is an element, without an XML declaration (<?xml ...?>)")
    try:
        wrapper = ET.fromstring(_WRAP_OPEN + source + _WRAP_CLOSE)
    except ET.ParseError as exc:
        line, column = exc.position
        if line == 1:
            column = max(column - len(_WRAP_OPEN), 0)
        msg = _POSITION.sub("", str(exc))
        hint = ""
        if "unbound prefix" in msg:
            hint = " (declare it with xmlns:PREFIX='...'; predeclared prefixes: stream, m)"
        raise PatternError(
            f"pattern is not well-formed XML: {msg} at line {line}, column {column + 1}{hint}"
        ) from None
    children = list(wrapper)
    if len(children) != 1:
        raise PatternError(f"a pattern must be exactly one element, found {len(children)}")
    if (wrapper.text or "").strip() or (children[0].tail or "").strip():
        raise PatternError("a pattern must be exactly one element, found text outside of it")
    return Pattern(source, _build(children[0], True))


class AnyOf:
    """Several patterns of which any one may match (``match: [<a/>, <b/>]`` in a scenario)."""

    def __init__(self, patterns: list[Pattern]) -> None:
        if len(patterns) < 2:
            raise ValueError("AnyOf needs at least two patterns")
        self.alternatives = patterns

    def matches(self, el: ET.Element) -> bool:
        return any(p.matches(el) for p in self.alternatives)

    def matching(self, el: ET.Element) -> Pattern | None:
        """The first alternative that ``el`` matches."""
        return next((p for p in self.alternatives if p.matches(el)), None)

    def describe(self, limit: int = 160) -> str:
        each = max(limit // len(self.alternatives), 40)
        return "any of: " + " | ".join(p.describe(each) for p in self.alternatives)

    def __repr__(self) -> str:
        return f"AnyOf({self.alternatives!r})"


Matcher = Pattern | AnyOf


def compile_match(spec: str | list[str]) -> Matcher:
    """A scenario's ``match``: one pattern (a string), or a non-empty list of patterns meaning
    "any of these". A list of one is that pattern. Raises :class:`PatternError`."""
    if isinstance(spec, str):
        return compile_pattern(spec)
    if not isinstance(spec, list | tuple):
        raise PatternError(f"match is a pattern or a list of patterns, not {type(spec).__name__}")
    if not spec:
        raise PatternError("match is an empty list; give at least one pattern")
    patterns = []
    for index, item in enumerate(spec):
        try:
            patterns.append(compile_pattern(item))
        except PatternError as exc:
            raise PatternError(f"alternative {index + 1}: {exc}") from None
    return patterns[0] if len(patterns) == 1 else AnyOf(patterns)


def alternatives(matcher: Matcher) -> list[Pattern]:
    """The patterns of a matcher (one for a plain pattern)."""
    return matcher.alternatives if isinstance(matcher, AnyOf) else [matcher]
