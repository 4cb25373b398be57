"""The docker driver's decisions, without an engine: networking options (host and bridge),
what `interop targets clean` removes, the catalogue's docker keys, image choice and the
default selection. The real engine is exercised by tests/integration/test_docker_driver.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from harness.resources import CATALOGUE
from harness.targets import docker_images
from harness.targets.docker import OWNER_LABEL, RUN_LABEL, clean_leftovers, owner_alive
from harness.targets.docker_network import BridgeNetworking, HostNetworking, TargetAddressing, networking
from harness.targets.spec import CatalogueError, load_spec
from harness.topology import Selection, Topology, by_default

ADDRESSING = TargetAddressing(
    address="127.5.0.11",
    names=["prosody.test", "conference.prosody.test"],
    ports={"c2s": 5222, "s2s": 5269},
    dns_address="127.5.0.10",
    hosts={"prosody.test": "127.5.0.11", "ejabberd.test": "127.5.0.12"},
)


class FakeCollection:
    """A docker SDK collection (containers, networks, volumes) that records what happens."""

    def __init__(self, things: list[Any] | None = None) -> None:
        self.things = things or []
        self.created: list[tuple[str, dict[str, Any]]] = []

    def list(
        self,
        filters: dict[str, Any] | None = None,
        names: list[str] | None = None,
        sparse: bool = False,
        **_: Any,
    ) -> list:
        found = [t for t in self.things if _has_labels(t, (filters or {}).get("label", []))]
        if names is not None:
            found = [t for t in found if t.name in names]
        if sparse:  # the engine's list answer itself: no inspect, Names instead of Name
            return [SparseThing(t) for t in found]
        if any(getattr(t, "vanished", False) for t in found):  # docker-py inspects each one
            raise docker.errors.NotFound("No such container (removed after the listing)")
        return list(found)

    def create(self, name: str, **options: Any) -> Any:
        self.created.append((name, options))
        thing = FakeThing(name, options.get("labels") or {}, self)
        self.things.append(thing)
        return thing


def _has_labels(thing: Any, wanted: str | list[str]) -> bool:
    """The engine's label filter: every ``key`` or ``key=value`` given must hold."""
    labels = thing.attrs.get("Config", {}).get("Labels") or thing.attrs.get("Labels") or {}
    for entry in [wanted] if isinstance(wanted, str) else wanted:
        key, has_value, value = entry.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


class SparseThing:
    """A container as ``containers.list(sparse=True)`` gives it: no name, top-level Labels."""

    def __init__(self, thing: FakeThing) -> None:
        self.thing = thing
        self.name = None
        labels = thing.attrs.get("Config", {}).get("Labels") or thing.attrs.get("Labels")
        self.attrs = {"Labels": labels, "Names": [f"/{thing.name}"]}

    def remove(self, **options: Any) -> None:
        if getattr(self.thing, "vanished", False):
            raise docker.errors.NotFound("No such container")
        self.thing.remove(**options)


class FakeThing:
    def __init__(
        self, name: str, labels: dict[str, str], home: FakeCollection, container: bool = False
    ) -> None:
        self.name = name
        self.home = home
        self.attrs = {"Config": {"Labels": labels}} if container else {"Labels": labels}
        self.removed = False

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.removed = True
        self.removed_volumes = v
        self.home.things.remove(self)


class FakeClient:
    def __init__(self) -> None:
        self.containers = FakeCollection()
        self.networks = FakeCollection()
        self.volumes = FakeCollection()
        self.api = SimpleNamespace(create_endpoint_config=lambda aliases: {"Aliases": aliases})


def test_host_networking_puts_every_container_on_the_machine_with_the_runs_names() -> None:
    host = HostNetworking()
    for options in (host.first_container(FakeClient(), ADDRESSING), host.process_container(ADDRESSING, "x")):
        assert options["network_mode"] == "host"
        assert options["dns"] == ["127.5.0.10"]
        assert options["dns_opt"] == ["timeout:1", "attempts:1"]
        assert options["extra_hosts"] == ADDRESSING.hosts
    assert host.listen_address(ADDRESSING) == "127.5.0.11"


def test_bridge_networking_names_containers_by_domain_and_publishes_on_loopback() -> None:
    client = FakeClient()
    bridge = networking("bridge", "r1", {RUN_LABEL: "r1"})
    assert isinstance(bridge, BridgeNetworking)
    first = bridge.first_container(client, ADDRESSING)
    assert client.networks.created == [("interop-r1", {"driver": "bridge", "labels": {RUN_LABEL: "r1"}})]
    assert first["network"] == "interop-r1"
    assert first["networking_config"] == {"interop-r1": {"Aliases": ADDRESSING.names}}
    assert first["ports"] == {"5222/tcp": ("127.5.0.11", 5222), "5269/tcp": ("127.5.0.11", 5269)}
    # a target's processes share its first container's network namespace (as under host)
    assert bridge.process_container(ADDRESSING, "abc") == {"network_mode": "container:abc"}
    assert bridge.listen_address(ADDRESSING) == "0.0.0.0"
    bridge.first_container(client, ADDRESSING)  # a second target: the same network
    assert len(client.networks.created) == 1
    bridge.close(client)
    assert client.networks.things == []


