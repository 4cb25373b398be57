"""SASL on a client connection (RFC 6120 §6): PLAIN, SCRAM (with channel binding) and EXTERNAL,
their failure conditions and the retry limit; with the flaws that break each of them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from tests.doubles.saslprep import SaslprepError, saslprep
from tests.doubles.xmpp_connection import ConnectionBase, _Close, _Restart
from tests.doubles.xmpp_pki import tls_server_end_point, xmpp_addrs
from tests.doubles.xmpp_xml import NS_SASL


@dataclass
class _Scram:
    """A SCRAM exchange between its two client messages: what the proof is checked against."""

    mechanism: str
    hash_name: str
    plus: bool
    gs2_header: bytes
    authzid: str | None
    user: str
    client_first_bare: str
    server_first: str
    nonce: str
    salt: bytes
    cb_type: str | None


def _saslname(value: str) -> str | None:
    """RFC 5802 saslname decoding: ``=2C`` -> ``,``, ``=3D`` -> ``=``; None when malformed."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "=":
            code = value[i : i + 3]
            if code == "=2C":
                out.append(",")
            elif code == "=3D":
                out.append("=")
            else:
                return None
            i += 3
        elif value[i] == ",":
            return None
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


class SaslBase(ConnectionBase):
    """How an exchange ends (success, or a failure counted against the retry limit) and the
    checks every mechanism shares (payload encoding, password, authorization identity)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scram: _Scram | None = None
        self.failures = 0

    async def sasl_failure(self, condition: str, text: str | None = None) -> None:
        cfg = self.cfg
        wrong = {
            "invalid-mechanism": ("wrong-condition-invalid-mechanism", "not-authorized"),
            "incorrect-encoding": ("wrong-condition-incorrect-encoding", "malformed-request"),
            "malformed-request": ("wrong-condition-malformed-request", "not-authorized"),
            "aborted": ("wrong-condition-abort", "not-authorized"),
        }.get(condition)
        if wrong is not None and cfg.has(wrong[0]):
            self.log(f"flaw {wrong[0]}: {condition} -> {wrong[1]}")
            condition = wrong[1]
        self.scram = None
        extra = f"<text xml:lang='en'>{escape(text)}</text>" if text else ""
        self.log(f"SASL failure {condition}")
        await self.send(f"<failure xmlns='{NS_SASL}'><{condition}/>{extra}</failure>")
        if condition == "aborted":
            return
        self.failures += 1
        failed = self.server.failed_logins
        failed[self.peer_address] = failed.get(self.peer_address, 0) + 1
        if self.failures >= cfg.max_auth_failures and not cfg.has("unlimited-retries"):
            if cfg.has("retry-limit-without-stream-error"):
                self.drop()
            elif cfg.has("idle-timeout-instead-of-retry-limit"):
                await self.stream_error("connection-timeout", "idle connection")
            else:
                await self.stream_error("policy-violation", "too many failed authentication attempts")
            raise _Close

    async def sasl_success(self, user: str, additional: bytes = b"") -> None:
        payload = base64.b64encode(additional).decode() if additional else ""
        self.user = user
        self.scram = None
        self.log(f"SASL success as {user}")
        await self.send(
            f"<success xmlns='{NS_SASL}'>{payload}</success>" if payload else f"<success xmlns='{NS_SASL}'/>"
        )
        raise _Restart

    @staticmethod
    def _decode(text: str | None) -> bytes | None:
        body = "".join((text or "").split())
        if body in ("", "="):
            return b""
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _password_matches(self, user: str, given: str) -> bool:
        stored = self.cfg.accounts.get(user)
        if stored is None:
            return False
        if self.cfg.has("no-saslprep"):
            return hmac.compare_digest(stored.encode(), given.encode())
        try:
            return hmac.compare_digest(saslprep(stored).encode(), saslprep(given).encode())
        except SaslprepError:
            return False

    def _authorize(self, authcid: str, authzid: str | None) -> str | None:
        """The user the session becomes, or None when ``authzid`` may not be assumed."""
        if not authzid or authzid in (authcid, f"{authcid}@{self.cfg.domain}"):
            return authcid
        if self.cfg.has("accept-any-authzid"):
            user = authzid.split("/", 1)[0].split("@", 1)[0]
            self.log(f"flaw accept-any-authzid: {authcid} acts as {authzid}")
            return user
        return None


class ScramMixin(SaslBase):
    """SCRAM-SHA-1, SCRAM-SHA-256 and SCRAM-SHA-1-PLUS (RFC 5802, RFC 7677), with channel binding
    (RFC 5929): the exchange of two messages and its proofs."""

    def _cb_data(self, cb_type: str) -> bytes | None:
        flawed = self.cfg.has("scram-plus-wrong-channel-binding")
        if cb_type == "tls-server-end-point":
            presented = self.server.cert_der(wrong_name=self.direct and self.cfg.has("direct-tls-wrong-cert"))
            return tls_server_end_point(presented, flawed=flawed)
        ssl_obj = self.writer.get_extra_info("ssl_object")
        if cb_type == "tls-unique" and ssl_obj is not None and ssl_obj.version() != "TLSv1.3":
            data = ssl_obj.get_channel_binding("tls-unique")
            return data[::-1] if flawed and data else data
        return None

    async def scram_first(self, mechanism: str, data: bytes) -> None:
        cfg = self.cfg
        try:
            text = data.decode("utf-8")
            flag, authz, bare = text.split(",", 2)
        except (UnicodeDecodeError, ValueError):
            await self.sasl_failure("malformed-request")
            return
        plus = mechanism.endswith("-PLUS")
        cb_type = flag[2:] if flag.startswith("p=") else None
        if (flag not in ("n", "y") and cb_type is None) or plus != (cb_type is not None):
            await self.sasl_failure("malformed-request")
            return
        if authz and not authz.startswith("a="):
            await self.sasl_failure("malformed-request")
            return
        authzid = _saslname(authz[2:]) if authz else None
        attrs = bare.split(",")
        if (
            len(attrs) < 2
            or not attrs[0].startswith("n=")
            or not attrs[1].startswith("r=")
            or (authz and authzid is None)
        ):
            await self.sasl_failure("malformed-request")
            return
        if any(a.startswith("m=") for a in attrs[2:]):
            await self.sasl_failure("malformed-request", "extensions not supported")
            return
        user = _saslname(attrs[0][2:])
        cnonce = attrs[1][2:]
        if not user or not cnonce:
            await self.sasl_failure("malformed-request")
            return
        if cb_type is not None and (cb_type not in cfg.channel_bindings or self._cb_data(cb_type) is None):
            await self.sasl_failure("not-authorized", f"channel binding type {cb_type} not supported")
            return
        if flag == "y" and self.tls and any(m.endswith("-PLUS") for m in cfg.offered(True)):
            await self.sasl_failure("not-authorized", "channel binding downgrade")  # RFC 5802 §6
            return
        if user not in cfg.accounts and cfg.has("reveal-unknown-user"):
            await self.sasl_failure("account-disabled", "no such account")
            return
        nonce = cnonce + base64.b64encode(os.urandom(18)).decode()
        salt = self.server.salt(user)
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={cfg.scram_iterations}"
        hash_name = mechanism.removesuffix("-PLUS")[len("SCRAM-") :].lower().replace("-", "")
        self.scram = _Scram(
            mechanism,
            hash_name,
            plus,
            f"{flag},{authz},".encode(),
            authzid,
            user,
            bare,
            server_first,
            nonce,
            salt,
            cb_type,
        )
        await self.send(
            f"<challenge xmlns='{NS_SASL}'>{base64.b64encode(server_first.encode()).decode()}</challenge>"
        )

    def _salted(self, state: _Scram, password: str) -> bytes:
        cfg = self.cfg
        if cfg.has("no-saslprep"):
            prepared = password
        else:
            try:
                prepared = saslprep(password, stored=True)
            except SaslprepError:
                prepared = password
        hash_name = state.hash_name
        if hash_name == "sha256" and cfg.has("scram-sha-256-wrong-keys"):
            hash_name = "sha1"  # only SCRAM-SHA-1 keys were stored
        return hashlib.pbkdf2_hmac(hash_name, prepared.encode(), state.salt, cfg.scram_iterations)

    async def on_response(self, el: ET.Element) -> None:
        cfg = self.cfg
        state = self.scram
        data = self._decode(el.text)
        if state is None:
            await self.sasl_failure("malformed-request", "no exchange in progress")
            return
        if data is None:
            await self.sasl_failure("incorrect-encoding")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            await self.sasl_failure("malformed-request")
            return
        without_proof, sep, proof_part = text.rpartition(",p=")
        attrs = dict(p.split("=", 1) for p in without_proof.split(",") if "=" in p)
        if not sep or "c" not in attrs or "r" not in attrs:
            await self.sasl_failure("malformed-request")
            return
        if attrs["r"] != state.nonce:
            await self.sasl_failure("not-authorized", "nonce mismatch")
            return
        try:
            channel = base64.b64decode(attrs["c"], validate=True)
            proof = base64.b64decode(proof_part, validate=True)
        except (binascii.Error, ValueError):
            await self.sasl_failure("malformed-request")
            return
        cb = self._cb_data(state.cb_type) if state.cb_type else b""
        if not (state.plus and cfg.has("plus-ignores-binding")) and channel != state.gs2_header + (cb or b""):
            await self.sasl_failure("not-authorized", "channel binding mismatch")
            return
        password = cfg.accounts.get(state.user)
        if password is None:
            await self.sasl_failure("not-authorized")
            return
        h = state.hash_name
        salted = self._salted(state, password)
        client_key = hmac.new(salted, b"Client Key", h).digest()
        stored_key = hashlib.new(h, client_key).digest()
        auth_message = f"{state.client_first_bare},{state.server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, h).digest()
        right = len(proof) == len(signature) and hmac.compare_digest(
            hashlib.new(h, bytes(a ^ b for a, b in zip(proof, signature, strict=True))).digest(), stored_key
        )
        if not right and not cfg.has("accept-any-password"):
            await self.sasl_failure("not-authorized")
            return
        user = self._authorize(state.user, state.authzid)
        if user is None:
            await self.sasl_failure("invalid-authzid")
            return
        server_key = hmac.new(salted, b"Server Key", h).digest()
        if cfg.has("scram-bad-server-signature"):
            server_key = client_key
        verifier = base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
        await self.sasl_success(user, f"v={verifier}".encode())


class SaslMixin(ScramMixin):
    """The SASL elements of a stream (``<auth/>``, ``<abort/>``) and the mechanisms of one step,
    PLAIN (RFC 4616) and EXTERNAL with a client certificate (XEP-0178)."""

    async def on_auth(self, el: ET.Element) -> None:
        cfg = self.cfg
        self.scram = None  # a new <auth/> replaces an unfinished exchange
        mechanism = el.get("mechanism", "")
        if self.user is not None:
            await self.stream_error("policy-violation", "already authenticated")
            raise _Close
        banned = self.server.failed_logins.get(self.peer_address, 0) >= cfg.max_failures_per_address
        if banned and not cfg.has("unlimited-failed-logins"):
            await self.stream_error("policy-violation", f"too many failed logins from {self.peer_address}")
            raise _Close
        offered = cfg.offered(self.tls)
        if not self.tls and cfg.has("silent-auth-before-tls"):
            return
        if not self.tls and cfg.tls_required and mechanism in cfg.mechanisms:
            await self.sasl_failure("encryption-required")
            return
        if mechanism not in offered:
            await self.sasl_failure("invalid-mechanism")
            return
        data = self._decode(el.text)
        if data is None:
            await self.sasl_failure("incorrect-encoding")
            return
        if mechanism == "PLAIN":
            await self.plain(data)
        elif mechanism == "EXTERNAL":
            await self.external(data)
        else:
            await self.scram_first(mechanism, data)

    async def on_abort(self) -> None:
        if self.cfg.has("ignore-abort"):
            self.log("flaw ignore-abort: no answer")
            return
        await self.sasl_failure("aborted")

    async def plain(self, data: bytes) -> None:
        cfg = self.cfg
        parts = data.split(b"\0")
        try:
            authzid, authcid, password = (
                [p.decode("utf-8") for p in parts] if len(parts) == 3 else ["", "", ""]
            )
        except UnicodeDecodeError:
            authzid = authcid = password = ""
        if not authcid or not password:  # RFC 4616 §2: authcid and passwd are not empty
            await self.sasl_failure("malformed-request")
            return
        if cfg.has("plain-rejects-right-password"):
            await self.sasl_failure("not-authorized")
            return
        known = authcid in cfg.accounts
        if not known:
            if cfg.has("reveal-unknown-user"):
                await self.sasl_failure("account-disabled", "no such account")
            else:
                await self.sasl_failure("not-authorized")
            return
        if not (self._password_matches(authcid, password) or cfg.has("accept-any-password")):
            await self.sasl_failure("not-authorized")
            return
        user = self._authorize(authcid, authzid)
        if user is None:
            await self.sasl_failure("invalid-authzid")
            return
        await self.sasl_success(user)

    async def external(self, data: bytes) -> None:
        cfg = self.cfg
        try:
            authzid = data.decode("utf-8")
        except UnicodeDecodeError:
            await self.sasl_failure("malformed-request")
            return
        ssl_obj = self.writer.get_extra_info("ssl_object")
        der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        if not der:
            if cfg.has("external-without-cert") and authzid:
                user, _, domain = authzid.partition("@")
                if domain == cfg.domain and user in cfg.accounts:
                    self.log("flaw external-without-cert: trusting the authzid")
                    await self.sasl_success(user)
            await self.sasl_failure("not-authorized", "no client certificate")
            return
        jids = xmpp_addrs(der)  # the chain was verified against the CA in the handshake
        if authzid:
            if authzid not in jids:
                await self.sasl_failure("invalid-authzid")
                return
            jid = authzid
        elif len(jids) == 1:
            jid = jids[0]
        else:
            await self.sasl_failure("not-authorized", "the certificate names no single XMPP address")
            return
        user, _, domain = jid.partition("@")
        if domain != cfg.domain or user not in cfg.accounts:
            await self.sasl_failure("not-authorized")
            return
        await self.sasl_success(user)
