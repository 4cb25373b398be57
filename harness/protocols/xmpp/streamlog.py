"""A per-actor, human-readable log of an XMPP stream: what was sent, received, and what happened.

File: ``<evidence_dir>/<actor>.xmpp.log``. Every line::

    <elapsed ms since the log was opened> <direction> <text>

with direction ``C->S`` (sent by the actor), ``S->C`` (received) or ``--`` (an event: TLS
established, connection closed...). Multi-line texts get the prefix on every line. Everything
goes through :func:`~harness.protocols.xmpp.redact.redact_xml_text` with the secrets first, and the
file is flushed after every write, so a crash still leaves the log behind.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from harness.protocols.xmpp.redact import redact_xml_text

if TYPE_CHECKING:
    from harness.actors import ActorContext

SENT = "C->S"
RECEIVED = "S->C"
EVENT = "--"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


class StreamLog:
    """Append-only stream log. Opened lazily at the first write (an actor that never did anything
    leaves no empty file); closed by :meth:`close`, reopened in append mode when written again."""

    def __init__(self, path: Path, secrets: Sequence[str] = (), title: str | None = None) -> None:
        self.path = Path(path)
        # Kept by reference: the run's secret list grows as actors are built (and a list shared
        # by several actors redacts every actor's password from every log).
        self._shared = secrets
        self._extra: list[str] = []
        self._title = title
        self._start = time.monotonic()
        self._file: TextIO | None = None

    @classmethod
    def for_actor(cls, ctx: ActorContext) -> StreamLog:
        title = f"actor {ctx.name} -> target {ctx.target.name} ({ctx.target.product}, {ctx.target.domain})"
        log = cls(Path(ctx.evidence_dir) / f"{ctx.name}.xmpp.log", ctx.secrets, title)
        if ctx.account is not None:
            log.add_secret(ctx.account.password)
        return log

    @property
    def secrets(self) -> list[str]:
        return [s for s in (*self._shared, *self._extra) if s]

    def add_secret(self, secret: str | None) -> None:
        """Redact this string from now on too (e.g. a password given in a step)."""
        if secret and secret not in self._extra:
            self._extra.append(secret)

    def sent(self, text: str) -> None:
        self._write(SENT, text)

    def received(self, text: str) -> None:
        self._write(RECEIVED, text)

    def event(self, text: str) -> None:
        self._write(EVENT, text)

    def redact(self, text: str) -> str:
        return redact_xml_text(text, self.secrets)

    def _open(self) -> TextIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
            if new:
                started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
                self._file.write(f"# xmpp stream log, {self._title or self.path.stem}, started {started}\n")
                self._file.write("# elapsed-ms direction text (C->S sent, S->C received, -- event)\n")
        return self._file

    def _write(self, direction: str, text: str) -> None:
        elapsed = (time.monotonic() - self._start) * 1000.0
        clean = _escape_controls(self.redact(text))
        prefix = f"{elapsed:10.1f} {direction:<4} "
        lines = clean.split("\n") or [""]
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        f = self._open()
        f.write("".join(prefix + line.rstrip("\r") + "\n" for line in lines))
        f.flush()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None
