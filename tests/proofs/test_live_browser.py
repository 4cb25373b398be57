"""The live report in a real browser: ``interop run --live`` against the test double.

Three external targets run ``auth.sasl.wrong-password``, one worker each: the double, and two
targets this test holds, loopback listeners that keep every connection open and unanswered until
the test lets go (then they refuse them). Headless Chromium opens the live page while the held
items wait. The test lets go of the first: its item ends in an error, whose line on the run's
output marks when the controller has its result, and its cell must be on the page within 2 s,
without a reload, while the run goes on (the reader's filter kept). Then of the second: the page
shows the final report, the run folder's report has no live script, and the browser logged no
error.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.live import SCRIPT_PATH
from harness.plugin import PROJECT_ROOT
from harness.results import read_results
from tests.doubles.target import DOMAIN, next_host, running_double
from tests.doubles.xmpp_server import Pki, pki_from_ca
from tests.proofs.test_can_fail import DOUBLE_ACCOUNTS, double_target_file
from tests.unit import test_html_browser
from tests.unit.test_html_browser import browser  # noqa: F401 (the fixture: headless Chromium)

pytestmark = test_html_browser.pytestmark  # skipped where chromium is not installed

SCENARIO = "auth.sasl.wrong-password"
FREE = f"{SCENARIO}[double-free]"
FIRST, SECOND = (f"{SCENARIO}[double-held-{n}]" for n in (1, 2))
CELL_WITHIN_S = 2.0  # the bound: a finished item's cell is on the page this soon


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pki_from_ca(tmp_path_factory.mktemp("double-pki"), DOMAIN)


class HeldServer:
    """A loopback listener that accepts connections and never answers, until :meth:`let_go`
    closes them all and stops listening: an item on it finishes when the test says."""

    def __init__(self) -> None:
        self.host = next_host()
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self._listener.accept()[0])
            except OSError:  # let go
                return

    def let_go(self) -> None:
        if self._thread.is_alive():
            self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._thread.join()
        for connection in self.held:
            connection.close()


class Run:
    """``interop run --live`` in the background; every line it prints, with when it came."""

    def __init__(self, args: list[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness.cli", "run", *args],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))

    def line(self, pattern: str) -> tuple[float, re.Match[str]]:
        """The first line matching ``pattern`` (waiting for it): when it came, and its match."""

        def found() -> tuple[float, re.Match[str]] | None:
            matches = ((at, re.search(pattern, line)) for at, line in list(self.lines))
            return next(((at, m) for at, m in matches if m), None)

        return self.wait(found, f"a line matching {pattern!r}")

    def wait(self, what: Callable[[], Any], description: str, timeout: float = 60.0) -> Any:
        """``what()`` once it is truthy (polled every 20 ms); failing, with the run's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.02)
        output = "".join(line for _, line in self.lines)[-4000:]
        raise AssertionError(f"no {description} after {timeout} s; the run printed:\n{output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def _cell(browser, item: str) -> str | None:  # noqa: F811
    """The verdict of ``item``'s cell on the page, None while it has none."""
    return browser.execute_script(
        "var a = document.querySelector('a[title=\"' + arguments[0] + '\"]');"
        "return a ? a.closest('td').dataset.verdict : null;",
        item,
    )


def _banner(browser) -> str:  # noqa: F811
    return browser.execute_script(
        "var p = document.getElementById('live-progress'); return p ? p.textContent : '';"
    )


def test_cells_fill_in_as_items_finish(browser, pki: Pki, tmp_path: Path) -> None:  # noqa: F811
    first, second = HeldServer(), HeldServer()
    out = tmp_path / "run"
    with running_double(pki, (), accounts=dict(DOUBLE_ACCOUNTS)) as double:
        files = [double_target_file(double, pki, "free", tmp_path)] + [
            double_target_file(
                double,
                pki,
                f"held-{n}",
                tmp_path,
                host=held.host,
                ports={"c2s": held.port, "c2s_tls": held.port},
            )
            for n, held in ((1, first), (2, second))
        ]
        selection = [*(arg for f in files for arg in ("--target-file", str(f))), "--scenario", SCENARIO]
        run = Run([*selection, "--jobs", "3", "--out", str(out), "--live"])
        try:
            _, url = run.line(r"live report at (http://127\.0\.0\.1:\d+/)")
            browser.get(url.group(1))
            browser.execute_script("window.notReloaded = true;")
            assert run.wait(lambda: _cell(browser, FREE), f"cell {FREE}") == "pass"
            run.wait(lambda: first.held and second.held, "connections to the held targets")
            assert _cell(browser, FIRST) is None
            assert _banner(browser).startswith("Live: 1 of 3 items done"), _banner(browser)
            browser.find_element("id", "f-search").send_keys("no such row")  # the reader's filter

            first.let_go()
            finished, _ = run.line(rf"ERROR\s+{re.escape(FIRST)}")
            assert run.wait(lambda: _cell(browser, FIRST), f"cell {FIRST}") == "error"
            assert time.monotonic() - finished < CELL_WITHIN_S, "the cell came late"
            assert _banner(browser).startswith("Live: 2 of 3 items done"), _banner(browser)
            search = browser.execute_script("return document.getElementById('f-search').value;")
            assert search == "no such row"
            assert browser.find_element("id", "f-count").text == "0 of 1 scenario rows shown"  # applied

            second.let_go()
            run.wait(lambda: _banner(browser).startswith("Run ended: 3 of 3"), "final report on the page")
            assert run.process.wait(timeout=60) == 1  # the errors fail the run
        finally:
            first.let_go()
            second.let_go()
            run.stop()
    assert browser.execute_script("return window.notReloaded === true;"), "the page was reloaded"
    assert [_cell(browser, item) for item in (FREE, FIRST, SECOND)] == ["pass", "error", "error"]
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe
    written = (out / "index.html").read_text()
    assert SCRIPT_PATH not in written and SECOND in written
    outcomes = {i.item_id: i.outcome for i in read_results(out / "results.json").items}
    assert outcomes == {FREE: "pass", FIRST: "error", SECOND: "error"}
