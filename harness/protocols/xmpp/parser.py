"""Incremental parsing of a server's XMPP stream into top-level elements and events.

An :class:`xml.etree.ElementTree.XMLPullParser` is fed piece by piece (split after every ``>``),
so each complete depth-1 element is known together with the exact raw text that carried it
(for the stream log).
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET

from harness.protocols.xmpp.match import closed_event, not_well_formed_event


class StreamParser:
    """Splits the server's byte stream into (kind, element, raw text) items.

    kinds: ``header`` (depth-0 start tag), ``element`` (complete depth-1 element), ``close``
    (end of the depth-0 element) and ``error`` (not well-formed; later bytes are only logged,
    as kind ``junk``). Call :meth:`reset` at every stream restart.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: ET.Element | None = None
        self._raw = bytearray()
        self.broken: str | None = None

    def _take_raw(self) -> str:
        text = bytes(self._raw).decode("utf-8", errors="replace")
        self._raw.clear()
        return text

    def feed(self, data: bytes) -> list[tuple[str, ET.Element | None, str]]:
        items: list[tuple[str, ET.Element | None, str]] = []
        if self.broken is not None:
            return [("junk", None, data.decode("utf-8", errors="replace"))]
        pos = 0
        while pos < len(data):
            gt = data.find(b">", pos)
            end = len(data) if gt < 0 else gt + 1
            piece = data[pos:end]
            pos = end
            self._raw += piece
            try:
                self._parser.feed(piece)
                flush = getattr(self._parser, "flush", None)  # expat >= 2.6 defers small tokens
                if flush is not None:
                    flush()
                events = list(self._parser.read_events())
            except ET.ParseError as exc:
                self.broken = str(exc)
                self._raw += data[pos:]
                items.append(("error", not_well_formed_event(str(exc)), self._take_raw()))
                return items
            for event, el in events:
                if event == "start":
                    self._depth += 1
                    if self._depth == 1:
                        self._root = el
                        items.append(("header", ET.Element(el.tag, dict(el.attrib)), self._take_raw()))
                else:
                    self._depth -= 1
                    if self._depth == 1:
                        items.append(("element", el, self._take_raw()))
                        if self._root is not None:
                            with contextlib.suppress(ValueError):
                                self._root.remove(el)
                    elif self._depth == 0:
                        items.append(("close", closed_event("stream"), self._take_raw()))
        return items
