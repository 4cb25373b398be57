"""The live report's parts without a browser: ``--live``'s address, the server (pages, the event
stream, the end), the renderer's debounce, and the plugin object fed as a run feeds it."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _pytest.config.argparsing import Parser
from rich.console import Console

from harness import options
from harness.cli import build_parser
from harness.live import DEBOUNCE_S, SCRIPT_PATH, LiveReport, LiveServer, Renderer, with_script
from harness.options import LiveAddress, live_address
from harness.progress import RunProgress
from harness.results import RunRecord
from tests.unit.report_run import hostile_run

LOOPBACK = LiveAddress("127.0.0.1", 0)
PAGE = '<!doctype html><html><head><title>t</title></head><body><p id="n">{}</p></body></html>'


# -- --live ----------------------------------------------------------------------------------


def test_live_is_off_unless_asked_and_loopback_on_a_free_port_when_given_bare() -> None:
    assert build_parser().parse_args(["run"]).live is None
    given = build_parser().parse_args(["run", "--live", "--jobs", "2"])
    assert given.live == LOOPBACK and given.jobs == 2
    assert options.pytest_args(given) == ["--live", "127.0.0.1:0", "--jobs", "2"]
    parser = Parser(_ispytest=True)
    options.add_to_pytest(parser.getgroup("interop"))
    assert parser.parse(options.pytest_args(given)).live == LOOPBACK


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("8080", LiveAddress("127.0.0.1", 8080)),
        ("127.0.0.2:0", LiveAddress("127.0.0.2", 0)),
        ("[::1]:8080", LiveAddress("::1", 8080)),
        ("192.0.2.7:80", LiveAddress("192.0.2.7", 80)),  # written out: the user's choice
    ],
)
def test_live_addresses(text: str, address: LiveAddress) -> None:
    assert live_address(text) == address
    assert live_address(str(address)) == address  # what interop hands pytest
    assert address.loopback == (address.host != "192.0.2.7")


@pytest.mark.parametrize(
    "text", ["localhost:8080", "example.org:80", "127.0.0.1:http", "127.0.0.1:70000", ""]
)
def test_live_refuses_names_and_bad_ports(text: str) -> None:
    """A name could resolve off loopback: only an IP address the user wrote is taken."""
    with pytest.raises(argparse.ArgumentTypeError):
        live_address(text)


# -- the server --------------------------------------------------------------------------------


def _progress(done: int, finished: bool = False) -> dict[str, Any]:
    return {"done": done, "total": 2, "verdicts": f"pass {done}", "elapsed_s": 1.0, "finished": finished}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(LOOPBACK, tmp_path, _progress(0))
    live.start()
    try:
        yield live
    finally:
        live.close()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


class Events:
    """The event stream of one page, read in a thread: the messages so far."""

    def __init__(self, url: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ended = threading.Event()
        self._response = urllib.request.urlopen(url, timeout=10)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._response:
            if line.startswith(b"data: "):
                self.messages.append(json.loads(line[len(b"data: ") :]))
        self.ended.set()

    def next(self, count: int) -> dict[str, Any]:
        """The ``count``-th message, once it came."""
        _until(lambda: len(self.messages) >= count, f"message {count} of {self.messages}")
        return self.messages[count - 1]

    def first(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first message that is ``wanted``, once it came."""
        _until(lambda: any(wanted(m) for m in list(self.messages)), f"such a message in {self.messages}")
        return next(m for m in self.messages if wanted(m))


def _until(condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.01)


def test_the_server_serves_the_pages_with_the_script_and_the_run_folder(
    server: LiveServer, tmp_path: Path
) -> None:
    waiting = _get(server.url)  # / leads to index.html, which waits for the first rendering
    assert "No item has finished yet" in waiting
    assert f'<script src="{SCRIPT_PATH}" data-page="index.html" data-version="0"></script>' in waiting
    assert "EventSource" in _get(server.url + SCRIPT_PATH.lstrip("/"))
    (tmp_path / "items").mkdir()
    (tmp_path / "items" / "log.txt").write_text("evidence")
    assert _get(server.url + "items/log.txt") == "evidence"
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(server.url + "behaviour.html")  # not rendered yet

    server.publish(_progress(1), {"index.html": PAGE.format("one")})
    served = _get(server.url + "index.html")
    assert served == with_script(PAGE.format("one"), "index.html", 1)
    assert served.index(SCRIPT_PATH) < served.index("</head>")


