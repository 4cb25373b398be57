"""The HTML report: summary, per-category tables with only their columns, pair grids, item pages
with steps and scenario lines, no dead links, and target text escaped everywhere."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from harness.profiles import standings
from harness.report.behaviour import render_behaviour
from harness.report.html import cite_lines, item_dir, render_html
from harness.report.matrix import score
from harness.report.overview import leaders, seconds_text, totals
from tests.unit.report_run import IMG, PROFILE, SCRIPT, hostile_run, write_evidence


@pytest.fixture
def report(tmp_path: Path) -> Path:
    run = hostile_run()
    write_evidence(run, tmp_path)
    render_html(run, tmp_path)
    return tmp_path


def _page(report: Path, item_id: str) -> str:
    item = next(i for i in hostile_run().items if i.item_id == item_id)
    return (report / item_dir(item) / "index.html").read_text()


def _section(html: str, category: str) -> str:
    return html.split(f'<section class="category" id="category-{category}"')[1].split("</section>")[0]


def test_every_item_has_a_page_and_cells_link_to_it(tmp_path):
    run = hostile_run()
    write_evidence(run, tmp_path)
    written = render_html(run, tmp_path)
    assert written[:3] == [tmp_path / "index.html", tmp_path / "behaviour.html", tmp_path / "ranking.html"]
    assert len(written) == 3 + len(run.items) + 2  # and the two scenario pages
    assert sorted(written) == sorted(tmp_path.rglob("*.html"))  # every page written is listed
    index = written[0].read_text()
    assert 'href="items/auth.sasl.wrong-password_ejabberd_/index.html"' in index
    # an item without evidence still has a page (no link to /index.html)
    assert 'href="items/auth.nothing_prosody_/index.html"' in index
    assert (tmp_path / "items/auth.nothing_prosody_/index.html").is_file()
    assert 'href="/index.html"' not in index


def test_target_text_is_escaped_everywhere(report):
    for page in report.rglob("*.html"):
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html, page
        # the page's own filter script, on the index and the behaviour page only
        assert html.count("<script>") == (
            page.name in ("index.html", "behaviour.html") and page.parent == report
        )
    for name in ("behaviour.html", "ranking.html"):
        assert "&lt;img src=x onerror=alert(1)&gt;" in (report / name).read_text(), name
    index = (report / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "2.7.0 &lt;img src=x onerror=alert(1)&gt;" in index  # a version
    stream = _page(report, "fed.s2s.message-delivery[ejabberd->prosody]")
    assert "id=&#39;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&#39;" in stream


def test_summary_has_totals_exit_code_time_scores_and_leaders(report):
    index = (report / "index.html").read_text()
    summary = index.split('<section id="summary">')[1].split("</section>")[0]
    assert "<strong>Run failed</strong> (exit code 1)" in summary
    assert "(4 min 12 s)" in summary
    assert re.search(
        r'<th class="fail">fail</th>.*?</tr>\s*<tr><td>6</td><td>16</td><td>1</td>', summary, re.S
    )
    assert "<th>prosody</th><td>MUST 1/1, SHOULD 0/0 (1 unsupported), MAY 1/1</td>" in summary
    assert (
        '<tr><th>leads</th><td class="leaders">prosody</td><td class="leaders">jabberd2</td></tr>' in summary
    )


def test_every_problem_is_listed_or_counted(report):
    index = (report / "index.html").read_text()
    assert "Why the run failed: 17 problems" in index
    assert "<summary>and 7 more</summary>" in index
    for n in range(14):  # all of them are in the page, the last ones folded
        assert f"auth.many.f{n:02d}[jabberd2] (MUST): fail: failure {n}" in index


def test_config_changes_link_only_a_diff_that_is_there(report):
    index = (report / "index.html").read_text()
    assert '<a href="targets/prosody/packaged-config.diff">the diff</a>' in index
    assert "the diff: <code>targets/jabberd2/packaged-config.diff</code> (not in this folder)" in index


def _headers(table: str) -> list[str]:
    head = table.split("<thead>")[1].split("</thead>")[0]
    return re.findall(r"<th[^>]*>([^<]*)</th>", head)


def test_each_category_has_only_its_columns(report):
    index = (report / "index.html").read_text()
    auth = _section(index, "authentication")
    assert _headers(auth) == ["scenario", "level", "spec", "prosody", "ejabberd", "jabberd2"]
    fed = _section(index, "federation")
    singles, pairs = (
        fed.split('<table class="matrix singles">')[1],
        fed.split('<table class="matrix pairs">')[1],
    )
    assert _headers(singles) == ["scenario", "level", "spec", "ejabberd"]
    assert _headers(pairs) == [
        "scenario",
        "level",
        "spec",
        "prosody → prosody",
        "prosody → ejabberd",
        "ejabberd → prosody",
        "ejabberd → jabberd2",
    ]  # only the pairs that ran, none that did not (jabberd2 -> prosody)


def test_cells_of_items_that_never_ran_link_nowhere(report):
    auth = _section((report / "index.html").read_text(), "authentication")
    row = auth.split('<td data-sort="auth.nothing"')[1].split("</tr>")[0]
    assert row.count("<a ") == 1  # prosody's pass; ejabberd and jabberd2 did not run it
    assert row.count('class="notrun"') == 2


def test_pair_grid_per_scenario_and_pair_summary(report):
    fed = _section((report / "index.html").read_text(), "federation")
    grid = fed.split("<strong>fed.s2s.message-delivery</strong>")[1].split("</figure>")[0]
    assert re.findall(r"<th>([^<]*)</th>", grid) == [
        "origin \\ receiver",
        "prosody",
        "ejabberd",
        "jabberd2",
        "prosody",
        "ejabberd",
    ]
    ejabberd_row = grid.split("<tr><th>ejabberd</th>")[1].split("</tr>")[0]
    assert (
        "fed.s2s.message-delivery[ejabberd-&gt;prosody]" in ejabberd_row and 'class="notrun"' in ejabberd_row
    )
    summary = fed.split('<table class="pair-summary">')[1].split("</table>")[0]
    assert "<tr><th>prosody</th><td>1/1</td><td>1/1 (1 unsupported)</td><td>-</td></tr>" in summary
    assert "<tr><th>ejabberd</th><td>0/1</td><td>-</td><td>1/1</td></tr>" in summary


def test_item_page_has_steps_scenario_link_and_cited_lines(report):
    page = _page(report, "fed.s2s.message-delivery[ejabberd->prosody]")
    scenario = "../../scenarios/fed.s2s.message-delivery.yaml.html"
    assert f'<a class="scenario-link" href="{scenario}">' in page
    assert f'step 2 (<a href="{scenario}#L26">line 26</a>): bounced &lt;script&gt;' in page  # the reason
    steps = page.split('<table class="steps">')[1].split("</table>")[0]
    assert f'<td class="num"><a href="{scenario}#L25">line 25</a></td><td>connect</td><td>alice</td>' in steps
    assert "0.012 s" in steps and "0.200 s" in steps
    assert "<td>start</td><td>ejabberd</td>" in page  # what it waited for
    rerun = (
        f"interop rerun &#39;fed.s2s.message-delivery[ejabberd-&gt;prosody]&#39; --from {report.resolve()}"
    )
    assert f'<code class="rerun">{rerun}</code>' in page  # one command repeats the cell


def test_the_scenario_file_is_copied_with_line_anchors(report):
    copy = report / "scenarios/fed.s2s.message-delivery.yaml"
    assert (
        copy.read_bytes() == (Path(__file__).parents[2] / hostile_run().items[-3].scenario_file).read_bytes()
    )
    html = (report / "scenarios/fed.s2s.message-delivery.yaml.html").read_text()
    assert '<div id="L26"><a href="#L26">26</a>' in html
    # a scenario file not found with the recorded hash is named, not linked
    page = _page(report, "auth.many.f00[jabberd2]")
    assert "<code>scenarios/authentication/auth.gone.yaml</code> (no copy in this run" in page


def test_empty_logs_are_folded_away(report):
    page = _page(report, "auth.sasl.wrong-password[ejabberd]")
    assert '<a href="server.log">server.log</a> <span class="muted">(empty)</span>' in page
    assert "<summary>server.log</summary>" not in page
    assert "<summary>alice.xmpp.log</summary>" in page


def test_cite_lines_links_only_lines_of_the_file_and_escapes_the_rest():
    text = f"step 3 (line 24): got {SCRIPT}; also line 999 and line 0"
    html = str(cite_lines(text, "s.html", 40))
    assert html == (
        'step 3 (<a href="s.html#L24">line 24</a>): got &lt;script&gt;alert(1)&lt;/script&gt;; '
        "also line 999 and line 0"
    )
    assert str(cite_lines(IMG, None, 0)) == "&lt;img src=x onerror=alert(1)&gt;"


def test_leaders_totals_and_times():
    run = hostile_run()
    scores = score(run)
    assert leaders(scores, "authentication") == ["prosody"]
    assert leaders(scores, "federation") == ["jabberd2"]  # MUST 1/1 beats 2/3
    assert leaders(scores, "nowhere") == []
    for item in run.items:
        item.outcome = "fail"
    assert leaders(score(run), "authentication") == []  # nobody passed: nobody leads
    assert dict(totals(run))["fail"] == len(run.items) and dict(totals(run))["pass"] == 0
    assert [seconds_text(s) for s in (3.25, 42, 252, 3780)] == ["3.2 s", "42 s", "4 min 12 s", "1 h 3 min"]


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities resolved, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _html_rows(page: str, category: str) -> list[list[str]]:
    """The cells of each scenario row of a category of behaviour.html, without the level column."""
    rows = re.findall(r'<tr class="filterable".*?</tr>', _section(page, category), re.S)
    cells = [[_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]
    return [[row[0], *(c.replace(" → ", " -> ") for c in row[2:])] for row in cells]


def _md_rows(md: str, category: str) -> list[list[str]]:
    """The body rows of the tables under ``## category`` of behaviour.md, as a reader sees them."""
    part = md.split(f"\n## {category}\n")[1].split("\n## ")[0]
    tables = [t.strip() for t in part.split("\n\n") if t.strip().startswith("|")]
    return [
        [html.unescape(c.strip()) for c in line.strip("|").split("|")]
        for t in tables
        for line in t.splitlines()[2:]  # after the header and its rule
    ]


