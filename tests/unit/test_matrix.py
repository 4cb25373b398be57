"""harness.report.matrix: cells, truncation, escaping, scores, pair grids, the Markdown report."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import markdown
import markdown_it
import pytest

from harness.report import write_reports
from harness.report.behaviour import render_behaviour
from harness.report.matrix import (
    NOT_RUN,
    REASON_MAX,
    cell_text,
    escape_md,
    format_score,
    render_matrix,
    score,
    spec_text,
    truncate,
)
from harness.results import ItemResult, RunRecord, TargetRecord

SHA = "0123456789abcdef" * 4
LONG_REASON = (
    "server answered the wrong password with <success/> instead of <failure><not-authorized/></failure> "
    "after the second attempt, which a server administrator reads in the matrix cell before the evidence"
)
PIPE_REASON = "stream error | policy-violation"


def target(name: str, role: str = "server", knobs: dict[str, str] | None = None) -> TargetRecord:
    products = {
        "prosody": ("Prosody", "0.12.3"),
        "ejabberd": ("ejabberd", "23.01"),
        "jabberd2": ("jabberd2", "2.7.0"),
    }
    product, version = products[name]
    return TargetRecord(name, product, version, "local", f"{name}.test", "127.0.0.2", knobs or {}, role)


def item(
    scenario,
    names,
    outcome,
    *,
    level="MUST",
    category="authentication",
    reason="",
    spec=("RFC 6120", "6.4.5"),
) -> ItemResult:
    if isinstance(names, str):
        targets = [target(names)]
        suffix = names
    else:
        targets = [target(names[0], "origin"), target(names[1], "receiver")]
        suffix = f"{names[0]}->{names[1]}"
    return ItemResult(
        item_id=f"{scenario}[{suffix}]",
        scenario_id=scenario,
        title=f"{scenario} title",
        category=category,
        level=level,
        spec={"document": spec[0], "section": spec[1]},
        targets=targets,
        outcome=outcome,
        reason=reason,
        duration_s=1.0,
        started_at="2024-05-01T12:00:00Z",
        evidence={"pcap": f"items/{scenario}[{suffix}]/traffic.pcap"},
        scenario_file=f"scenarios/{category}/{scenario}.yaml",
        scenario_sha256=SHA,
        actors_connected=True,
        decided_by=[{"step": 3, "line": 30, "observed": "received <failure>"}] if outcome == "pass" else [],
    )


def make_run() -> RunRecord:
    items = [
        # authentication, three targets
        item("auth.sasl.wrong-password", "prosody", "pass"),
        item("auth.sasl.wrong-password", "ejabberd", "fail", reason=LONG_REASON),
        item("auth.sasl.wrong-password", "jabberd2", "error", reason="target did not start within 30 s"),
        item("auth.tls.plain-before-tls", "prosody", "pass", spec=("RFC 6120", "§5.3.1")),
        item(
            "auth.tls.plain-before-tls",
            "ejabberd",
            "fail",
            reason="server offered PLAIN before TLS",
            spec=("RFC 6120", "§5.3.1"),
        ),
        item(
            "auth.tls.plain-before-tls",
            "jabberd2",
            "xfail",
            reason="baseline JD2-7: PLAIN offered",
            spec=("RFC 6120", "§5.3.1"),
        ),
        item(
            "auth.sasl.scram-plus",
            "prosody",
            "unsupported",
            level="SHOULD",
            reason="mechanism SCRAM-SHA-1-PLUS not offered",
            spec=("RFC 5802", ""),
        ),
        item("auth.sasl.scram-plus", "ejabberd", "pass", level="SHOULD", spec=("RFC 5802", "")),
        item("auth.sasl.scram-plus", "jabberd2", "xpass", level="SHOULD", spec=("RFC 5802", "")),
        item(
            "auth.stream.bad-xml",
            "prosody",
            "fail",
            level="MAY",
            reason=PIPE_REASON,
            spec=("XEP-0045", "7.2"),
        ),
        # authorization: jabberd2 not run at all
        item("authz.roster.foreign", "prosody", "pass", category="authorization", spec=("RFC 6121", "2.1.3")),
        item(
            "authz.roster.foreign", "ejabberd", "pass", category="authorization", spec=("RFC 6121", "2.1.3")
        ),
        # federation: ordered pairs
        item(
            "fed.s2s.dialback",
            ("prosody", "ejabberd"),
            "pass",
            category="federation",
            spec=("XEP-0220", "2.1"),
        ),
        item(
            "fed.s2s.dialback",
            ("ejabberd", "prosody"),
            "fail",
            category="federation",
            spec=("XEP-0220", "2.1"),
            reason="receiver accepted a forged from | domain",
        ),
        item(
            "fed.s2s.dialback",
            ("prosody", "prosody"),
            "pass",
            category="federation",
            spec=("XEP-0220", "2.1"),
        ),
        item(
            "fed.s2s.dialback",
            ("ejabberd", "ejabberd"),
            "unsupported",
            category="federation",
            spec=("XEP-0220", "2.1"),
            reason="dialback disabled",
        ),
        item(
            "fed.s2s.sasl-external",
            ("prosody", "ejabberd"),
            "pass",
            level="SHOULD",
            category="federation",
            spec=("RFC 6120", "13.7.1.2.1"),
        ),
        item(
            "fed.s2s.sasl-external",
            ("ejabberd", "prosody"),
            "xpass",
            level="SHOULD",
            category="federation",
            spec=("RFC 6120", "13.7.1.2.1"),
        ),
    ]
    return RunRecord(
        run_id="run-42",
        harness_version="0.1.0",
        started_at="2024-05-01T12:00:00Z",
        finished_at="2024-05-01T12:10:00Z",
        command=["interop", "run", "--targets", "prosody,ejabberd,jabberd2"],
        host={"python": "3.11.7", "platform": "Linux"},
        selection={
            "targets": ["prosody", "ejabberd", "jabberd2"],
            "categories": [],
            "scenarios": [],
            "knobs": {},
        },
        targets=[
            target("prosody", knobs={"c2s_require_encryption": "true", "s2s_secure_auth": "true"}),
            target("ejabberd"),
            target("jabberd2"),
        ],
        items=items,
    )


# --- a small Markdown table reader for the assertions ---------------------------------------------------


def _split(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    assert cells[0] == "" and cells[-1] == "", line
    return [html.unescape(c.strip()) for c in cells[1:-1]]


def table_after(md: str, marker: str) -> list[dict[str, str]]:
    """The first table after the line that starts with ``marker``, as a list of {header: cell}."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(marker))
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(_split(line))
        elif rows:
            break
    header, separator, body = rows[0], rows[1], rows[2:]
    assert all(set(c) <= set("-:") for c in separator)
    for row in body:
        assert len(row) == len(header), (header, row)
    return [dict(zip(header, row, strict=True)) for row in body]