def test_an_unknown_network_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of host, bridge"):
        networking("overlay", "r1", {})


def _leftover(client: FakeClient, kind: str, name: str, owner: str) -> FakeThing:
    home = getattr(client, kind)
    thing = FakeThing(name, {RUN_LABEL: "r", OWNER_LABEL: owner}, home, container=kind == "containers")
    home.things.append(thing)
    return thing


def test_clean_removes_what_gone_runs_left_and_spares_live_ones() -> None:
    client = FakeClient()
    here = socket.gethostname()
    dead = f"{here}:{2**22 + 12345}"  # above pid_max: no such process
    live = f"{here}:{os.getpid()}"
    gone = [
        _leftover(client, "containers", "c-dead", dead),
        _leftover(client, "networks", "n-dead", dead),
        _leftover(client, "volumes", "v-dead", dead),
    ]
    kept = [
        _leftover(client, "containers", "c-live", live),
        _leftover(client, "volumes", "v-elsewhere", "h2:1"),
    ]
    removed = clean_leftovers(client)  # type: ignore[arg-type]
    assert removed == ["container c-dead", "network n-dead", "volume v-dead"]
    assert all(t.removed for t in gone) and not any(t.removed for t in kept)
    assert gone[0].removed_volumes, "a container goes with the anonymous volumes of its image"
    assert clean_leftovers(client, everything=True) == ["container c-live", "volume v-elsewhere"]  # type: ignore[arg-type]


def test_clean_survives_a_container_removed_while_it_runs() -> None:
    """A killed run's workers may still remove their containers while clean lists them."""
    client = FakeClient()
    dead = f"{socket.gethostname()}:{2**22 + 12345}"
    vanishing = _leftover(client, "containers", "c-vanishing", dead)
    vanishing.vanished = True  # type: ignore[attr-defined]
    _leftover(client, "containers", "c-dead", dead)
    assert clean_leftovers(client) == ["container c-dead"]  # type: ignore[arg-type]


def test_clean_of_one_owner_removes_its_things_even_while_it_lives() -> None:
    """The run's own sweep after its workers ended: what they left, and nothing of another run."""
    client = FakeClient()
    here = socket.gethostname()
    mine, other = f"{here}:{os.getpid()}", f"{here}:1"
    _leftover(client, "containers", "c-mine", mine)
    _leftover(client, "volumes", "v-mine", mine)
    kept = _leftover(client, "containers", "c-other", other)
    assert clean_leftovers(client, owned_by=mine) == ["container c-mine", "volume v-mine"]  # type: ignore[arg-type]
    assert not kept.removed


def test_owner_alive_reads_host_and_pid() -> None:
    assert owner_alive(f"{socket.gethostname()}:{os.getpid()}")
    assert not owner_alive(f"{socket.gethostname()}:{2**22 + 1}")
    assert owner_alive("another-host:1")  # only that host can tell


def _folder(tmp_path: Path, docker_yaml: str) -> Path:
    folder = tmp_path / "p"
    folder.mkdir(parents=True)
    (folder / "target.yaml").write_text(
        "product: p\nprotocol: xmpp\nuser: u\nports: {c2s: 5222}\nprocesses: []\n" + docker_yaml
    )
    return folder