def test_behaviour_page_shows_the_rows_of_behaviour_md(report):
    run = hostile_run()
    page = (report / "behaviour.html").read_text()
    md = render_behaviour(run)
    categories = re.findall(r'<section class="category" id="category-([^"]+)"', page)
    assert categories == re.findall(r"^## (.+)$", md, re.M) == ["authentication", "federation"]
    for category in categories:
        assert _html_rows(page, category) == _md_rows(md, category), category
    auth = _section(page, "authentication")
    assert _headers(auth) == ["scenario", "level", "prosody", "ejabberd", "jabberd2"]  # side by side
    # a pass says what its decisive step saw, and links to its item page
    assert (
        '<a href="items/auth.sasl.wrong-password_prosody_/index.html" title="auth.sasl.wrong-password[prosody]">'
        '<span class="verdict">pass</span></a>: received &lt;script&gt;' in auth
    )
    pairs = _section(page, "federation").split('<table class="matrix pairs">')[1]
    assert "<td>ejabberd → prosody</td>" in pairs and 'data-targets="ejabberd prosody"' in pairs
    assert '<a href="index.html">' in page and '<a href="ranking.html">ranking</a>' in page


def test_the_index_links_behaviour_and_ranking(report):
    summary = (report / "index.html").read_text().split('<section id="summary">')[1].split("</section>")[0]
    assert '<a href="behaviour.html">behaviour.html</a>' in summary
    assert '<a href="ranking.html">ranking.html</a>' in summary


