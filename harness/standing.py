"""A topology kept up for people to point their own clients at (``interop targets up``/``down``).

At an interop event, people test their clients and servers by hand against the same targets the
harness scores. ``up`` starts the selected targets with the run's CA and test accounts, writes
what is needed to reach them into a state folder (``topology.json``, the CA certificate, the
accounts in files only the owner may read) and prints it, then waits; SIGINT or SIGTERM (which
``down`` sends) ends everything it started. Each target also gets a target file of the external
driver (``<name>.target.yaml``), so that another harness, e.g. a vendor's at the same event, can
run the scenarios against it with ``interop run --target-file``. The topology also plays the
event for federation: the target files' ``federation`` section names its CA, with the key in
the state folder (owner-only), and the name plan of what another run brings (its actors that
play a server, and the ``guests``: targets it starts), so that a run can federate its own
targets and peer actors with these.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from harness.topology import Topology
from harness.verdict import HarnessError

STATE_FILE = "topology.json"
DOWN_TIMEOUT_S = 120.0


def bring_up(topology: Topology, accounts: list[str], state_dir: Path, guests: list[str]) -> dict[str, Any]:
    """Start every selected target, make the accounts, plan the names of another run's peer
    actors and ``guests`` (targets it starts); returns what ``topology.json`` holds."""
    if (state_dir / STATE_FILE).exists():
        previous = json.loads((state_dir / STATE_FILE).read_text())
        if _alive(int(previous["pid"])):
            raise HarnessError(
                f"{state_dir}: a topology is already up (pid {previous['pid']}); "
                f"end it with: interop targets down --state {state_dir}"
            )
    state_dir.mkdir(parents=True, exist_ok=True)
    ca_key, plan = topology.host_an_event(guests)
    running = topology.targets({name: name for name in topology.names})
    shutil.copy(topology.pki_ca_file(), state_dir / "ca.crt")
    _private_write(state_dir / "ca.key", ca_key.read_text())
    targets = []
    for name, target in running.items():
        made = [target.account(user) for user in accounts]
        targets.append(
            {
                "name": name,
                "product": target.product,
                "version": target.version,
                "driver": target.driver,
                "domain": target.domain,
                "address": target.address,
                "ports": dict(target.ports),
                "accounts": [{"jid": a.jid, "password": a.password} for a in made],
            }
        )
    for target in targets:
        path = state_dir / f"{target['name']}.target.yaml"
        _private_write(
            path, yaml.safe_dump(_target_file(target, plan, topology.dns_address()), sort_keys=False)
        )
        target["target_file"] = str(path.resolve())
    info = {
        "pid": os.getpid(),
        "dns": topology.dns_address(),
        "ca_file": str((state_dir / "ca.crt").resolve()),
        "ca_key": str((state_dir / "ca.key").resolve()),
        "names": plan,
        "targets": targets,
    }
    _private_write(state_dir / STATE_FILE, json.dumps(info, indent=2) + "\n")
    return info


def _private_write(path: Path, text: str) -> None:
    """Write a file that holds the accounts' passwords: readable by its owner only."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _target_file(target: dict[str, Any], plan: dict[str, str], resolver: str) -> dict[str, Any]:
    """The external driver's target file for one target of the topology (its servers resolve
    the names of ``plan`` through ``resolver``, and from their hosts file)."""
    return {
        "name": target["name"],
        "product": target["product"],
        "version": target["version"],
        "domain": target["domain"],
        "host": target["address"],
        "ports": target["ports"],
        "ca_file": "ca.crt",
        "federation": {"ca_file": "ca.crt", "ca_key": "ca.key", "names": plan, "resolver": resolver},
        "accounts": [{"user": a["jid"].split("@")[0], "password": a["password"]} for a in target["accounts"]],
    }


def describe(info: dict[str, Any]) -> str:
    """What a person needs to point a client or a server at the topology."""
    lines = [
        f"CA certificate (trust it in your client): {info['ca_file']}",
        f"DNS responder for the run's domains (A and SRV records): {info['dns']} port 53",
        f"For another run's federation: it issues from the CA, key {info['ca_key']}; names it brings:",
        *(f"  {domain} at {address}" for domain, address in info["names"].items()),
        "",
    ]
    for t in info["targets"]:
        ports = ", ".join(f"{k} {v}" for k, v in sorted(t["ports"].items()))
        lines.append(f"{t['name']}: {t['product']} {t['version']} ({t['driver']})")
        lines.append(f"  domain {t['domain']} at {t['address']}; ports: {ports}")
        for account in t["accounts"]:
            lines.append(f"  account {account['jid']}  password {account['password']}")
        lines.append(f"  target file (interop run --target-file): {t['target_file']}")
    return "\n".join(lines)


def wait_for_the_end() -> None:
    """Wait until SIGINT/SIGTERM (delivered as KeyboardInterrupt by ``harness.interrupts``)."""
    while True:
        signal.pause()


def bring_down(state_dir: Path) -> int:
    """Ask the process that brought the topology up to end it; wait until it has. Returns its pid."""
    path = state_dir / STATE_FILE
    if not path.exists():
        raise HarnessError(f"{state_dir}: no topology is up (no {STATE_FILE})")
    pid = int(json.loads(path.read_text())["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while _alive(pid):
            if time.monotonic() > deadline:
                raise HarnessError(f"pid {pid} did not end within {DOWN_TIMEOUT_S:.0f} s")
            time.sleep(0.2)  # polling another process's exit, not a verdict
    path.unlink(missing_ok=True)
    return pid


def forget(state_dir: Path) -> None:
    """Remove what ``bring_up`` wrote that holds passwords (the topology has ended)."""
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    (state_dir / "ca.key").unlink(missing_ok=True)
    for target_file in state_dir.glob("*.target.yaml"):
        target_file.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    return next((line for line in status.splitlines() if line.startswith("State:")), "").lower()
