"""The HTML report links every cell to its evidence and escapes what came from a target."""

from pathlib import Path

from harness.report.html import render_html
from harness.results import ItemResult, RunRecord, TargetRecord

HOSTILE = "<script>alert(1)</script><failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"


def _run(tmp_path: Path) -> RunRecord:
    folder = "items/auth.x_prosody_"
    (tmp_path / folder).mkdir(parents=True)
    (tmp_path / folder / "alice.xmpp.log").write_text(f"S->C {HOSTILE}\n")
    (tmp_path / folder / "traffic.pcap").write_bytes(b"\xd4\xc3\xb2\xa1")
    target = TargetRecord(
        name="prosody",
        product="prosody",
        version="0.12.3",
        driver="local",
        domain="prosody.test",
        address="127.0.0.11",
        knobs={"k": "v"},
    )
    item = ItemResult(
        item_id="auth.x[prosody]",
        scenario_id="auth.x",
        title="A title",
        category="authentication",
        level="MUST",
        spec={"document": "RFC 6120", "section": "6.5.10", "quote": "the <quote>"},
        targets=[target],
        outcome="fail",
        reason=f"got {HOSTILE}",
        duration_s=0.5,
        started_at="2026-01-01T00:00:00Z",
        evidence={"alice.xmpp.log": f"{folder}/alice.xmpp.log", "pcap": f"{folder}/traffic.pcap"},
        scenario_file="scenarios/authentication/auth.x.yaml",
        scenario_sha256="ab" * 32,
        actors_connected=True,
    )
    return RunRecord(
        run_id="r1",
        harness_version="0.1.0",
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:00:01Z",
        command=["interop", "run"],
        host={},
        selection={"targets": ["prosody"], "categories": [], "scenarios": [], "knobs": {}},
        targets=[target],
        items=[item],
    )


def test_cells_link_to_item_pages_with_inline_evidence(tmp_path):
    written = render_html(_run(tmp_path), tmp_path)
    index = (tmp_path / "index.html").read_text()
    assert 'href="items/auth.x_prosody_/index.html"' in index
    page = (tmp_path / "items/auth.x_prosody_/index.html").read_text()
    assert 'href="alice.xmpp.log"' in page and 'href="traffic.pcap"' in page
    assert "S-&gt;C &lt;script&gt;" in page  # the stream log is shown inline, escaped
    assert len(written) == 2


def test_target_text_is_escaped_everywhere(tmp_path):
    render_html(_run(tmp_path), tmp_path)
    for page in (tmp_path / "index.html", tmp_path / "items/auth.x_prosody_/index.html"):
        html = page.read_text()
        assert "<script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_an_item_page_shows_what_its_verdict_rests_on(tmp_path):
    run = _run(tmp_path)
    item = run.items[0]
    item.outcome, item.reason = "pass", ""
    item.decided_by = [{"step": 4, "line": 38, "observed": f"received {HOSTILE}"}]
    render_html(run, tmp_path)
    page = (tmp_path / "items/auth.x_prosody_/index.html").read_text()
    assert "What the verdict rests on" in page
    assert "step 4 (line 38): received &lt;script&gt;" in page and "<script>" not in page