@pytest.mark.parametrize(
    ("docker_yaml", "message"),
    [
        ("docker: {build: Dockerfile}\n", "needs image"),
        ("docker: {image: a:b, build: Dockerfile, pull: true}\n", "not both"),
        ("docker: {image: a:b, build: Nofile}\n", "is not a file"),
    ],
)
def test_a_wrong_docker_section_says_what_to_write(tmp_path: Path, docker_yaml: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        load_spec(_folder(tmp_path, docker_yaml))


def test_an_entry_runs_with_a_driver_when_it_says_how(tmp_path: Path) -> None:
    spec = load_spec(_folder(tmp_path, "docker: {image: vendor/x:1}\nverified: []\n"))
    assert spec.runs_with("docker") and not spec.runs_with("local")
    assert not by_default(spec, "docker")  # not verified here: named with --targets only


def _product(root: Path, name: str, extra: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "target.yaml").write_text(
        f"product: {name}\nprotocol: xmpp\nuser: u\nports: {{c2s: 5222}}\nprocesses: []\n{extra}"
    )


def test_default_selection_is_what_was_verified_with_the_driver(tmp_path: Path) -> None:
    for product in ("prosody", "ejabberd", "jabberd2"):
        spec = load_spec(CATALOGUE / product)
        assert by_default(spec, "docker") == ("docker" in spec.verified)
    base, vendor = tmp_path / "base", tmp_path / "vendor"
    _product(base, "v", "docker: {image: v:1}\nverified: [docker]\n")
    _product(vendor, "x", "docker: {image: x:1}\n")
    chosen = Topology(Selection(driver="docker", catalogues=[vendor]), base, tmp_path / "run")
    assert chosen.names == ["v"]  # x is never chosen by default: not verified here
    named = Topology(Selection(targets=["x"], driver="docker", catalogues=[vendor]), base, tmp_path / "r")
    assert named.names == ["x"]
    with pytest.raises(CatalogueError, match="cannot run with --driver local"):
        Topology(Selection(targets=["x"], catalogues=[vendor]), base, tmp_path / "r")
    with pytest.raises(CatalogueError, match="already in the catalogue"):
        Topology(Selection(driver="docker", catalogues=[base]), base, tmp_path / "r")
    with pytest.raises(
        CatalogueError, match="none of the catalogue's products is verified with --driver local"
    ):
        Topology(Selection(), base, tmp_path / "r")


class FakeImages:
    def __init__(self, present: dict[str, dict[str, str]]) -> None:
        self.present = present
        self.built: list[dict[str, Any]] = []
        self.pulled: list[str] = []

    def get(self, name: str) -> Any:
        if name not in self.present:
            raise docker.errors.ImageNotFound(name)
        return SimpleNamespace(id=f"sha256:{name}", labels=self.present[name])

    def build(self, **options: Any) -> None:
        self.built.append(options)
        self.present[options["tag"]] = options["labels"]

    def pull(self, name: str) -> None:
        self.pulled.append(name)
        self.present[name] = {}


def test_a_built_image_is_rebuilt_only_when_its_dockerfile_or_base_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(docker_images.BASE_ENV, raising=False)
    images = FakeImages({docker_images.BASE_IMAGE: {}})
    client = SimpleNamespace(images=images)
    spec = load_spec(CATALOGUE / "prosody")
    assert docker_images.product_image(client, spec) == "interop/prosody:bookworm"  # type: ignore[arg-type]
    assert images.built[0]["buildargs"] == {"BASE": docker_images.BASE_IMAGE}
    assert images.built[0]["network_mode"] == "host"
    docker_images.product_image(client, spec)  # type: ignore[arg-type]
    assert len(images.built) == 1
    images.present[docker_images.BASE_IMAGE] = {}
    images.get = lambda name, get=images.get: (  # the base changed: another id
        SimpleNamespace(id="sha256:new", labels={}) if name == docker_images.BASE_IMAGE else get(name)
    )
    docker_images.product_image(client, spec)  # type: ignore[arg-type]
    assert len(images.built) == 2


def test_where_a_registry_is_reachable_the_base_can_be_debians_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(docker_images.BASE_ENV, "debian:bookworm")
    images = FakeImages({})
    assert docker_images.base_image(SimpleNamespace(images=images)) == "debian:bookworm"  # type: ignore[arg-type]
    assert images.pulled == ["debian:bookworm"]


def test_an_image_neither_built_nor_pulled_must_be_in_the_engine(tmp_path: Path) -> None:
    from harness.verdict import TargetError

    spec = load_spec(_folder(tmp_path, "docker: {image: vendor/x:ci}\n"))
    images = FakeImages({})
    with pytest.raises(TargetError, match="not in the engine"):
        docker_images.product_image(SimpleNamespace(images=images), spec)  # type: ignore[arg-type]
    pulled = load_spec(_folder(tmp_path / "b", "docker: {image: vendor/x:1, pull: true}\n"))
    assert docker_images.product_image(SimpleNamespace(images=images), pulled) == "vendor/x:1"  # type: ignore[arg-type]
    assert images.pulled == ["vendor/x:1"]


def test_the_base_installs_from_this_machines_debian_mirror(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert docker_images.apt_mirror((deb822,)) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("deb [arch=amd64] http://m2.example/debian bookworm main\n")
    assert docker_images.apt_mirror((tmp_path / "none", legacy)) == "http://m2.example/debian"
    assert docker_images.apt_mirror((tmp_path / "none",)) == docker_images.DEFAULT_MIRROR


def test_every_catalogue_entry_loads_and_an_unverified_one_says_so_in_its_notes() -> None:
    """Entries for products that only come as images are written from the vendors' sources:
    until a run here verifies one, its NOTES.md must open by saying so, and a run never picks it
    by default."""
    for folder in sorted(p for p in CATALOGUE.iterdir() if (p / "target.yaml").is_file()):
        spec = load_spec(folder)
        unverified = [d for d in ("local", "docker") if spec.runs_with(d) and d not in spec.verified]
        if unverified:
            notes = (folder / "NOTES.md").read_text()
            assert "NOT VERIFIED HERE" in notes.split("\n\n")[0] + notes.split("\n\n")[1], folder.name
            assert not any(by_default(spec, d) for d in unverified), folder.name
