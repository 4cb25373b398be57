"""Protocol families. Importing this package registers every family's actor kinds.

A family also says which DNS SRV service labels its port names publish, so the run's DNS
responder stays protocol-neutral.
"""

from collections.abc import Mapping

from harness.protocols import xmpp

_SRV_LABELS: dict[str, Mapping[str, str]] = {"xmpp": xmpp.SRV_LABELS}


def srv_records(protocol: str, ports: Mapping[str, int]) -> dict[str, int]:
    """SRV service label -> port for a target's named ports (names the family does not know: none)."""
    labels = _SRV_LABELS.get(protocol, {})
    return {labels[name]: port for name, port in ports.items() if name in labels}
