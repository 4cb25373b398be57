"""The external driver: a server already running elsewhere (a vendor's, at an interop event).

The harness only connects. The target file says where the server is, whom to trust and which
test accounts to use. The accounts serve every item anew: an item's account names are mapped
onto the listed accounts in the order the item asks for them (an item needing k accounts gets
the first k), and each account is brought to a known state by its protocol family before the
item uses it and again once the item is over (what the item created is removed). What was
found and removed is the item's evidence (``<target>.account-state.log``, with the stream of
the clearing sessions beside it). Why and how: docs/interop-events.md.

Federation with the run's own servers and peer actors needs more than the harness can set up
on a server it did not start; the file's ``federation`` section declares it (:class:`Federation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.actors import Account, ActorContext, account_keeper
from harness.targets.running import RunningTarget
from harness.targets.spec import read_target_file
from harness.verdict import StepOutcome, TargetError, Unsupported

# How long bringing one account to a known state may take (a login and a dozen requests).
KEEP_TIMEOUT_S = 60.0
STEP_TIMEOUT_S = 10.0
RECORD = "account-state.log"
# Target files written before the field existed describe XMPP servers.
DEFAULT_PROTOCOL = "xmpp"


@dataclass(frozen=True)
class Federation:
    """What lets the run's servers and peer actors federate with an external server: the CA it
    trusts for peer servers, given to the harness with its key (the run issues every certificate
    from it), and the event's name plan for the harness's names (domain -> the address the
    server resolves it to; the run listens there), with a DNS server that answers as the server
    resolves, when there is one, for the preflight."""

    ca_file: Path
    ca_key: Path
    names: dict[str, str]
    resolver: str | None


class ExternalTarget(RunningTarget):
    driver = "external"
    foreign_accounts = True

    def __init__(self, data: dict[str, Any], source: Path) -> None:
        """``data``: the target file, as :func:`load_target_file` checked it."""
        super().__init__()
        verify = data.get("verify", True)
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
        self.protocol = str(data.get("protocol", DEFAULT_PROTOCOL))
        section = data.get("federation")
        self.federation = (
            Federation(
                ca_file=(source.parent / section["ca_file"]).resolve(),
                ca_key=(source.parent / section["ca_key"]).resolve(),
                names={str(domain).lower(): str(address) for domain, address in section["names"].items()},
                resolver=str(section["resolver"]) if "resolver" in section else None,
            )
            if section
            else None
        )
        self._pool = [
            Account(user=str(a["user"]), domain=self.domain, password=str(a["password"]))
            for a in data["accounts"]
        ]
        self._records: Path | None = None  # the account-state record and the clearing streams

    def begin_item(self, account_names: list[str]) -> None:
        """The item maps its account names from the first listed account on; one that needs
        more accounts than the file lists is an error naming both counts."""
        self._accounts = {}
        if len(account_names) > len(self._pool):
            raise TargetError(
                f"the item needs {len(account_names)} accounts on {self.name} "
                f"({', '.join(account_names)}) but its target file lists {len(self._pool)}"
            )

    def end_item(self) -> None:
        """Clear the item's accounts again (what it created is removed); a failure is recorded
        in the evidence, and the next item that uses the account clears it before."""
        for account in self._accounts.values():
            with contextlib.suppress(TargetError):  # recorded; the verdict stands
                self._keep(f"after the item: {account.jid}", account)
        self._accounts = {}

    def _provide_account(self, name: str, password_part: str | None) -> Account:
        if password_part is not None:
            raise Unsupported(
                f"the scenario needs account {name!r} with a declared password; "
                "an external target's accounts come from its target file"
            )
        used = len(self._accounts)
        if used == len(self._pool):  # begin_item checked the item's names; this one was not among them
            raise TargetError(f"account {name!r} is one more than the {used} the target file lists")
        account = self._pool[used]
        self._keep(f"before the item: {name} is {account.jid}", account)
        return account

    def accounts(self) -> list[Account]:
        """Every account the target file lists: any of them may be named in an item's evidence."""
        return list(self._pool)

    def log_files(self) -> list[Path]:
        """The record of what the harness found and removed on the accounts, and its streams."""
        return sorted(self._records.glob("*.log")) if self._records is not None else []

    def _keep(self, heading: str, account: Account) -> None:
        """Bring ``account`` to its known state, recording what was found (TargetError: it could
        not be brought there, with the reason)."""
        if self._records is None:
            self._records = Path(tempfile.mkdtemp(prefix=f"interop-{self.name}-accounts-"))
        ctx = ActorContext(
            name="account-state",
            target=self.view(),
            account=account,
            evidence_dir=self._records,
            keylog_file=None,  # the clearing sessions' secrets are the vendor's
            secrets=[a.password for a in self._pool],
            step_timeout=STEP_TIMEOUT_S,
        )
        keeper = account_keeper(self.protocol)

        async def bounded() -> list[str]:
            async with asyncio.timeout(KEEP_TIMEOUT_S):
                return await keeper(ctx)

        try:
            # in a thread of its own: the engine asks for accounts on its running event loop
            with ThreadPoolExecutor(max_workers=1) as thread:
                lines = thread.submit(asyncio.run, bounded()).result()
        except TimeoutError:
            lines, failure = [], f"{account.jid} not in a known state within {KEEP_TIMEOUT_S:.0f} s"
        except StepOutcome as exc:
            lines, failure = [], exc.reason
        except Exception as exc:  # the harness's own bug: the item's error, never a crashed run
            lines, failure = [], f"harness error: {type(exc).__name__}: {exc}"
        else:
            failure = ""
        with (self._records / RECORD).open("a") as record:
            record.write("".join(f"{text}\n" for text in [heading, *(f"  {line}" for line in lines)]))
            if failure:
                record.write(f"  FAILED: {failure}\n")
        if failure:
            raise TargetError(f"cannot bring {account.jid} to a known state: {failure}")

    def stop(self) -> None:
        """Nothing to end: the harness did not start this server; only its records go."""
        if self._records is not None:
            shutil.rmtree(self._records, ignore_errors=True)


def load_target_file(path: Path) -> ExternalTarget:
    """A target file read as every YAML file is (safe, bounded) and checked against its schema
    (harness/schemas/target-file.schema.json): problems as file:line."""
    return ExternalTarget(read_target_file(path), path)
