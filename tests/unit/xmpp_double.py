"""A small XMPP server test double for the harness's own tests (never a target in the matrix).

It implements just enough of RFC 6120 to exercise the raw actor honestly over real sockets and
real TLS: the stream header, features, STARTTLS (and direct TLS with ALPN), SASL PLAIN,
SCRAM-SHA-1/-256 (+ -PLUS with tls-server-end-point), abort, resource binding, ping, and
routing a message addressed to the connected user back to it. Knobs let tests make it misbehave
(no STARTTLS, no ping or bind answers, TLS 1.3 only, closing the stream on some input). It
records the clients' addresses (``peers``) and everything they sent (``received``).

Also here: :func:`make_pki`, a throw-away CA and a server certificate made with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy as copy_module
import datetime as dt
import hashlib
import hmac
import os
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_PING = "urn:xmpp:ping"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"


# ---------------------------------------------------------------------------------------------
# PKI
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    cert_der: bytes
    client_cert_file: Path  # for alice@<domain>, signed by the same CA
    client_key_file: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path, domain: str, ca_name: str = "Double Test CA") -> Pki:
    """A CA and a certificate for ``domain`` signed by it (EC P-256, SHA-256), written as PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(
        cn: str, san: x509.GeneralName, usage: x509.ObjectIdentifier, stem: str
    ) -> tuple[Path, Path, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        cert_file = directory / f"{stem}.pem"
        key_file = directory / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)

    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    eku = x509.oid.ExtendedKeyUsageOID
    cert_file, key_file, der = issue(domain, x509.DNSName(domain), eku.SERVER_AUTH, "server")
    client_cert, client_key, _ = issue(
        f"alice@{domain}", x509.RFC822Name(f"alice@{domain}"), eku.CLIENT_AUTH, "client"
    )
    return Pki(ca_file, cert_file, key_file, der, client_cert, client_key)


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


@dataclass
class DoubleConfig:
    domain: str = "double.test"
    accounts: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret-Pa55"})
    offer_starttls: bool = True
    mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "EXTERNAL")
    channel_bindings: tuple[str, ...] = ("tls-server-end-point",)
    tls_min: ssl.TLSVersion | None = None
    direct_tls: bool = False
    answer_ping: bool = True
    answer_bind: bool = True
    scram_iterations: int = 4096


