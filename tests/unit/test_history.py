"""interop history: cells over several runs, changed ones first, links only to pages that exist."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path

from harness.report.history import history_rows, render_history
from tests.unit.test_results import item, run_of, target

P = target("prosody")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v for k, v in attrs if k == "href" and v and not v.startswith("data:")]
        self.scripts += tag == "script"


def test_changed_cells_first_and_links_only_where_pages_exist(tmp_path: Path) -> None:
    old = dataclasses.replace(
        run_of([item("auth.a", [P]), item("auth.b", [P])]), started_at="2024-05-01T10:00:00Z"
    )
    new = dataclasses.replace(
        run_of([item("auth.a", [P]), item("auth.b", [P], "fail", reason="<script>alert(1)</script>")]),
        run_id="second",
        started_at="2024-05-02T10:00:00Z",
    )
    old_dir, new_dir = tmp_path / "r1", tmp_path / "r2"
    page = new_dir / "items" / "auth.b[prosody]" / "index.html"  # the evidence folder of item()
    page.parent.mkdir(parents=True)
    page.write_text("item")
    out = tmp_path / "site" / "history.html"
    rows = history_rows([(old, old_dir), (new, new_dir)], out)
    assert [(r.cell, r.changed) for r in rows] == [("auth.a[prosody]", False), ("auth.b[prosody]", True)][
        ::-1
    ]
    assert [c.link for c in rows[0].cells] == [None, "../r2/items/auth.b[prosody]/index.html"]
    render_history([(new, new_dir), (old, old_dir)], out)  # oldest first, whatever the order given
    text = out.read_text()
    assert text.index("20240501-120000-abcd") < text.index("second")
    parser = Links()
    parser.feed(text)
    assert parser.scripts == 0 and "&lt;script&gt;" in text
    assert all((out.parent / href).is_file() for href in parser.hrefs)
