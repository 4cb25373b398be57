"""The live report (``interop run --live``): the run's own HTML report, served while the run goes.

It lives where results arrive (the controller of a parallel run, the one process of a serial
run), never in a worker. Every finished item marks the report changed; a thread of its own
re-renders the run's pages from the record as it stands (``RunState.record``, :func:`render_html`
into the run folder), once per burst of results (:data:`DEBOUNCE_S`) and never more than half
of its time, so the run is not slowed much. aiohttp, in another thread with its own event loop,
serves the run folder, the summary pages from the last rendering with one script tag added, and
a stream of Server-Sent Events per open page: the progress (done/total, verdicts, elapsed) and
each new rendering of that page, which the script swaps in without a reload, the reader's filters
kept. At the end the stream carries the final report, the one written to the run folder (which
has no live script), and the server stops: sending it to a browser that does not read is cut
after :data:`SHUTDOWN_S`, so no browser holds up the end of a run.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiohttp import web

from harness.options import LiveAddress
from harness.progress import RunProgress
from harness.report.html import render_html
from harness.report.html.pages import BEHAVIOUR, INDEX, RANKING
from harness.results import RunRecord

DEBOUNCE_S = 0.25  # results that arrive this close together render once
SHUTDOWN_S = 2.0  # what the end of a run gives open pages to receive the final report
LIVE_PAGES = (INDEX, BEHAVIOUR, RANKING)  # the pages that change while the run goes
SCRIPT_PATH = "/_live/live.js"
EVENTS_PATH = "/_live/events"
WAITING = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Interop run (live)</title>'
    '<link rel="icon" href="data:,"></head><body><p>No item has finished yet; the report appears '
    "here when the first one does.</p></body></html>"
)

# Served at SCRIPT_PATH; the tag that loads it says which page it is on and which rendering.
SCRIPT = """\
/* interop run --live: swaps in each new rendering of this page and shows the run's progress. */
(function () {
  "use strict";
  var tag = document.currentScript;
  var progress = null, received = 0;
  var banner = document.createElement("p");
  banner.id = "live-progress";
  banner.setAttribute("role", "status");
  banner.style.cssText = "background:#fff4c2;border:1px solid #d8c26a;padding:0.4rem 0.6rem;margin-top:0";

  function clock(seconds) {
    var s = Math.floor(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function show() {
    if (!progress || !document.body) { return; }
    var p = progress;
    var elapsed = p.elapsed_s + (p.finished ? 0 : (Date.now() - received) / 1000);
    var counts = p.done + " of " + (p.total || "?") + " items done \\u00b7 " + p.verdicts +
      " \\u00b7 " + clock(elapsed) + " elapsed";
    banner.textContent = p.finished
      ? "Run ended: " + counts + ". This is the report written to " + p.folder +
        "/; the live view has stopped, so open that folder's pages for the rest."
      : "Live: " + counts + ". The page fills in as items finish.";
    if (banner.parentNode !== document.body) { document.body.prepend(banner); }
  }

  function swap(html) {
    var next = new DOMParser().parseFromString(html, "text/html").body;
    var kept = Array.prototype.map.call(document.querySelectorAll("#filters [id]"), function (field) {
      return [field.id, field.value];
    });
    var scrolled = window.scrollY;
    document.body.replaceWith(next);
    kept.forEach(function (pair) {
      var field = document.getElementById(pair[0]);
      if (field) { field.value = pair[1]; }
    });
    /* scripts a parser made for another document stay inert: run the page's own again */
    Array.prototype.forEach.call(document.body.querySelectorAll("script"), function (inert) {
      var script = document.createElement("script");
      script.textContent = inert.textContent;
      inert.replaceWith(script);
    });
    window.scrollTo(0, scrolled);
  }

  var source = new EventSource(
    "/_live/events?page=" + encodeURIComponent(tag.dataset.page) + "&version=" + tag.dataset.version);
  source.onmessage = function (event) {
    var message = JSON.parse(event.data);
    progress = message.progress;
    received = Date.now();
    if (progress.finished) { source.close(); }
    if (message.html !== null) { swap(message.html); }
    show();
  };
  document.addEventListener("DOMContentLoaded", show);
  window.setInterval(function () { if (progress && !progress.finished) { show(); } }, 1000);
}());
"""


def with_script(html: str, page: str, version: int) -> str:
    """``html`` with the live script in its head: the served page, never the written one."""
    tag = f'<script src="{SCRIPT_PATH}" data-page="{page}" data-version="{version}"></script>\n'
    return html.replace("</head>", tag + "</head>", 1)


class LiveServer:
    """The report's web server: aiohttp on its own event loop in a daemon thread.

    :meth:`publish` (from any thread) hands it the progress and, after a rendering, the pages
    (name -> HTML); every open page's event stream then sends what changed."""

    def __init__(self, address: LiveAddress, folder: Path, progress: dict[str, Any]) -> None:
        self.address = address
        self.folder = folder
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="interop-live", daemon=True)
        self._runner: web.AppRunner | None = None
        self._progress = progress
        self._pages: dict[str, str] = {}
        self._version = 0  # of the pages: each rendering is one more
        self._changed = asyncio.Event()  # set, and replaced, at every publish

    def start(self) -> str:
        """Listen (an OSError when the address is taken or not this host's) and serve; the URL."""
        family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
        sock = socket.create_server((self.address.host, self.address.port), family=family)
        self.url = f"http://{LiveAddress(self.address.host, sock.getsockname()[1])}/"
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result()
        return self.url

    def publish(self, progress: dict[str, Any], pages: dict[str, str] | None = None) -> None:
        self._loop.call_soon_threadsafe(self._update, progress, pages)

    def close(self) -> None:
        """Stop serving, once the open pages got what was published last (:data:`SHUTDOWN_S` at
        most); again is a no-op."""
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_get("/", self._root)
        app.router.add_get(SCRIPT_PATH, self._script)
        app.router.add_get(EVENTS_PATH, self._events)
        for page in LIVE_PAGES:
            app.router.add_get(f"/{page}", self._page)
        self.folder.mkdir(parents=True, exist_ok=True)
        app.router.add_static("/", self.folder)  # item pages, evidence, scenarios: as written
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def _update(self, progress: dict[str, Any], pages: dict[str, str] | None) -> None:
        self._progress = progress
        if pages:
            self._pages = pages
            self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/{INDEX}")

    async def _script(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=SCRIPT, content_type="text/javascript")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        page = request.path.lstrip("/")
        html = self._pages.get(page, WAITING if page == INDEX else None)
        if html is None:
            raise web.HTTPNotFound()
        return web.Response(
            text=with_script(html, page, self._version),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """One page's stream: the progress now and at every change, and the page's HTML when
        there is a rendering newer than the one it shows (``version``, or on a reconnection
        the last event's id), until the run ends."""
        page = request.query.get("page", "")
        if page not in LIVE_PAGES:
            raise web.HTTPNotFound()
        try:
            shown = int(request.headers.get("Last-Event-ID") or request.query.get("version", "-1"))
        except ValueError:
            raise web.HTTPBadRequest() from None
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        try:
            while True:
                changed = self._changed
                html = self._pages.get(page) if self._version != shown else None
                shown = self._version
                message = json.dumps({"progress": self._progress, "html": html})
                await response.write(f"id: {shown}\ndata: {message}\n\n".encode())
                if self._progress["finished"]:
                    return response
                await changed.wait()
        except ConnectionResetError:  # the page was closed
            return response


class Recorded(Protocol):
    """What the live report reads of a run (``harness.plugin.RunState``)."""

    run_dir: Path

    def record(self) -> RunRecord: ...


class Renderer:
    """Runs ``render`` in a thread of its own whenever :meth:`changed` was called: a burst of
    changes once, and pausing after each rendering as long as it took (at most half the time
    rendering, whatever the size of the report)."""

    def __init__(self, render: Callable[[], None]) -> None:
        self._render = render
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interop-live-render", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def changed(self) -> None:
        self._changed.set()

    def stop(self) -> None:
        """Render no more; returns when a rendering under way is done."""
        self._stopping.set()
        self._changed.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while self._changed.wait() and not self._stopping.wait(DEBOUNCE_S):
            self._changed.clear()
            began = time.monotonic()
            try:
                self._render()
            except Exception as exc:  # a live view that fails must not fail the run
                print(f"interop: live report not updated: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._stopping.wait(time.monotonic() - began)


class LiveReport:
    """The pytest plugin object of ``--live``: starts the server when the session starts, has
    the report rendered as results arrive, and ends with the final report."""

    def __init__(self, address: LiveAddress, progress: RunProgress, state: Callable[[], Recorded]) -> None:
        self.progress = progress  # the run's own count (harness.progress), not a second one
        self._state = state
        self.server: LiveServer | None = None
        self.address = address
        self.renderer = Renderer(self._render)
        self._item_pages: set[str] = set()  # items whose pages a rendering wrote (written once)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.server = LiveServer(self.address, self._state().run_dir, self._progress())
        try:
            url = self.server.start()
        except OSError as exc:
            raise pytest.UsageError(f"--live {self.address}: cannot listen there: {exc}") from None
        self.renderer.start()
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        say = reporter.write_line if reporter is not None else print
        say(f"interop: live report at {url}")
        if not self.address.loopback:
            say(f"interop: {self.address.host} is not loopback: other hosts can read the report")

    @pytest.hookimpl(trylast=True)  # after RunProgress counted the items
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._publish()

    @pytest.hookimpl(trylast=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._publish()

    @pytest.hookimpl(trylast=True)  # after the run recorded the item and RunProgress counted it
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if getattr(report, "interop_item", None) is not None:
            self._publish()
            self.renderer.changed()

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Generator[None, object, object]:
        """No rendering while the run writes its final report; then that report goes out."""
        self.renderer.stop()
        try:
            return (yield)
        finally:
            self._publish(finished=True, pages=self._pages())
            self._close()

    def pytest_unconfigure(self) -> None:
        """Stop, when the session ended before :meth:`pytest_sessionfinish` could."""
        self._close()

    def _close(self) -> None:
        self.renderer.stop()
        if self.server is not None:
            self.server.close()
            self.server = None

    def _render(self) -> None:
        state = self._state()
        render_html(state.record(), state.run_dir, self._item_pages)  # new items' pages only
        self._publish(pages=self._pages())

    def _pages(self) -> dict[str, str]:
        """The summary pages as the run folder has them now."""
        folder = self._state().run_dir
        return {
            page: (folder / page).read_text(encoding="utf-8")
            for page in LIVE_PAGES
            if (folder / page).is_file()
        }

    def _progress(self, finished: bool = False) -> dict[str, Any]:
        """What the page's banner shows (the run's progress, as the terminal shows it)."""
        return {
            "done": self.progress.done,
            "total": self.progress.total,
            "verdicts": self.progress.verdict_counts(),
            "elapsed_s": round(time.monotonic() - self.progress.started, 1),
            "finished": finished,
            "folder": str(self._state().run_dir),
        }

    def _publish(self, finished: bool = False, pages: dict[str, str] | None = None) -> None:
        if self.server is not None:
            self.server.publish(self._progress(finished), pages)
