"""Server dialback (XEP-0220) as the peer-server actor plays it: the keys (XEP-0185), the stream
header of a server stream, and the ``db:`` elements.

Keys
    XEP-0185 §2: ``key = HMAC-SHA256(SHA256(secret) in hex, "Receiving Originating StreamID")``,
    in hex. A :class:`KeyBook` holds one actor's secret and every key the actor sent, so that
    the actor's listener answers a target's ``<db:verify/>`` with ``type='valid'`` exactly for a
    key the actor sent for that (originating, receiving, stream id), and ``invalid`` for
    anything else, in particular for the random "invalid" keys it sent on purpose.
Elements
    are built as text (the actor writes them on the stream as they are and logs that text);
    every builder escapes its attribute values.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from harness.protocols.xmpp.elements import NS_DIALBACK, NS_DIALBACK_FEATURE, NS_SERVER, NS_STREAM, attr

DB_RESULT_TAG = f"{{{NS_DIALBACK}}}result"
DB_VERIFY_TAG = f"{{{NS_DIALBACK}}}verify"
#: The stream feature a receiving server offers (XEP-0220 §2.1); ``<errors/>``: it understands
#: dialback error conditions (§2.4).
DIALBACK_FEATURE = f"<dialback xmlns='{NS_DIALBACK_FEATURE}'><errors/></dialback>"


def dialback_key(secret: str, receiving: str, originating: str, stream_id: str) -> str:
    """The XEP-0185 key (the HMAC key is the *hex* digest of the secret, as in §3's example)."""
    hashed = hashlib.sha256(secret.encode("utf-8")).hexdigest().encode("ascii")
    text = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(hashed, text, hashlib.sha256).hexdigest()


class KeyBook:
    """One actor's dialback secret and the keys it sent (what its listener vouches for)."""

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_hex(32)
        self._sent: set[tuple[str, str, str, str]] = set()

    def issue(self, originating: str, receiving: str, stream_id: str, valid: bool = True) -> str:
        """A key to send in ``<db:result/>``. ``valid=False``: random hex of the same length,
        which is not recorded, so :meth:`vouches` refuses it."""
        if not valid:
            return secrets.token_hex(32)
        key = dialback_key(self._secret, receiving, originating, stream_id)
        self._sent.add((originating, receiving, stream_id, key))
        return key

    def vouches(self, originating: str, receiving: str, stream_id: str, key: str) -> bool:
        """True iff this actor sent ``key`` for that originating/receiving domain and stream."""
        return (originating, receiving, stream_id, key.strip()) in self._sent


def stream_header(from_domain: str | None, to_domain: str | None, stream_id: str | None = None) -> str:
    """The opening of a server-to-server stream, declaring the ``db:`` prefix (XEP-0220 §2.1).
    ``None`` or ``""`` leaves an attribute out."""
    pairs = (("from", from_domain), ("to", to_domain), ("id", stream_id))
    attrs = "".join(f" {name}={attr(value)}" for name, value in pairs if value)
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{NS_SERVER}' xmlns:db='{NS_DIALBACK}' "
        f"xmlns:stream='{NS_STREAM}'{attrs} version='1.0'>"
    )


def db_result(from_domain: str, to_domain: str, key: str) -> str:
    """The originating server's request to be authorized for ``from_domain`` (XEP-0220 §2.1.1)."""
    return f"<db:result from={attr(from_domain)} to={attr(to_domain)}>{key}</db:result>"


def db_result_answer(from_domain: str, to_domain: str, valid: bool) -> str:
    """The receiving server's verdict on a ``<db:result/>`` (XEP-0220 §2.3)."""
    kind = "valid" if valid else "invalid"
    return f"<db:result from={attr(from_domain)} to={attr(to_domain)} type='{kind}'/>"


def db_verify_answer(from_domain: str, to_domain: str, stream_id: str, valid: bool) -> str:
    """The authoritative server's answer to ``<db:verify/>`` (XEP-0220 §2.2.2)."""
    kind = "valid" if valid else "invalid"
    return f"<db:verify from={attr(from_domain)} to={attr(to_domain)} id={attr(stream_id)} type='{kind}'/>"