def test_ranking_page_says_why_each_target_ranks_where_it_does(report):
    run = hostile_run()
    page = (report / "ranking.html").read_text()
    assert "<h1>Ranking under the profile Campus &lt;script&gt;alert(1)&lt;/script&gt;" in page
    ranking = standings(run, PROFILE)
    sections = page.split('<section class="standing"')[1:]
    assert len(sections) == len(ranking) == 3
    for rank, (standing, section) in enumerate(zip(ranking, sections, strict=True), 1):
        assert f"<h2>{rank}. {standing.target}: " in section
        assert len(standing.costs) > 0
        costs = section.split('<table class="costs">')[1].split("</table>")[0]
        for cost in standing.costs:  # every cell that cost points, not the first five only
            item = next(i for i in run.items if i.item_id == cost.item_id)
            row = costs.split(f'<a href="{item_dir(item)}/index.html">')[1].split("</tr>")[0]
            assert f'<td>{item.category}</td><td>{cost.level}</td><td class="{cost.outcome}">' in row
            assert f'<td class="num">{cost.points:g}</td>' in row
        missed = section.split('<ul class="missed">')[1].split("</ul>")[0]
        assert [_text(li).split(":")[0] for li in re.findall(r"<li>(.*?)</li>", missed)] == standing.missed
    ejabberd = sections[1]
    assert (
        '<li>auth.sasl.wrong-password (fail): <a href="items/auth.sasl.wrong-password_ejabberd_/index.html">'
        in ejabberd
    )
    assert "<li>auth.nothing (not run)</li>" in ejabberd  # never ran: nothing to link
    weights = page.split('<table class="weights">')[1].split("</table>")[0]
    assert re.findall(r"<tr><th>([^<]*)</th>", weights)[1:] == ["every other category (*)", "federation"]
    assert '<th>federation</th><td class="num">4</td><td class="num">2</td><td class="num">0</td>' in weights


def test_no_profile_no_ranking_page(tmp_path):
    run = hostile_run()
    del run.selection["profile"]
    written = render_html(run, tmp_path)
    assert not (tmp_path / "ranking.html").exists() and tmp_path / "ranking.html" not in written
    assert "ranking.html" not in (tmp_path / "index.html").read_text()
    assert "ranking.html" not in (tmp_path / "behaviour.html").read_text()


def test_a_live_rendering_writes_only_the_pages_of_new_items(tmp_path):
    run = hostile_run()
    write_evidence(run, tmp_path)
    written: set[str] = set()
    first = render_html(run, tmp_path, written)
    assert written == {i.item_id for i in run.items}
    page = tmp_path / item_dir(run.items[0]) / "index.html"
    page.unlink()  # a page written once is not written again
    again = render_html(run, tmp_path, written)
    assert not page.exists() and page in first and page not in again
    assert tmp_path / "index.html" in again  # the summary pages are
