"""The HTML report in a real browser: headless Chromium opens a report of a hostile synthetic run.

What only a browser shows: that no script a target smuggled into a reason, a stream id, a
version or a profile runs (no alert, no console error), that the filters, the search and the
sorting work (on the index and on the behaviour page), that an item page has its steps and its
scenario link, and that the behaviour and ranking pages lead to item pages. Beside it, that no link of any page
points at a missing file. It also writes the screenshots the README shows (``docs/img/report-*.png``), so
they always show the current report.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from harness.options import PROJECT_ROOT
from harness.report.html import render_html
from tests.unit.report_run import hostile_run, write_evidence

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = PROJECT_ROOT / "docs" / "img"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason="chromium and chromedriver are not installed (ci/setup.sh installs them)",
)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("report")
    run = hostile_run()
    write_evidence(run, run_dir)
    render_html(run, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _open(browser: webdriver.Chrome, page: Path) -> None:
    """Load ``page`` and fail on any alert or console error it caused."""
    browser.get(page.as_uri())
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (an alert would be a target's script running)
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe


def _visible_rows(browser: webdriver.Chrome, tables: str = "table.matrix") -> list[str]:
    """The scenario ids of the rows shown in ``tables`` (a CSS selector), top to bottom."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
        ".filter(r => r.getClientRects().length).map(r => r.cells[0].textContent)",
        tables,
    )


def _choose(browser: webdriver.Chrome, name: str, value: str) -> None:
    Select(browser.find_element(By.ID, f"f-{name}")).select_by_value(value)


def _clear(browser: webdriver.Chrome) -> None:
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=reset]").click()


def test_index_filters_search_and_sorting(browser, report):
    _open(browser, report / "index.html")
    all_rows = _visible_rows(browser)
    assert "auth.sasl.wrong-password" in all_rows and "fed.s2s.message-delivery" in all_rows
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "report-index.png"))
    assert "docs/img/report-index.png" in (PROJECT_ROOT / "README.md").read_text()

    _choose(browser, "verdict", "error")
    assert _visible_rows(browser) == ["auth.sasl.wrong-password"]
    _clear(browser)
    _choose(browser, "target", "jabberd2")
    rows = _visible_rows(browser)
    assert "auth.many.f00" in rows and "auth.nothing" not in rows  # prosody-only row hidden
    headers = [
        th.text
        for th in browser.find_elements(By.CSS_SELECTOR, "#category-authentication table.matrix th")
        if th.is_displayed()
    ]
    assert headers == ["scenario", "level", "spec", "jabberd2"]  # other targets' columns hidden
    _clear(browser)
    _choose(browser, "category", "federation")
    assert set(_visible_rows(browser)) == {"fed.s2s.message-delivery", "fed.dialback.verify", "fed.probe"}
    _clear(browser)
    browser.find_element(By.ID, "f-search").send_keys("BOUNCED")  # a reason, any case
    assert _visible_rows(browser) == ["fed.s2s.message-delivery"]
    _clear(browser)
    assert _visible_rows(browser) == all_rows

    level = browser.find_element(By.XPATH, "//section[@id='category-authentication']//th[text()='level']")
    level.click()
    assert _visible_rows(browser, "#category-authentication table.matrix")[-1] == "auth.nothing"  # MAY last
    level.click()
    assert _visible_rows(browser, "#category-authentication table.matrix")[0] == "auth.nothing"