def by_first_column(table: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {next(iter(row.values())): row for row in table}


@pytest.fixture(scope="module")
def md() -> str:
    return render_matrix(make_run())


# --- cells ------------------------------------------------------------------------------------------------


def test_cell_texts():
    assert cell_text(item("a.b", "prosody", "pass", reason="ignored")) == "pass"
    assert (
        cell_text(item("a.b", "prosody", "fail", reason="server offered PLAIN before TLS"))
        == "FAIL: server offered PLAIN before TLS"
    )
    assert (
        cell_text(item("a.b", "prosody", "unsupported", reason="mechanism SCRAM-SHA-1-PLUS not offered"))
        == "unsupported: mechanism SCRAM-SHA-1-PLUS not offered"
    )
    assert cell_text(item("a.b", "prosody", "xfail", reason="baseline X-1")) == "xfail: baseline X-1"
    assert cell_text(item("a.b", "prosody", "xpass")) == "XPASS: known failure passed"
    assert (
        cell_text(item("a.b", "prosody", "error", reason="timeout after 10 s")) == "ERROR: timeout after 10 s"
    )
    assert cell_text(item("a.b", "prosody", "fail")) == "FAIL"


def test_truncate():
    assert truncate("short") == "short"
    assert truncate("x" * REASON_MAX) == "x" * REASON_MAX
    cut = truncate("word " * 60)
    assert len(cut) <= REASON_MAX and cut.endswith("…") and cut.startswith("word word")
    assert truncate("a\n  b") == "a b"


def test_long_reason_is_cut_at_reason_max_with_an_ellipsis():
    cell = cell_text(item("a.b", "ejabberd", "fail", reason=LONG_REASON))
    reason = html.unescape(cell.removeprefix("FAIL: "))
    assert reason.endswith("…")
    assert len(reason) == REASON_MAX
    assert LONG_REASON.startswith(reason[:-1])
    assert "before the evidence" not in cell


def test_pipes_and_angle_brackets_are_escaped():
    assert escape_md("a | b") == "a &#124; b"
    assert escape_md("<success/>") == "&lt;success/&gt;"
    assert escape_md("C:\\path") == "C:&#92;path"
    assert escape_md("&lt; [x](y) `z` *e* _u_ ~s~ #") == (
        "&amp;lt; &#91;x&#93;(y) &#96;z&#96; &#42;e&#42; &#95;u&#95; &#126;s&#126; &#35;"
    )
    assert escape_md("two\nlines") == "two lines"
    assert escape_md("c2s_require_encryption=true") == "c2s_require_encryption=true"
    assert (
        cell_text(item("a.b", "prosody", "fail", reason=PIPE_REASON))
        == "FAIL: stream error &#124; policy-violation"
    )


def test_spec_text():
    assert spec_text({"document": "RFC 6120", "section": "6.4.1"}) == "RFC 6120 §6.4.1"
    assert spec_text({"document": "RFC 6120", "section": "§6.4.1"}) == "RFC 6120 §6.4.1"
    assert spec_text({"document": "RFC 5802", "section": ""}) == "RFC 5802"


# --- scores -----------------------------------------------------------------------------------------------


def test_score_counts_passed_total_unsupported():
    s = score(make_run())
    assert list(s) == ["prosody", "ejabberd", "jabberd2"]
    assert s["prosody"]["authentication"] == {"MUST": (2, 2, 0), "SHOULD": (0, 0, 1), "MAY": (0, 1, 0)}
    assert s["ejabberd"]["authentication"] == {"MUST": (0, 2, 0), "SHOULD": (1, 1, 0), "MAY": (0, 0, 0)}
    # error and xfail count in the total, not as passed; xpass counts as passed
    assert s["jabberd2"]["authentication"] == {"MUST": (0, 2, 0), "SHOULD": (1, 1, 0), "MAY": (0, 0, 0)}
    assert "authorization" not in s["jabberd2"]
    assert s["ejabberd"]["authorization"]["MUST"] == (1, 1, 0)


def test_score_counts_pair_items_for_both_targets_once():
    s = score(make_run())
    # prosody took part in p->e pass, e->p fail, p->p pass (counted once)
    assert s["prosody"]["federation"] == {"MUST": (2, 3, 0), "SHOULD": (2, 2, 0), "MAY": (0, 0, 0)}
    # ejabberd: p->e pass, e->p fail, e->e unsupported
    assert s["ejabberd"]["federation"] == {"MUST": (1, 2, 1), "SHOULD": (2, 2, 0), "MAY": (0, 0, 0)}
    assert list(s["prosody"]) == ["authentication", "authorization", "federation"]


def test_format_score():
    assert (
        format_score({"MUST": (10, 12, 1), "SHOULD": (2, 3, 0), "MAY": (0, 0, 0)})
        == "MUST 10/12 (1 unsupported), SHOULD 2/3, MAY 0/0"
    )


def test_policy_checks_are_scored_apart_from_conformance():
    run = make_run()
    run.items.append(item("auth.policy.open-registration", "prosody", "fail", level="POLICY", reason="open"))
    run.items.append(item("auth.policy.legacy-auth", "prosody", "pass", level="POLICY"))
    levels = score(run)["prosody"]["authentication"]
    assert levels["POLICY"] == (1, 2, 0)
    assert levels["MUST"] == score(make_run())["prosody"]["authentication"]["MUST"]
    assert format_score(levels).endswith("; policy 1/2")
    assert "policy" not in format_score(score(make_run())["prosody"]["authentication"])


# --- the report -------------------------------------------------------------------------------------------


def test_header(md):
    lines = md.splitlines()
    assert lines[0] == "# Interoperability matrix: run run-42"
    assert "- **Harness version:** 0.1.0" in lines
    assert "- **Date (UTC):** 2024-05-01T12:00:00Z to 2024-05-01T12:10:00Z" in lines
    assert "- **Command:** interop run --targets prosody,ejabberd,jabberd2" in lines
    assert "- **Items:** 18 (pass 8, fail 4, error 1, unsupported 2, xfail 1, xpass 2)" in lines
    targets = by_first_column(table_after(md, "## Targets"))
    assert list(targets) == ["prosody", "ejabberd", "jabberd2"]
    assert targets["prosody"]["product"] == "Prosody"
    assert targets["prosody"]["version"] == "0.12.3"
    assert targets["prosody"]["knobs"] == "c2s_require_encryption=true, s2s_secure_auth=true"
    assert targets["ejabberd"]["version"] == "23.01"
    assert targets["ejabberd"]["knobs"] == "default"


def test_header_states_the_run_verdict_and_xpasses(md):
    lines = html.unescape(md).splitlines()
    assert "- **Run verdict:** FAILED (exit code 1)" in lines
    assert "  - auth.sasl.wrong-password[jabberd2] (MUST): error: target did not start within 30 s" in lines
    assert "  - auth.tls.plain-before-tls[ejabberd] (MUST): fail: server offered PLAIN before TLS" in lines
    assert not any("auth.stream.bad-xml" in line for line in lines if line.startswith("  - "))  # MAY finding
    assert (
        "- **Known failures that passed (update the baseline):** auth.sasl.scram-plus[jabberd2], "
        "fed.s2s.sasl-external[ejabberd->prosody]"
    ) in lines


def test_categories_in_order(md):
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Targets", "## authentication", "## authorization", "## federation", "## Legend"]


def test_category_table_cells(md):
    table = table_after(md, "## authentication")
    assert list(table[0]) == ["id", "level", "spec", "prosody", "ejabberd", "jabberd2"]
    rows = by_first_column(table)
    assert list(rows) == [
        "auth.sasl.scram-plus",
        "auth.sasl.wrong-password",
        "auth.stream.bad-xml",
        "auth.tls.plain-before-tls",
    ]
    wrong = rows["auth.sasl.wrong-password"]
    assert wrong["level"] == "MUST"
    assert wrong["spec"] == "RFC 6120 §6.4.5"
    assert wrong["prosody"] == "pass"
    assert wrong["ejabberd"].startswith("FAIL: server answered the wrong password with <success/>")
    assert wrong["ejabberd"].endswith("…")
    assert wrong["jabberd2"] == "ERROR: target did not start within 30 s"
    plain = rows["auth.tls.plain-before-tls"]
    assert plain["spec"] == "RFC 6120 §5.3.1"
    assert plain["ejabberd"] == "FAIL: server offered PLAIN before TLS"
    assert plain["jabberd2"] == "xfail: baseline JD2-7: PLAIN offered"
    scram = rows["auth.sasl.scram-plus"]
    assert (scram["level"], scram["spec"]) == ("SHOULD", "RFC 5802")
    assert scram["prosody"] == "unsupported: mechanism SCRAM-SHA-1-PLUS not offered"
    assert scram["ejabberd"] == "pass"
    assert scram["jabberd2"] == "XPASS: known failure passed"
    bad = rows["auth.stream.bad-xml"]
    assert bad["prosody"] == "FAIL: stream error | policy-violation"
    assert bad["ejabberd"] == bad["jabberd2"] == NOT_RUN


def test_raw_markdown_has_escaped_pipe_and_no_raw_tag(md):
    row = next(line for line in md.splitlines() if line.startswith("| auth.stream.bad-xml "))
    assert "stream error &#124; policy-violation" in row
    assert "<" not in md.split("## Legend")[0]


def test_target_not_in_category_has_no_column(md):
    table = table_after(md, "## authorization")
    assert list(table[0]) == ["id", "level", "spec", "prosody", "ejabberd"]
    assert table[0]["spec"] == "RFC 6121 §2.1.3"


def test_score_rows_under_each_category(md):
    auth = by_first_column(table_after(md, "Score in authentication"))
    assert auth["prosody"]["score"] == "MUST 2/2, SHOULD 0/0 (1 unsupported), MAY 0/1"
    assert auth["ejabberd"]["score"] == "MUST 0/2, SHOULD 1/1, MAY 0/0"
    assert auth["jabberd2"]["score"] == "MUST 0/2, SHOULD 1/1, MAY 0/0"
    authz = by_first_column(table_after(md, "Score in authorization"))
    assert list(authz) == ["prosody", "ejabberd"]
    assert authz["ejabberd"]["score"] == "MUST 1/1, SHOULD 0/0, MAY 0/0"
    fed = by_first_column(table_after(md, "Score in federation"))
    assert fed["prosody"]["score"] == "MUST 2/3, SHOULD 2/2, MAY 0/0"
    assert fed["ejabberd"]["score"] == "MUST 1/2 (1 unsupported), SHOULD 2/2, MAY 0/0"


def test_pair_grid_per_scenario(md):
    assert "### fed.s2s.dialback: fed.s2s.dialback title" in md
    assert "MUST, XEP-0220 §2.1. Rows: origin target; columns: receiver target (a target" in md
    grid = by_first_column(table_after(md, "### fed.s2s.dialback"))
    assert list(next(iter(grid.values()))) == ["origin \\ receiver", "prosody", "ejabberd"]
    assert grid["prosody"]["prosody"] == "pass"
    assert grid["prosody"]["ejabberd"] == "pass"
    assert grid["ejabberd"]["prosody"] == "FAIL: receiver accepted a forged from | domain"
    assert grid["ejabberd"]["ejabberd"] == "unsupported: dialback disabled"
    sasl = by_first_column(table_after(md, "### fed.s2s.sasl-external"))
    assert sasl["prosody"]["ejabberd"] == "pass"
    assert sasl["ejabberd"]["prosody"] == "XPASS: known failure passed"
    assert sasl["prosody"]["prosody"] == NOT_RUN
    assert sasl["ejabberd"]["ejabberd"] == NOT_RUN


def test_pair_summary_grid(md):
    grid = by_first_column(table_after(md, "### Pairs: passed/total"))
    assert grid["prosody"]["ejabberd"] == "2/2"
    assert grid["ejabberd"]["prosody"] == "1/2"
    assert grid["prosody"]["prosody"] == "1/1"
    assert grid["ejabberd"]["ejabberd"] == "0/0 (1 unsupported)"


def test_federation_has_no_single_target_table(md):
    section = md.split("## federation", 1)[1].split("## Legend", 1)[0]
    assert "| id " not in section


def test_legend_explains_every_verdict_in_two_lines(md):
    legend = md.split("## Legend", 1)[1].splitlines()
    for label in (
        "`pass`",
        "`FAIL: <reason>`",
        "`ERROR: <reason>`",
        "`unsupported: <reason>`",
        "`xfail: <reason>`",
        "`XPASS: <reason>`",
        f"`{NOT_RUN}`",
    ):
        index = next(i for i, line in enumerate(legend) if line.startswith(f"- {label}:"))
        assert legend[index + 1].startswith("  ") and legend[index + 1].strip()
    assert any(line.startswith("How to read a reason:") for line in legend)
    assert "SHOULD and MAY failures are findings" in md


def test_passing_run_says_so():
    run = make_run()
    run.items = [i for i in run.items if i.outcome in ("pass", "unsupported")]
    md = render_matrix(run)
    assert "- **Run verdict:** passed (exit code 0)" in md.splitlines()
    assert "Known failures that passed" not in md


def test_empty_run():
    run = make_run()
    run.items = []
    md = render_matrix(run)
    assert "No item was executed." in md
    assert "  - the run executed no item" in md.splitlines()
    assert "## Legend" in md


def test_write_reports(tmp_path):
    run = make_run()
    out = tmp_path / "reports" / "run-42"
    written = write_reports(run, out)
    assert written[:3] == [out / "matrix.md", out / "behaviour.md", out / "index.html"]
    assert written[0].read_text(encoding="utf-8") == render_matrix(run)
    assert written[1].read_text(encoding="utf-8") == render_behaviour(run)
    assert all(p.is_file() for p in written)


def test_the_test_run_is_a_valid_record(tmp_path):
    from harness.results import read_results, write_results

    run = make_run()
    assert read_results(write_results(run, tmp_path / "results.json")) == run


def test_second_instance_sits_on_the_diagonal_of_the_pair_grid():
    run = make_run()
    same = item("fed.s2s.same", ("prosody", "ejabberd"), "fail", category="federation", reason="bounced")
    second = TargetRecord(
        "prosody-2", "Prosody", "0.12.3", "local", "prosody-2.test", "127.0.0.9", {}, "receiver", "prosody"
    )
    same.targets = [target("prosody", "origin"), second]
    run.items = [same]
    md = render_matrix(run)
    grid = md.split("### fed.s2s.same")[1].split("###")[0]
    header = next(line for line in grid.splitlines() if line.startswith("| origin"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["origin \\ receiver", "prosody"]
    row = next(line for line in grid.splitlines() if line.startswith("| prosody "))
    assert "FAIL: bounced" in row
    assert same.pair == ("prosody", "prosody")


def test_an_unverified_catalogue_entry_is_marked_in_every_report(tmp_path):
    from harness.results import read_results, write_results

    run = make_run()
    for t in run.targets:
        t["verified_here"] = t["name"] != "jabberd2"
    for i in run.items:
        for t in i.targets:
            t.verified_here = t.name != "jabberd2"
    md = render_matrix(run)
    assert run.unverified_targets() == ["jabberd2"]
    assert "- **NOT VERIFIED HERE:** jabberd2: no run on the project's machines" in md
    targets = md.split("## Targets")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in targets.splitlines() if line.startswith("| ")}
    assert rows["jabberd2"].rstrip(" |").endswith("NOT VERIFIED HERE")
    assert rows["prosody"].rstrip(" |").endswith("verified here")
    write_reports(run, tmp_path)
    index = (tmp_path / "index.html").read_text()
    assert "<strong>NOT VERIFIED HERE:</strong> jabberd2" in index
    assert read_results(write_results(run, tmp_path / "results.json")) == run  # the schema has the field
    # a run of verified entries only (or external targets, which are no entry) has no such line
    for t in run.targets:
        t["verified_here"] = True
    assert "NOT VERIFIED HERE" not in render_matrix(run)


def test_the_variant_is_stated_with_what_it_means(tmp_path):
    run = make_run()
    assert "- **Variant:** default: the packaged configuration with the run's edits" in render_matrix(run)
    run.selection["variant"] = "as-installed"
    assert "- **Variant:** as-installed: the packaged configuration without the run's edits" in render_matrix(
        run
    )
    write_reports(run, tmp_path)
    assert (
        "<p>Variant: as-installed: the packaged configuration without"
        in (tmp_path / "index.html").read_text()
    )


def test_what_the_run_changed_in_the_packaged_files_is_in_every_report(tmp_path):
    from harness.results import read_results, write_results

    run = make_run()
    changes = {
        "files": {"c2s.xml": 9},
        "adds": ["c2s.xml: a TLS certificate <pemfile> the package lacks"],
        "diff": "targets/jabberd2/packaged-config.diff",
    }
    for t in run.targets:
        if t["name"] == "jabberd2":
            t["config_changes"] = changes
    md = render_matrix(run)
    section = md.split("## What the run changed in the packaged configuration")[1].split("\n## ")[0]
    assert "- **jabberd2**: c2s.xml (9 lines); diff: targets/jabberd2/packaged-config.diff" in section
    assert (
        "  - adds what the package does not configure: c2s.xml: a TLS certificate &lt;pemfile&gt;" in section
    )
    assert "prosody" not in section  # a target without edits (here: none recorded) has no line
    changes["left_out"] = ["s2s.xml: a certificate"]
    assert "  - left out (as installed): s2s.xml: a certificate" in render_matrix(run)
    (tmp_path / "targets/jabberd2").mkdir(parents=True)
    (tmp_path / "targets/jabberd2/packaged-config.diff").write_text("")  # index.html links only files there
    write_reports(run, tmp_path)
    index = (tmp_path / "index.html").read_text()
    assert '<a href="targets/jabberd2/packaged-config.diff">the diff</a>' in index
    assert "a TLS certificate &lt;pemfile&gt; the package lacks" in index
    assert read_results(write_results(run, tmp_path / "results.json")) == run  # the schema has the field


# --- hostile text from a target is inert in every common renderer ----------------------------------------

HOSTILE = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "](javascript:alert(1))",
    "| broken | table",
    "``code` span``",
    "*emph* and _under_ and ~~gone~~",
    "&lt;b&gt; \\<i>",
)


def hostile_run() -> RunRecord:
    """A run whose target (name, product, version, knobs), titles and reasons are hostile."""
    run = make_run()
    evil = TargetRecord(
        "evil|<b>x</b>", HOSTILE[0], HOSTILE[1], "external", "x.test", "127.0.0.50", {"k": HOSTILE[2]}
    )
    run.targets.append(evil.to_dict())
    run.selection["targets"].append(evil.name)
    run.run_id = HOSTILE[5]
    run.harness_version = HOSTILE[6]
    for number, text in enumerate(HOSTILE):
        hostile = item(f"auth.evil-{number}", "prosody", "fail", reason=f"stream id {text} end")
        hostile.targets = [evil]
        pair = item(
            f"fed.evil-{number}", ("prosody", "ejabberd"), "error", category="federation", reason=text
        )
        pair.title = text
        run.items += [hostile, pair]
    return run


class _Html(HTMLParser):
    """Elements (tag, attributes) and the visible text of an HTML fragment; rows per table."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tables: list[list[int]] = []  # per table: the number of cells of each row

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _commonmark(text: str) -> str:
    return markdown_it.MarkdownIt("commonmark").enable("table").render(text)


def _python_markdown(text: str) -> str:
    return markdown.markdown(text, extensions=["tables"])


@pytest.mark.parametrize("render", [_commonmark, _python_markdown], ids=["commonmark", "python-markdown"])
def test_hostile_text_is_inert_and_visible_in_both_renderers(render):
    parsed = _Html()
    parsed.feed(render(render_matrix(hostile_run())))  # what write_reports puts in matrix.md
    tags = {tag for tag, _ in parsed.elements}
    assert not tags & {"script", "img", "a", "b", "i", "em", "del", "s"}, tags
    assert not any(
        "javascript" in (value or "") or name.startswith("on")
        for _, attrs in parsed.elements
        for name, value in attrs.items()
    )
    text = "".join(parsed.text)
    for hostile in HOSTILE:
        assert hostile in text, hostile  # shown as it came, not swallowed as markup
    assert "evil|<b>x</b>" in text and "k=[click](javascript:alert(1))" in text
    # every row of every table has its header's number of cells: no cell split by a "|"
    assert all(len(set(rows)) == 1 for rows in parsed.tables), parsed.tables
    targets_table, authentication_table = parsed.tables[:2]
    assert targets_table[0] == 8  # target, product, version, driver, domain, address, knobs, entry
    assert authentication_table[0] == 3 + 4  # id, level, spec and the four targets


@pytest.mark.parametrize("render", [_commonmark, _python_markdown], ids=["commonmark", "python-markdown"])
def test_what_each_product_did_is_inert_and_side_by_side(render):
    run = hostile_run()
    parsed = _Html()
    parsed.feed(render(render_behaviour(run)))
    assert not {tag for tag, _ in parsed.elements} & {"script", "img", "a", "b", "i", "em", "del", "s"}
    text = "".join(parsed.text)
    assert all(f"stream id {hostile} end" in text for hostile in HOSTILE)
    assert all(len(set(rows)) == 1 for rows in parsed.tables), parsed.tables
    assert parsed.tables[0][0] == 1 + 4  # id and one column per target of the category, side by side
    passed = next(i for i in run.items if i.outcome == "pass" and i.decided_by)
    assert f"pass: {passed.decided_by[0]['observed']}" in text  # a pass shows how it passed
