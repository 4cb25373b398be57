"""harness.report.allure: escaped descriptions, pcap attachments, the Environment panel."""

from __future__ import annotations

from pathlib import Path

from allure_commons.types import AttachmentType
from markdown_it import MarkdownIt

from harness.report.allure import attachment_type, environment, markdown_text, write_environment
from tests.unit.test_results import run_of


def test_a_description_renders_as_the_text_it_is():
    text = "Refuse with <invalid-authzid/> (RFC 6120 §6.3.8): *not* [this](x) & `that`\n\n# no heading"
    html = MarkdownIt().render(markdown_text(text))
    assert "&lt;invalid-authzid/&gt;" in html and "<invalid-authzid" not in html
    assert "*not* [this](x) &amp; `that`" in html and "<h1>" not in html and "<em>" not in html


def test_evidence_attachment_types():
    assert attachment_type(Path("items/x/traffic.pcap")) is AttachmentType.PCAP
    assert AttachmentType.PCAP.mime_type == "application/vnd.tcpdump.pcap"
    assert AttachmentType.PCAP.extension == "pcap"
    assert attachment_type(Path("items/x/alice.xmpp.log")) is AttachmentType.TEXT
    assert attachment_type(Path("items/x/tls-keys.keylog")) is None


def test_environment_names_driver_variant_products_versions_and_knobs(tmp_path: Path):
    run = run_of([])
    run.selection |= {"driver": "docker", "variant": "hardened"}
    env = environment(run)
    assert env["driver"] == "docker" and env["variant"] == "hardened"
    assert env["prosody.product"] == "Prosody" and env["prosody.version"] == "1.2.3"
    assert env["prosody.knobs"] == "c2s_require_encryption=true, s2s_secure_auth=true"
    assert env["ejabberd.knobs"] == "c2s_require_encryption=true"
    written = write_environment(run, tmp_path / "allure-results").read_text(encoding="ascii")
    assert "prosody.knobs=c2s_require_encryption\\=true" not in written  # values keep their '='
    assert "prosody.knobs=c2s_require_encryption=true, s2s_secure_auth=true\n" in written
    assert "driver=docker\n" in written


def test_properties_are_escaped_as_java_reads_them(tmp_path: Path):
    run = run_of([])
    run.targets[0]["version"] = "0.12 ünïcode\n😀"
    written = write_environment(run, tmp_path).read_text(encoding="ascii")
    assert "prosody.version=0.12 \\u00fcn\\u00efcode\\n\\ud83d\\ude00\n" in written
