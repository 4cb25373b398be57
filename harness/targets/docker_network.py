"""How the docker driver's containers reach each other and the harness.

``host`` (the default, works with any engine on this machine, including ours without a bridge):
every container shares the machine's network, each target's servers bind its own loopback
address, and every container resolves names through the run's DNS responder and hosts list,
like a local target's private resolv.conf and hosts file.

``bridge`` (not run on our machines: their engine has no bridge): one network per run, each
target reachable inside it by its domain names (network aliases), its ports published on its
loopback address on this machine for the harness. A target's containers share one network
namespace, the first one's (its tool container), so a product of several processes talks to
itself as it does under ``host``. The run's DNS responder is not reachable from that network:
names of actors that play a server do not resolve inside it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

from harness.environment.dns import RESOLV_OPTIONS

MODES = ("host", "bridge")


@dataclass(frozen=True)
class TargetAddressing:
    """What a container of one target needs to know about names and addresses."""

    address: str  # the target's loopback address on this machine (where the harness connects)
    names: list[str]  # the target's domain and its services' domains
    ports: dict[str, int]
    dns_address: str
    hosts: dict[str, str]  # every run domain -> address


class Networking(abc.ABC):
    mode: str

    @abc.abstractmethod
    def listen_address(self, target: TargetAddressing) -> str:
        """The address the servers bind inside their container."""

    @abc.abstractmethod
    def first_container(self, client: Any, target: TargetAddressing) -> dict[str, Any]:
        """create() options of a target's first container (the tool container)."""

    @abc.abstractmethod
    def process_container(self, target: TargetAddressing, first_id: str) -> dict[str, Any]:
        """create() options of a target's server process containers."""

    def close(self, client: Any) -> None:  # noqa: B027 (host networking makes nothing)
        """Remove what the networking made for the run."""


class HostNetworking(Networking):
    mode = "host"

    def listen_address(self, target: TargetAddressing) -> str:
        return target.address

    def _options(self, target: TargetAddressing) -> dict[str, Any]:
        return {
            "network_mode": "host",
            "dns": [target.dns_address],
            "dns_opt": list(RESOLV_OPTIONS),
            "extra_hosts": dict(target.hosts),
        }

    def first_container(self, client: Any, target: TargetAddressing) -> dict[str, Any]:
        return self._options(target)

    def process_container(self, target: TargetAddressing, first_id: str) -> dict[str, Any]:
        return self._options(target)


class BridgeNetworking(Networking):
    mode = "bridge"

    def __init__(self, network_name: str, labels: dict[str, str]) -> None:
        self.network_name = network_name
        self.labels = labels
        self._network: Any = None

    def listen_address(self, target: TargetAddressing) -> str:
        return "0.0.0.0"  # the container's own interfaces; published to target.address

    def first_container(self, client: Any, target: TargetAddressing) -> dict[str, Any]:
        self._ensure_network(client)
        return {
            "network": self.network_name,
            "networking_config": {
                self.network_name: client.api.create_endpoint_config(aliases=list(target.names))
            },
            "ports": {f"{port}/tcp": (target.address, port) for port in target.ports.values()},
        }

    def process_container(self, target: TargetAddressing, first_id: str) -> dict[str, Any]:
        return {"network_mode": f"container:{first_id}"}

    def _ensure_network(self, client: Any) -> None:
        if self._network is None:
            found = client.networks.list(names=[self.network_name])
            self._network = (
                found[0]
                if found
                else client.networks.create(self.network_name, driver="bridge", labels=dict(self.labels))
            )

    def close(self, client: Any) -> None:
        if self._network is not None:
            self._network.remove()
            self._network = None


def networking(mode: str, run_label: str, labels: dict[str, str]) -> Networking:
    if mode == "host":
        return HostNetworking()
    if mode == "bridge":
        return BridgeNetworking(f"interop-{run_label}", labels)
    raise ValueError(f"docker network mode {mode!r}: choose one of {', '.join(MODES)}")
