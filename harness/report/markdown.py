"""Markdown that is safe in every common renderer, for every report written as Markdown
(matrix.md, behaviour.md, the diff summary): text from a run made inert, and tables."""

from __future__ import annotations

import re

from tabulate import tabulate

_FMT = "github"

_INERT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", **{c: f"&#{ord(c)};" for c in "\\`*[]|#~"}})
# an underscore between two letters or digits opens no emphasis in either renderer: kept readable
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")


def escape_md(text: str) -> str:
    """Text from a run (reasons, names, versions: a target controls much of it) made inert Markdown.

    One line (whitespace collapsed), and every character with a meaning in Markdown or HTML
    becomes a character reference: ``&``, ``<``, ``>`` (raw HTML and autolinks), ``|`` (ends a
    table cell), backslash and backtick (escapes, code spans), ``*``, ``_``, ``~`` (emphasis,
    strikethrough; not ``_`` inside a word, as in ``c2s_require_encryption``), ``[``, ``]``
    (links, images) and ``#`` (a heading's closing sequence). Backslash escapes would not do:
    Python-Markdown (MkDocs) passes ``\\<`` through as raw HTML. Character references are plain
    text in CommonMark and Python-Markdown alike, in table cells too.
    """
    return _EMPHASIS_UNDERSCORE.sub("&#95;", " ".join(text.split()).translate(_INERT))


def table(rows: list[list[str]], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt=_FMT, disable_numparse=True)
