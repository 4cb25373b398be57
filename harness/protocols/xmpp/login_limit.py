"""The ``login-attempts`` action of the raw actor: how many failed logins from one address a
server takes before it limits them (XEP-0205 §4.2 recommends limits per address).

Each attempt is a connection of its own (TCP, STARTTLS, one SASL exchange with a wrong password,
close), so a per-stream retry limit (RFC 6120 §6.4.5, ``auth.sasl.retry-limit``) plays no part.
The attempts stop at the first one that is not an ordinary ``<not-authorized/>``: a connection
refused or reset, a stream error instead of features, another SASL condition
(``temporary-auth-failure``, ``policy-violation``) or the stream ended after ``<auth/>``. That
attempt's number and what happened are the measurement; it is the step's observation, so the
limit is recorded in the results (``decided_by``). No limit within ``max`` attempts fails the step.
Use it from an actor with ``own_address: true``: a ban must not hit other actors of the run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from harness.protocols.xmpp.elements import NS_SASL, condition, local
from harness.protocols.xmpp.inbox import WITHIN_SCHEMA, params_schema
from harness.verdict import Failed, Observation, StepOutcome

MAX_ATTEMPTS = 50  # the network rule: bounded counts

LOGIN_ATTEMPTS_SCHEMA = params_schema(
    {
        "max": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
        "password": {"type": "string", "minLength": 1, "description": "a wrong password"},
        "mechanism": {"type": "string", "minLength": 1, "default": "PLAIN"},
        "within": WITHIN_SCHEMA,
    },
    required=["max", "password"],
)


def _limited(attempt: int, elapsed: float, how: str) -> Observation:
    """The measurement: which attempt was limited, after how many failures, and how."""
    return Observation(
        f"limited at attempt {attempt}, after {attempt - 1} failed logins in {elapsed:.1f} s: {how}"
    )


class LoginLimitMixin:
    """Adds ``login_attempts`` to an actor with ``connect``, ``authenticate`` and ``disconnect``."""

    async def login_attempts(
        self, max: int, password: str, mechanism: str = "PLAIN", within: float | None = None
    ) -> Observation:
        actor: Any = self
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + (within if within is not None else 60.0)
        for attempt in range(1, max + 1):
            if loop.time() > deadline:
                raise Failed(f"{attempt - 1} failed logins, none limited, before the deadline of {within} s")
            elapsed = loop.time() - started
            try:
                await actor.connect(tls="starttls")
            except StepOutcome as exc:
                return _limited(attempt, elapsed, f"the connection was refused ({exc.reason})")
            await actor.authenticate(mechanism=mechanism, password=password, expect="failure", bind=False)
            failure = actor._inbox.find(lambda e: e.tag == f"{{{NS_SASL}}}failure")
            plain_refusal = failure is not None and any(local(c.tag) == "not-authorized" for c in failure)
            how = (
                condition(failure) if failure is not None else f"the stream ended ({actor._closed_summary()})"
            )
            await actor.disconnect()
            if not plain_refusal:
                return _limited(attempt, elapsed, how)
        took = loop.time() - started
        raise Failed(
            f"{max} failed logins from one address in {took:.1f} s, each on a connection of its own and "
            "each answered <not-authorized/>: nothing limited them"
        )
