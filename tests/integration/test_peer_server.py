"""The peer-server actor against a real Prosody (packaged configuration: s2s_secure_auth = true):
the harness plays ``peer.test`` on its own address, and Prosody must treat it as any remote
server, in both directions."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.actors import ActorContext, PeerIdentity
from harness.environment.run_env import RunEnvironment, create_environment
from harness.protocols import srv_records
from harness.protocols.xmpp.peer import PeerServerActor
from harness.protocols.xmpp.raw import RawXmppActor
from harness.targets.local import LocalTarget, is_installed
from harness.targets.spec import catalogue
from harness.verdict import Failed
from tests.integration.conftest import ROOT

PEER = "peer.test"
SPEC = catalogue(ROOT / "fixtures" / "targets")["prosody"]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_installed(SPEC), reason="prosody is not installed (ci/setup.sh)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the local driver runs servers as their own users (root)"),
]


@dataclass
class Setup:
    env: RunEnvironment
    target: LocalTarget
    peer_address: str


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    env = create_environment(tmp_path_factory.mktemp("peer-run"))
    try:
        address, peer_address = env.target_address(), env.target_address()
        # both names before the start: Prosody reads its hosts file once
        env.add_name("prosody.test", address, srv_records("xmpp", SPEC.ports))
        env.add_name(PEER, peer_address, srv_records("xmpp", {"s2s": 5269}))
        target = LocalTarget(SPEC, "prosody", "prosody.test", address, {}, env)
        try:
            target.start()
            target.account("bob")
            yield Setup(env, target, peer_address)
        finally:
            target.stop()
    finally:
        env.close()


Body = Callable[[PeerServerActor, RawXmppActor], Awaitable[None]]


def run(setup: Setup, evidence: Path, body: Body) -> str:
    """Run ``body`` with a peer actor and bob (xmpp-raw, logged in on Prosody's c2s); returns
    the peer's stream log (every log is printed, pytest shows them when a test fails)."""
    view = setup.target.view()

    async def main() -> None:
        peer = PeerServerActor(
            ActorContext(
                name="peer",
                target=view,
                account=None,
                evidence_dir=evidence,
                keylog_file=evidence / "tls-keys.log",
                peer=PeerIdentity(PEER, setup.peer_address),
                pki=setup.env,
            ),
            {},
        )
        bob = RawXmppActor(
            ActorContext(
                name="bob",
                target=view,
                account=setup.target.account("bob"),
                evidence_dir=evidence,
                keylog_file=evidence / "tls-keys.log",
                source_address=setup.env.source_address(),
            ),
            {},
        )
        try:
            await bob.perform("connect", {})
            await bob.perform("authenticate", {"mechanism": "PLAIN"})
            await body(peer, bob)
        finally:
            await peer.close()
            await bob.close()

    try:
        asyncio.run(main())
    finally:
        for log in sorted(evidence.glob("*.xmpp.log")):
            print(f"===== {log.name}\n{log.read_text()}")
    return (evidence / "peer.xmpp.log").read_text()


def test_external_and_a_message_each_way(prosody: Setup, tmp_path: Path) -> None:
    """(1) A valid certificate and SASL EXTERNAL: a message from peer.test reaches bob, and
    bob's answer comes back through Prosody's own stream to the peer's listener."""

    async def body(peer: PeerServerActor, bob: RawXmppActor) -> None:
        await peer.perform("connect", {})
        await peer.perform("authenticate", {"method": "external"})
        await peer.perform(
            "send",
            {"xml": f"<message from='x@{PEER}' to='{bob.full_jid}' type='chat'><body>hello</body></message>"},
        )
        await bob.perform("expect", {"match": f"<message from='x@{PEER}'><body>hello</body></message>"})
        await bob.perform(
            "send", {"xml": f"<message to='x@{PEER}' type='chat'><body>hi back</body></message>"}
        )
        await peer.perform(
            "expect",
            {"match": f"<message from='{bob.full_jid}' to='x@{PEER}'><body>hi back</body></message>"},
        )
        await peer.perform("expect-nothing", {"match": "<message/>"})

    log = run(prosody, tmp_path, body)
    assert "[outgoing] SASL EXTERNAL: success" in log
    assert "[incoming #1] SASL EXTERNAL: prosody.test authenticated by its certificate" in log
    barrier = [
        line for line in log.splitlines() if "S->C [incoming #1] <iq" in line and "id='barrier-1'" in line
    ]
    assert barrier and "type='result'" in barrier[0]  # the barrier's answer came on Prosody's own stream


def test_dialback_with_a_valid_key(prosody: Setup, tmp_path: Path) -> None:
    """(2) Prosody checks the key with the peer's listener (<db:verify/>) and accepts it."""

    async def body(peer: PeerServerActor, bob: RawXmppActor) -> None:
        await peer.perform("connect", {})
        await peer.perform("authenticate", {"method": "dialback"})
        await peer.perform(
            "expect",
            {"match": "<db:result xmlns:db='jabber:server:dialback' from='prosody.test' type='valid'/>"},
        )
        await peer.perform(
            "send", {"xml": f"<message from='x@{PEER}' to='{bob.full_jid}'><body>db</body></message>"}
        )
        await bob.perform("expect", {"match": "<message><body>db</body></message>"})

    log = run(prosody, tmp_path, body)
    assert "dialback verify: the key for peer.test -> prosody.test on stream" in log
    assert "is one this actor sent" in log


def test_dialback_with_an_invalid_key(prosody: Setup, tmp_path: Path) -> None:
    """(3) The listener refuses to vouch for the key, so Prosody must refuse it; and a step that
    expects success then fails (the check can fail)."""

    async def body(peer: PeerServerActor, bob: RawXmppActor) -> None:
        await peer.perform("connect", {})
        await peer.perform("authenticate", {"method": "dialback", "key": "invalid", "expect": "failure"})
        await peer.perform(
            "expect", {"match": "<db:result xmlns:db='jabber:server:dialback' type='invalid'/>"}
        )
        await peer.perform("disconnect", {})
        await peer.perform("connect", {})
        with pytest.raises(
            Failed, match="target refused dialback for peer.test with a key its server does not vouch for"
        ):
            await peer.perform("authenticate", {"method": "dialback", "key": "invalid"})

    log = run(prosody, tmp_path, body)
    assert "is not one this actor sent" in log


def test_untrusted_certificate(prosody: Setup, tmp_path: Path) -> None:
    """(4) A certificate from a CA Prosody does not trust: no EXTERNAL; Prosody ends the stream
    after TLS (s2s_secure_auth) with <not-authorized/> "Your server's certificate is not trusted"."""

    async def body(peer: PeerServerActor, bob: RawXmppActor) -> None:
        with pytest.raises(Failed, match="not-authorized"):
            await peer.perform("connect", {"certificate": "untrusted"})
        await peer.perform("connect", {"certificate": "untrusted", "refusal": "expect"})
        await peer.perform(
            "expect",
            {
                "match": "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
            },
        )
        await peer.perform("authenticate", {"method": "external", "expect": "failure"})

    log = run(prosody, tmp_path, body)
    assert "Your server's certificate is not trusted" in log


def test_forged_from_domain(prosody: Setup, tmp_path: Path) -> None:
    """(5) A stanza from other.test on the stream authenticated for peer.test is not delivered.
    RFC 6120 8.1.2.1 and 4.9.3.10 name the stream error <invalid-from/> for it; Prosody 0.12
    ends the stream with <not-authorized/> instead (ejabberd 23.01: <invalid-from/>; jabberd2
    2.7 drops the stanza and keeps the stream)."""

    async def body(peer: PeerServerActor, bob: RawXmppActor) -> None:
        await peer.perform("connect", {})
        await peer.perform("authenticate", {"method": "external"})
        await peer.perform(
            "send",
            {"xml": f"<message from='someone@other.test' to='{bob.full_jid}'><body>forged</body></message>"},
        )
        await peer.perform(
            "expect",
            {
                "match": "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
            },
        )
        await peer.perform("expect", {"match": "<m:closed/>"})
        await bob.perform("expect-nothing", {"match": "<message><body>forged</body></message>"})

    run(prosody, tmp_path, body)
