"""Which port of a target an XMPP client connection goes to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.verdict import HarnessError, Unsupported

if TYPE_CHECKING:
    from harness.actors import TargetView

PORT_SCHEMA = {
    "type": ["integer", "string"],
    "description": "port number, or the name of one of the target's ports (default: c2s, c2s_tls for direct)",
}


def resolve_port(target: TargetView, tls: str, port: int | str | None) -> int:
    """``port`` (a number or the name of one of the target's ports) as a number; by default the
    target's ``c2s`` port, or ``c2s_tls`` (XEP-0368) for direct TLS."""
    ports = target.ports
    if port is None:
        name = "c2s_tls" if tls == "direct" else "c2s"
        if name not in ports:
            if tls == "direct":
                raise Unsupported(f"target {target.name} has no direct TLS port (XEP-0368)")
            raise HarnessError(f"target {target.name} has no {name} port")
        return int(ports[name])
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    if port in ports:
        return int(ports[port])
    raise HarnessError(f"target {target.name} has no port named {port!r} (has: {', '.join(ports)})")