def test_a_page_hears_of_every_change_and_gets_only_renderings_it_lacks(server: LiveServer) -> None:
    events = Events(server.url + "_live/events?page=index.html&version=0")
    assert events.next(1) == {"progress": _progress(0), "html": None}  # nothing newer than it shows
    server.publish(_progress(1))  # an item finished; not rendered yet
    assert events.next(2) == {"progress": _progress(1), "html": None}
    server.publish(_progress(1), {"index.html": PAGE.format("one"), "behaviour.html": "b"})
    assert events.next(3) == {"progress": _progress(1), "html": PAGE.format("one")}
    assert not events.ended.is_set()

    late = Events(server.url + "_live/events?page=index.html&version=0")  # a page opened before it
    assert late.next(1)["html"] == PAGE.format("one")
    current = Events(server.url + "_live/events?page=index.html&version=1")
    assert current.next(1)["html"] is None

    server.publish(_progress(2, finished=True), {"index.html": PAGE.format("final")})
    for stream in (events, late, current):
        assert stream.ended.wait(5), "the stream ends with the run"
        assert stream.messages[-1] == {"progress": _progress(2, finished=True), "html": PAGE.format("final")}


def test_close_sends_the_last_word_then_stops_listening(tmp_path: Path) -> None:
    live = LiveServer(LOOPBACK, tmp_path, _progress(0))
    live.start()
    events = Events(live.url + "_live/events?page=index.html&version=0")
    events.next(1)
    live.publish(_progress(2, finished=True), {"index.html": PAGE.format("final")})
    live.close()
    assert events.ended.wait(5)
    assert events.messages[-1]["html"] == PAGE.format("final")
    with pytest.raises(urllib.error.URLError):
        _get(live.url)
    live.close()  # again: nothing to do


def test_an_unknown_page_has_no_stream(server: LiveServer) -> None:
    with pytest.raises(urllib.error.HTTPError, match="404"):
        _get(server.url + "_live/events?page=items/x/index.html")


def test_a_taken_port_is_an_error_when_starting(server: LiveServer, tmp_path: Path) -> None:
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(OSError):
        LiveServer(LiveAddress("127.0.0.1", port), tmp_path, _progress(0)).start()


# -- the renderer ------------------------------------------------------------------------------


def test_changes_close_together_render_once() -> None:
    renderings: list[float] = []
    renderer = Renderer(lambda: renderings.append(time.monotonic()))
    renderer.start()
    try:
        for _ in range(3):
            renderer.changed()
            time.sleep(DEBOUNCE_S / 4)
        _until(lambda: renderings, "rendering")
        time.sleep(DEBOUNCE_S * 2)  # time for a second rendering, were there one
    finally:
        renderer.stop()
    assert len(renderings) == 1


def test_stop_waits_for_a_rendering_under_way() -> None:
    began, release, done = threading.Event(), threading.Event(), threading.Event()

    def render() -> None:
        began.set()
        release.wait(5)
        done.set()

    renderer = Renderer(render)
    renderer.start()
    renderer.changed()
    assert began.wait(5)
    stopping = threading.Thread(target=renderer.stop)
    stopping.start()
    stopping.join(0.3)
    assert stopping.is_alive() and not done.is_set()  # the final report must not race a rendering
    release.set()
    stopping.join(5)
    assert not stopping.is_alive() and done.is_set()


# -- the plugin object, fed as a run feeds it ----------------------------------------------------


@dataclasses.dataclass
class FakeState:
    """The run so far: the first ``done`` items of a finished synthetic run."""

    run_dir: Path
    run: RunRecord
    done: int = 0

    def record(self) -> RunRecord:
        return dataclasses.replace(self.run, items=self.run.items[: self.done])


def test_the_report_is_rendered_as_results_arrive_and_ends_with_the_written_one(tmp_path: Path) -> None:
    state = FakeState(tmp_path / "run", hostile_run())
    progress = RunProgress(Console(file=io.StringIO()))
    progress.total = len(state.run.items)
    live = LiveReport(LOOPBACK, progress, lambda: state)
    session: Any = SimpleNamespace(
        config=SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda _: None))
    )
    live.pytest_sessionstart(session)
    try:
        assert live.server is not None
        url = live.server.url
        events = Events(url + "_live/events?page=index.html&version=0")
        assert events.next(1)["progress"]["done"] == 0
        first = state.run.items[0]
        report: Any = SimpleNamespace(interop_item=first.to_dict(), nodeid=first.item_id)
        state.done = 1
        progress.pytest_runtest_logreport(report)
        live.pytest_runtest_logreport(report)
        rendered = events.first(lambda message: message["html"] is not None)
        assert rendered["progress"]["done"] == 1
        assert f'title="{first.item_id}"' in rendered["html"]
        assert (state.run_dir / "index.html").is_file()  # rendered into the run folder

        hooks = live.pytest_sessionfinish(session)
        next(hooks)  # the run writes its final report now
        (state.run_dir / "index.html").write_text(PAGE.format("final"))
        with pytest.raises(StopIteration):
            hooks.send(None)
        assert events.ended.wait(5)
        assert events.messages[-1]["progress"]["finished"] is True
        assert events.messages[-1]["html"] == PAGE.format("final")
        with pytest.raises(urllib.error.URLError):
            _get(url)  # stopped with the session
    finally:
        live.pytest_unconfigure()