def test_item_page_shows_steps_and_links_the_scenario(browser, report):
    _open(browser, report / "index.html")
    link = browser.find_element(By.CSS_SELECTOR, "a[title='fed.s2s.message-delivery[ejabberd->prosody]']")
    link.click()
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    steps = browser.find_elements(By.CSS_SELECTOR, "table.steps tr")
    assert [cell.text for cell in steps[2].find_elements(By.TAG_NAME, "td")][:3] == ["2", "line 26", "expect"]
    scenario = browser.find_element(By.CSS_SELECTOR, "a.scenario-link")
    assert scenario.get_attribute("href").endswith("scenarios/fed.s2s.message-delivery.yaml.html")
    reason_link = browser.find_element(By.CSS_SELECTOR, "p.reason a")
    assert reason_link.get_attribute("href").endswith("fed.s2s.message-delivery.yaml.html#L26")
    assert not browser.find_elements(By.XPATH, "//summary[text()='server.log']")  # empty log folded away
    browser.save_screenshot(str(SCREENSHOTS / "report-federation-item.png"))
    reason_link.click()
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    assert browser.find_element(By.ID, "L26").text.startswith("26")


class _Links(HTMLParser):
    """Every link of a page (``<a href>``)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.found += [value for name, value in attrs if name == "href" and value is not None]


def test_no_link_points_at_a_missing_file(report):
    """Every link of every page (index, behaviour, ranking, items, scenarios) resolves, as a browser
    resolves it, to a file inside the run folder (read without the browser: 30 page loads would be
    slow)."""
    pages = list(report.rglob("*.html"))
    assert {report / "behaviour.html", report / "ranking.html"} <= set(pages)
    assert len(pages) == 3 + len(hostile_run().items) + 2
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        assert parser.found, page
        for href in parser.found:
            url = urljoin(page.as_uri(), href)
            assert urlsplit(url).scheme == "file", f"{page.relative_to(report)}: {href} leaves the run"
            target = Path(unquote(urlsplit(url).path))
            assert target.is_file(), f"{page.relative_to(report)}: dead link {href}"
            assert report in target.parents, f"{page.relative_to(report)}: {href} leaves the run"


def test_an_item_without_evidence_has_a_page_too(browser, report):
    _open(browser, report / "index.html")
    browser.find_element(By.CSS_SELECTOR, "a[title='auth.nothing[prosody]']").click()
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    assert browser.find_element(By.TAG_NAME, "h1").text == "auth.nothing[prosody]"


def test_behaviour_page_filters_and_leads_to_an_item_page(browser, report):
    _open(browser, report / "behaviour.html")
    all_rows = _visible_rows(browser)
    assert "auth.sasl.wrong-password" in all_rows and "fed.s2s.message-delivery" in all_rows
    browser.save_screenshot(str(SCREENSHOTS / "report-behaviour.png"))
    assert "docs/img/report-behaviour.png" in (PROJECT_ROOT / "README.md").read_text()
    _choose(browser, "verdict", "error")
    assert _visible_rows(browser) == ["auth.sasl.wrong-password"]
    _clear(browser)
    browser.find_element(By.ID, "f-search").send_keys("RECEIVED")  # what a pass saw, any case
    passed = {"auth.sasl.wrong-password", "auth.nothing", "fed.s2s.message-delivery", "fed.probe"}
    assert set(_visible_rows(browser)) == passed  # the rows with a pass; their reasons are empty
    _clear(browser)
    assert _visible_rows(browser) == all_rows
    browser.find_element(By.CSS_SELECTOR, "a[title='fed.s2s.message-delivery[ejabberd->prosody]']").click()
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    assert browser.find_element(By.TAG_NAME, "h1").text == "fed.s2s.message-delivery[ejabberd->prosody]"


def test_ranking_page_leads_to_the_cells_that_cost_points(browser, report):
    _open(browser, report / "index.html")
    browser.find_element(By.CSS_SELECTOR, "p.ranking-link a").click()
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(
        "Ranking under the profile Campus <script>"
    )
    costs = browser.find_elements(By.CSS_SELECTOR, "#target-3 table.costs a")
    assert len(costs) == 15  # every cell that cost jabberd2 points, not only the costliest five
    costs[0].click()
    _open(browser, Path(unquote(urlsplit(browser.current_url).path)))
    assert browser.find_element(By.TAG_NAME, "h1").text == "auth.many.f00[jabberd2]"
