"""The federation preflight: what it finds wrong with an event's setup, before any item runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.actors import PeerIdentity
from harness.environment.pki import CertificateAuthority
from harness.preflight import Member, event_issuer, federation_problems
from harness.targets.external import ExternalTarget, load_target_file
from harness.targets.spec import CatalogueError

PEERS = [PeerIdentity("peer-1.test", "127.5.0.13"), PeerIdentity("peer-2.test", "127.5.0.14")]
PLAN = {"peer-1.test": "127.9.0.15", "peer-2.test": "127.9.0.16", "jabberd2.test": "127.9.0.17"}


def target_file(folder: Path, name: str, ca: CertificateAuthority, **federation: object) -> ExternalTarget:
    """A target file whose federation section names ``ca`` (and the plan, unless overridden)."""
    path = folder / f"{name}.target.yaml"
    section = {"ca_file": str(ca.cert_path), "ca_key": str(ca.key_path), "names": PLAN} | federation
    data = {
        "name": name,
        "product": name,
        "domain": f"{name}.test",
        "host": "127.9.0.11" if name == "vendor-x" else "127.9.0.12",
        "ports": {"c2s": 5222, "s2s": 5269},
        "ca_file": str(ca.cert_path),
        "accounts": [{"user": "a", "password": "p"}],
        "federation": section,
    }
    path.write_text(yaml.safe_dump(data))
    return load_target_file(path)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path / "event-ca", "Event CA")


def member(target: ExternalTarget) -> Member:
    return Member(target.name, target.domain, target.address, target)


def test_the_run_issues_from_the_ca_the_target_files_name(tmp_path: Path, ca: CertificateAuthority) -> None:
    x = target_file(tmp_path, "vendor-x", ca)
    y = target_file(tmp_path, "vendor-y", ca)
    assert event_issuer([x, y]) == (ca.cert_path, ca.key_path)


def test_two_target_files_naming_different_cas_are_a_usage_error(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    other = CertificateAuthority.create(tmp_path / "other-ca", "Other CA")
    x = target_file(tmp_path, "vendor-x", ca)
    y = target_file(tmp_path, "vendor-y", other)
    with pytest.raises(CatalogueError, match="the event needs one CA"):
        event_issuer([x, y])


def test_a_key_that_is_not_the_certificates_is_a_usage_error(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    other = CertificateAuthority.create(tmp_path / "other-ca", "Other CA")
    x = target_file(tmp_path, "vendor-x", ca, ca_key=str(other.key_path))
    with pytest.raises(CatalogueError, match="is not the key of ca.crt"):
        event_issuer([x])


def test_a_target_file_without_federation_asks_for_no_ca(tmp_path: Path, ca: CertificateAuthority) -> None:
    x = target_file(tmp_path, "vendor-x", ca)
    plain = ExternalTarget({**_data(x), "federation": None}, tmp_path / "plain.yaml")
    assert event_issuer([plain]) is None


def _data(target: ExternalTarget) -> dict[str, object]:
    return {
        "name": "plain",
        "product": "p",
        "domain": "plain.test",
        "host": target.address,
        "ports": target.ports,
        "verify": False,
        "accounts": [{"user": "a", "password": "p"}],
    }


def no_certificate_problem(target: ExternalTarget, ca_file: Path) -> str | None:
    return None


def test_a_well_set_up_pair_has_no_problem(tmp_path: Path, ca: CertificateAuthority) -> None:
    x = target_file(tmp_path, "vendor-x", ca, resolver="127.9.0.10")
    local = Member("jabberd2", "jabberd2.test", "127.5.0.11", None)
    answers = {("127.9.0.10", d): a for d, a in PLAN.items()} | {
        ("127.5.0.10", "vendor-x.test"): "127.9.0.11"
    }
    problems = federation_problems(
        [member(x), local], PEERS, "127.5.0.10", no_certificate_problem, lambda s, d: answers.get((s, d))
    )
    assert problems == []


def test_a_name_the_plan_lacks_is_named(tmp_path: Path, ca: CertificateAuthority) -> None:
    x = target_file(tmp_path, "vendor-x", ca, names={"peer-1.test": "127.9.0.15"})
    local = Member("jabberd2", "jabberd2.test", "127.5.0.11", None)
    problems = federation_problems(
        [member(x), local], PEERS, "127.5.0.10", no_certificate_problem, lambda s, d: "127.9.0.11"
    )
    assert problems == [
        f"vendor-x cannot reach {domain}: the event's name plan for it (federation: names) has no address for it"
        for domain in ("jabberd2.test", "peer-2.test")
    ]


def test_a_resolver_that_answers_otherwise_than_planned_is_named(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    x = target_file(tmp_path, "vendor-x", ca, resolver="127.9.0.10")
    y = target_file(tmp_path, "vendor-y", ca)
    answers = {d: a for d, a in PLAN.items()} | {"vendor-y.test": "127.9.0.99"}
    problems = federation_problems(
        [member(x), member(y)], PEERS, "127.5.0.10", no_certificate_problem, lambda s, d: answers.get(d)
    )
    assert problems == ["vendor-x (through 127.9.0.10): vendor-y.test resolves to 127.9.0.99, not 127.9.0.12"]


def test_a_resolver_that_does_not_answer_is_named_once(tmp_path: Path, ca: CertificateAuthority) -> None:
    x = target_file(tmp_path, "vendor-x", ca, resolver="127.9.0.10")

    def silent(server: str, domain: str) -> str | None:
        raise TimeoutError("timed out")

    problems = federation_problems([member(x)], PEERS, "127.5.0.10", no_certificate_problem, silent)
    assert problems == [
        "vendor-x (through 127.9.0.10): the DNS server does not answer (TimeoutError: timed out)"
    ]


def test_the_certificate_is_checked_against_every_ca_that_must_trust_it(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    vendor_ca = CertificateAuthority.create(tmp_path / "vendor-ca", "Vendor CA")
    x = target_file(tmp_path, "vendor-x", ca)
    x.ca_file = vendor_ca.cert_path  # its certificate comes from its own CA
    y = target_file(tmp_path, "vendor-y", ca)
    checked: list[tuple[str, Path]] = []

    def refuse_the_event_ca(target: ExternalTarget, ca_file: Path) -> str | None:
        checked.append((target.name, ca_file))
        return (
            "certificate verification failed"
            if ca_file == ca.cert_path and target.name == "vendor-x"
            else None
        )

    problems = federation_problems(
        [member(x), member(y)], PEERS, "127.5.0.10", refuse_the_event_ca, lambda s, d: None
    )
    assert (("vendor-x", vendor_ca.cert_path) in checked) and (("vendor-x", ca.cert_path) in checked)
    assert problems == [
        "a peer server the harness plays, checking vendor-x against the CA vendor-y trusts: "
        "certificate verification failed"
    ]


def test_the_runs_own_servers_must_resolve_the_external_target(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    x = target_file(tmp_path, "vendor-x", ca)
    local = Member("jabberd2", "jabberd2.test", "127.5.0.11", None)
    problems = federation_problems(
        [member(x), local], PEERS, "127.5.0.10", no_certificate_problem, lambda s, d: None
    )
    assert problems == [
        "the run's servers (through 127.5.0.10): vendor-x.test resolves to nothing, not 127.9.0.11"
    ]