class XmppDouble:
    """``async with XmppDouble(pki, DoubleConfig(...)) as server:`` listens on 127.0.0.1,
    ``server.ports`` has ``c2s`` (and ``c2s_tls`` with ``direct_tls``)."""

    def __init__(self, pki: Pki, config: DoubleConfig | None = None, host: str = "127.0.0.1") -> None:
        self.pki = pki
        self.config = config or DoubleConfig()
        self.host = host
        self.ports: dict[str, int] = {}
        self.received: list[bytes] = []  # everything the clients sent (decrypted)
        self.peers: list[tuple[str, int]] = []  # (address, port) of every client connection
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def ssl_context(self, alpn: bool = False) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.pki.cert_file), str(self.pki.key_file))
        ctx.load_verify_locations(cafile=str(self.pki.ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL  # client certificates for EXTERNAL
        if self.config.tls_min is not None:
            ctx.minimum_version = self.config.tls_min
        if alpn:
            ctx.set_alpn_protocols(["xmpp-client"])
        return ctx

    async def __aenter__(self) -> Self:
        server = await asyncio.start_server(self._accept(direct=False), self.host, 0)
        self._servers.append(server)
        self.ports["c2s"] = server.sockets[0].getsockname()[1]
        if self.config.direct_tls:
            tls_server = await asyncio.start_server(
                self._accept(direct=True), self.host, 0, ssl=self.ssl_context(alpn=True)
            )
            self._servers.append(tls_server)
            self.ports["c2s_tls"] = tls_server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await server.wait_closed()

    def _accept(self, direct: bool):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            peer = writer.get_extra_info("peername")
            if peer:
                self.peers.append((peer[0], peer[1]))
            try:
                await _Connection(self, reader, writer, tls=direct).run()
            except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self._tasks.discard(task)
                writer.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1):
                        await writer.wait_closed()

        return handle


def _client_xml(el: ET.Element) -> str:
    """Serialize a stanza for the stream: jabber:client elements without prefix or xmlns."""
    copy = copy_module.deepcopy(el)
    for node in copy.iter():
        if node.tag.startswith(f"{{{NS_CLIENT}}}"):
            node.tag = node.tag[len(NS_CLIENT) + 2 :]
    return ET.tostring(copy, encoding="unicode")


class _Restart(Exception):
    """Start a new parser (after STARTTLS or SASL success)."""


class _Close(Exception):
    pass


class _Connection:
    def __init__(self, server: XmppDouble, reader, writer, tls: bool) -> None:
        self.server = server
        self.cfg = server.config
        self.reader = reader
        self.writer = writer
        self.tls = tls
        self.user: str | None = None
        self.jid: str | None = None
        self.scram: dict | None = None

    # -- io --------------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def run(self) -> None:
        while True:
            parser = ET.XMLPullParser(events=("start", "end"))
            depth = 0
            root = None
            try:
                while True:
                    data = await self.reader.read(4096)
                    if not data:
                        return
                    self.server.received.append(data)
                    try:
                        parser.feed(data)
                        events = list(parser.read_events())
                    except ET.ParseError:
                        await self.stream_error("not-well-formed")
                        return
                    for event, el in events:
                        if event == "start":
                            depth += 1
                            if depth == 1:
                                root = el
                                await self.on_header(el)
                        else:
                            depth -= 1
                            if depth == 1:
                                assert root is not None
                                root.remove(el)
                                await self.on_element(el)
                            elif depth == 0:
                                await self.send("</stream:stream>")
                                return
            except _Restart:
                continue
            except _Close:
                return

    async def stream_error(self, condition: str) -> None:
        await self.send(f"<stream:error><{condition} xmlns='{NS_STREAMS}'/></stream:error></stream:stream>")

    # -- stream ----------------------------------------------------------------------------------

    async def on_header(self, el: ET.Element) -> None:
        header = (
            f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' "
            f"id='{os.urandom(6).hex()}' from='{self.cfg.domain}' version='1.0'>"
        )
        await self.send(header)
        if el.get("to") not in (None, self.cfg.domain):
            await self.stream_error("host-unknown")
            raise _Close
        features = ["<stream:features>"]
        if self.user is not None:
            features.append(f"<bind xmlns='{NS_BIND}'/>")
        else:
            if not self.tls and self.cfg.offer_starttls:
                features.append(f"<starttls xmlns='{NS_TLS}'><required/></starttls>")
            mechs = [m for m in self.cfg.mechanisms if self.tls or not m.endswith("-PLUS")]
            features.append(
                f"<mechanisms xmlns='{NS_SASL}'>"
                + "".join(f"<mechanism>{m}</mechanism>" for m in mechs)
                + "</mechanisms>"
            )
            if self.tls and self.cfg.channel_bindings:
                features.append(
                    f"<sasl-channel-binding xmlns='{NS_SASL_CB}'>"
                    + "".join(f"<channel-binding type='{t}'/>" for t in self.cfg.channel_bindings)
                    + "</sasl-channel-binding>"
                )
        features.append("</stream:features>")
        await self.send("".join(features))

    async def on_element(self, el: ET.Element) -> None:
        tag = el.tag
        if tag == f"{{{NS_TLS}}}starttls":
            if self.tls or not self.cfg.offer_starttls:
                await self.send(f"<failure xmlns='{NS_TLS}'/></stream:stream>")
                raise _Close
            await self.send(f"<proceed xmlns='{NS_TLS}'/>")
            await self.writer.start_tls(self.server.ssl_context())
            self.tls = True
            raise _Restart
        if tag == f"{{{NS_SASL}}}auth":
            await self.on_auth(el)
        elif tag == f"{{{NS_SASL}}}response":
            await self.on_response(el)
        elif tag == f"{{{NS_SASL}}}abort":
            self.scram = None
            await self.sasl_failure("aborted")
        elif tag == f"{{{NS_CLIENT}}}iq":
            await self.on_iq(el)
        elif tag == f"{{{NS_CLIENT}}}message":
            if self.jid is None:
                await self.stream_error("not-authorized")
                raise _Close
            to = el.get("to", "")
            if to in (self.jid, self.jid.split("/")[0]):
                el.set("from", self.jid)
                await self.send(_client_xml(el))
        elif tag == f"{{{NS_CLIENT}}}presence":
            pass
        else:
            await self.stream_error("unsupported-stanza-type")
            raise _Close

    # -- SASL ------------------------------------------------------------------------------------

    async def sasl_failure(self, condition: str) -> None:
        await self.send(f"<failure xmlns='{NS_SASL}'><{condition}/></failure>")

    async def sasl_success(self, user: str, additional: bytes = b"") -> None:
        payload = base64.b64encode(additional).decode() if additional else ""
        self.user = user
        self.scram = None
        await self.send(
            f"<success xmlns='{NS_SASL}'>{payload}</success>" if payload else f"<success xmlns='{NS_SASL}'/>"
        )
        raise _Restart

    @staticmethod
    def _decode(text: str | None) -> bytes | None:
        body = (text or "").strip()
        if body in ("", "="):
            return b""
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            return None

    async def on_auth(self, el: ET.Element) -> None:
        mechanism = el.get("mechanism", "")
        offered = [m for m in self.cfg.mechanisms if self.tls or not m.endswith("-PLUS")]
        if self.user is not None or mechanism not in offered:
            await self.sasl_failure("invalid-mechanism")
            return
        data = self._decode(el.text)
        if data is None:
            await self.sasl_failure("incorrect-encoding")
            return
        if mechanism == "PLAIN":
            parts = data.split(b"\0")
            if len(parts) != 3:
                await self.sasl_failure("malformed-request")
                return
            _authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
            if self.cfg.accounts.get(user) == password and password:
                await self.sasl_success(user)
            await self.sasl_failure("not-authorized")
            return
        if mechanism == "EXTERNAL":
            ssl_obj = self.writer.get_extra_info("ssl_object")
            peer = ssl_obj.getpeercert() if ssl_obj is not None else None
            if not peer:
                await self.sasl_failure("not-authorized")
                return
            cn = dict(x[0] for x in peer["subject"])["commonName"]
            user, _, domain = cn.partition("@")
            wanted = data.decode() if data else cn
            if domain != self.cfg.domain or user not in self.cfg.accounts or wanted != cn:
                await self.sasl_failure("not-authorized")
                return
            await self.sasl_success(user)
        await self.scram_first(mechanism, data)

    async def scram_first(self, mechanism: str, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        try:
            flag, authzid, rest = text.split(",", 2)
        except ValueError:
            await self.sasl_failure("malformed-request")
            return
        attrs = dict(p.split("=", 1) for p in rest.split(",") if "=" in p)
        plus = mechanism.endswith("-PLUS")
        if plus != flag.startswith("p="):
            await self.sasl_failure("malformed-request")
            return
        if flag == "y" and any(m.endswith("-PLUS") for m in self.cfg.mechanisms) and self.tls:
            await self.sasl_failure("not-authorized")  # downgrade detected (RFC 5802 6)
            return
        hash_name = mechanism.removesuffix("-PLUS")[len("SCRAM-") :].lower().replace("-", "")
        user = attrs.get("n", "")
        cnonce = attrs.get("r", "")
        salt = os.urandom(16)
        nonce = cnonce + base64.b64encode(os.urandom(12)).decode()
        server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={self.cfg.scram_iterations}"
        self.scram = {
            "hash": hash_name,
            "user": user,
            "nonce": nonce,
            "salt": salt,
            "gs2": f"{flag},{authzid},".encode(),
            "flag": flag,
            "bare": rest,
            "server_first": server_first,
        }
        await self.send(
            f"<challenge xmlns='{NS_SASL}'>{base64.b64encode(server_first.encode()).decode()}</challenge>"
        )

    def _cb_data(self, flag: str) -> bytes | None:
        if not flag.startswith("p="):
            return b""
        if flag[2:] not in self.cfg.channel_bindings:
            return None
        if flag[2:] == "tls-server-end-point":
            return hashlib.sha256(self.server.pki.cert_der).digest()
        ssl_obj = self.writer.get_extra_info("ssl_object")
        if flag[2:] == "tls-unique" and ssl_obj is not None and ssl_obj.version() != "TLSv1.3":
            return ssl_obj.get_channel_binding("tls-unique")
        return None

    async def on_response(self, el: ET.Element) -> None:
        state = self.scram
        data = self._decode(el.text)
        if state is None or data is None:
            await self.sasl_failure("malformed-request")
            return
        text = data.decode("utf-8", "replace")
        attrs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
        without_proof = text.rsplit(",p=", 1)[0]
        cb = self._cb_data(state["flag"])
        if cb is None or attrs.get("r") != state["nonce"]:
            await self.sasl_failure("not-authorized")
            return
        if base64.b64decode(attrs.get("c", "")) != state["gs2"] + cb:
            await self.sasl_failure("not-authorized")
            return
        password = self.cfg.accounts.get(state["user"])
        if password is None:
            await self.sasl_failure("not-authorized")
            return
        h = state["hash"]
        salted = hashlib.pbkdf2_hmac(h, password.encode(), state["salt"], self.cfg.scram_iterations)
        client_key = hmac.new(salted, b"Client Key", h).digest()
        stored_key = hashlib.new(h, client_key).digest()
        auth_message = f"{state['bare']},{state['server_first']},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, h).digest()
        try:
            proof = base64.b64decode(attrs.get("p", ""))
        except ValueError:
            proof = b""
        recovered = bytes(a ^ b for a, b in zip(proof, signature))
        if len(proof) != len(signature) or hashlib.new(h, recovered).digest() != stored_key:
            await self.sasl_failure("not-authorized")
            return
        server_key = hmac.new(salted, b"Server Key", h).digest()
        verifier = base64.b64encode(hmac.new(server_key, auth_message, h).digest()).decode()
        await self.sasl_success(state["user"], f"v={verifier}".encode())

    # -- stanzas ---------------------------------------------------------------------------------

    async def on_iq(self, el: ET.Element) -> None:
        iq_id = el.get("id", "")
        if self.user is None:
            await self.stream_error("not-authorized")
            raise _Close
        bind = el.find(f"{{{NS_BIND}}}bind")
        if bind is not None and el.get("type") == "set":
            if not self.cfg.answer_bind:
                return
            resource_el = bind.find(f"{{{NS_BIND}}}resource")
            resource = (resource_el.text or "").strip() if resource_el is not None else ""
            self.jid = f"{self.user}@{self.cfg.domain}/{resource or os.urandom(4).hex()}"
            await self.send(
                f"<iq type='result' id='{iq_id}'><bind xmlns='{NS_BIND}'><jid>{self.jid}</jid></bind></iq>"
            )
            return
        if el.find(f"{{{NS_PING}}}ping") is not None:
            if self.cfg.answer_ping:
                await self.send(f"<iq type='result' id='{iq_id}' from='{self.cfg.domain}'/>")
            return
        if el.get("type") in ("get", "set"):
            await self.send(
                f"<iq type='error' id='{iq_id}'><error type='cancel'>"
                f"<service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
            )
