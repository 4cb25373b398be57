"""The external driver: a server already running elsewhere (a vendor's, at an interop event).

The harness only connects. The target file says where the server is, whom to trust and which
test accounts to use; scenarios' account names are mapped onto those accounts in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.actors import Account
from harness.targets.running import RunningTarget
from harness.targets.spec import CatalogueError
from harness.verdict import Unsupported

EXAMPLE = """\
name: vendor-x            # column name in the matrix
product: vendor-x-server
version: "4.2"            # as the vendor states it
domain: xmpp.vendor-x.test
host: 127.0.0.50          # loopback or a host the run created
ports: {c2s: 5222, s2s: 5269, c2s_tls: 5223}
ca_file: vendor-ca.pem    # relative to this file; or `verify: false` not to verify (recorded;
                          # certificate checks are then unsupported)
features: [in-band-registration]
accounts:
  - {user: test1, password: secret1}
  - {user: test2, password: secret2}
"""


class ExternalTarget(RunningTarget):
    driver = "external"

    def __init__(self, data: dict[str, Any], source: Path) -> None:
        super().__init__()
        where = str(source)
        for key in ("name", "product", "domain", "host", "ports", "accounts"):
            if key not in data:
                raise CatalogueError(f"{where}: missing {key!r}; a target file looks like:\n{EXAMPLE}")
        verify = data.get("verify", True)
        if not isinstance(verify, bool):
            raise CatalogueError(f"{where}: verify must be true or false, not {verify!r}")
        if "ca_file" not in data and verify:
            raise CatalogueError(f"{where}: give ca_file (the server's CA) or say `verify: false`")
        self.name = str(data["name"])
        self.product = str(data["product"])
        self.version = str(data.get("version", "unknown"))
        self.domain = str(data["domain"])
        self.address = str(data["host"])
        self.ports = {str(k): int(v) for k, v in data["ports"].items()}
        # verify: false wins over a ca_file: the target's certificate is not checked at all, and
        # steps that check it are unsupported (CERTIFICATE_NOT_CHECKED of the raw actor)
        self.ca_file = (source.parent / data["ca_file"]).resolve() if verify else None
        self.knobs = {"verify_certificate": "false"} if self.ca_file is None else {}
        self.features = frozenset(data.get("features") or ())
        self._pool = [
            Account(user=str(a["user"]), domain=self.domain, password=str(a["password"]))
            for a in data["accounts"]
        ]

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        if password_part is not None:
            raise Unsupported(
                f"the scenario needs account {name!r} with a declared password; "
                "an external target's accounts come from its target file"
            )
        used = len(self._accounts)
        if used >= len(self._pool):
            raise CatalogueError(
                f"target {self.name}: scenario needs account #{used + 1} ({name!r}) "
                f"but the target file lists {len(self._pool)}"
            )
        return self._pool[used]

    def stop(self) -> None:
        """Nothing to end: the harness did not start this server."""


def load_target_file(path: Path) -> ExternalTarget:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read target file: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: expected a mapping; a target file looks like:\n{EXAMPLE}")
    return ExternalTarget(data, path)
