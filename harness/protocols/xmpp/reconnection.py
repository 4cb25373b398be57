"""The ``count-connections`` action of the peer-server actor: how a target reconnects to a peer
that refuses it (RFC 6120 §3.3: an entity that reconnects SHOULD back off increasingly between
attempts when the first reconnection does not succeed).

The peer's listener (actor option ``incoming: refuse``) accepts each connection and closes it
at once; it notes when each came. ``listen`` starts the listener and the measurement; a later
``count-connections`` waits until ``within`` seconds have passed since then and reads the times:
the intervals between consecutive connections must grow (``backoff: true``). One or two
connections leave nothing to compare (no reconnection, or one): that passes, with the count as the
observation; none means the target never tried, which tests nothing.
"""

from __future__ import annotations

from harness.protocols.xmpp.inbox import params_schema
from harness.verdict import Failed, Observation

MAX_WINDOW_S = 120.0  # the network rule: bounded in time
JITTER_S = 0.25  # an interval this much shorter than the one before still counts as not shorter

COUNT_CONNECTIONS_SCHEMA = params_schema(
    {
        "within": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": MAX_WINDOW_S,
            "description": "the measurement window, in seconds from the actor's listen step",
        },
        "backoff": {
            "type": "boolean",
            "default": True,
            "description": "the intervals between the target's connections must grow (RFC 6120 §3.3)",
        },
    },
    required=["within"],
)
LISTEN_SCHEMA = params_schema({})


def judge(times: list[float], started: float, window: float, backoff: bool) -> Observation:
    """The observation of the connections at loop ``times`` since ``started``."""
    offsets = [round(t - started, 1) for t in times]
    intervals = [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)]
    seen = f"{len(times)} connection(s) in {window:g} s, at +" + ", +".join(f"{o} s" for o in offsets)
    if intervals:
        seen += "; intervals " + ", ".join(f"{i} s" for i in intervals)
    if not times:
        return Observation(f"no connection in {window:g} s: the target never tried", exercised=False)
    if backoff:
        for n, (before, after) in enumerate(zip(intervals, intervals[1:], strict=False), 2):
            if after < before + JITTER_S:
                raise Failed(
                    f"{seen}: no back-off, interval {n} ({after} s) is not longer than interval "
                    f"{n - 1} ({before} s) by more than {JITTER_S} s"
                )
    return Observation(seen)
