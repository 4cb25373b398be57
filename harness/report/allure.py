"""What Allure shows of a run: one Allure test per item, its evidence, the run's environment.

allure-pytest writes the results (``--alluredir``); this module tells it what it cannot know.
An item's node id is ``<file>::<scenario>[<targets>]`` and allure-pytest derives a test's
``fullName`` (hence its ``testCaseId`` and ``historyId``) from the part before ``[`` and from
pytest parameters, which scenario items have none of: every item of one scenario would be one
Allure test with its other targets as "retries". So each item names its scenario and its target
per role as Allure parameters (which make the ``historyId`` its own) and gets a ``testCaseId`` of
its own.

The statuses follow from the exception an item ends with (``harness.plugin``): a ``fail`` is an
assertion that did not hold (Allure "failed"), an ``error`` any other exception ("broken"),
``unsupported`` a skip ("skipped"), ``xfail`` pytest's xfail (what allure-pytest makes of it).
"""

from __future__ import annotations

import re
from pathlib import Path

import allure
import pytest
from allure_commons.types import AttachmentType
from allure_commons.utils import md5

from harness.results import RunRecord
from harness.scenario.model import Scenario

ENVIRONMENT_FILE = "environment.properties"  # Allure's Environment panel, read from the results dir
_TEXT_SUFFIXES = (".log", ".out", ".err", ".txt")
# Characters CommonMark gives a meaning (a backslash makes each literal): Allure renders a
# description as Markdown, in which ``<invalid-authzid/>`` would be an HTML tag and vanish.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&=])")


def markdown_text(text: str) -> str:
    """``text`` as Markdown that renders as exactly that text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def describe_item(item: pytest.Item, scenario: Scenario, roles: dict[str, str]) -> None:
    """Label the running item, name its scenario and targets, give it an id of its own."""
    allure.dynamic.feature(scenario.category)
    allure.dynamic.story(scenario.id)
    allure.dynamic.label("level", scenario.level)
    allure.dynamic.parameter("scenario", scenario.id)
    for role, target in roles.items():
        allure.dynamic.parameter(role, target)
    allure.dynamic.description(
        markdown_text(f"{scenario.title}\n\n{scenario.spec_ref}\n\n{scenario.description}")
    )
    listener = item.config.pluginmanager.get_plugin("allure_listener")
    result = listener.allure_logger.get_test(None) if listener is not None else None
    if result is not None:  # no API sets it: allure-pytest sets md5(fullName) at setup
        result.testCaseId = md5(item.nodeid)


def attachment_type(path: Path) -> AttachmentType | None:
    """How Allure shows an evidence file (None: a download named ``*.attach``)."""
    if path.suffix == ".pcap":
        return AttachmentType.PCAP
    return AttachmentType.TEXT if path.suffix in _TEXT_SUFFIXES else None


def attach_evidence(evidence: dict[str, Path]) -> None:
    """Attach the item's evidence files to its Allure test."""
    for name, path in evidence.items():
        if path.exists():
            allure.attach.file(str(path), name=name, attachment_type=attachment_type(path))


def environment(run: RunRecord) -> dict[str, str]:
    """The run as Allure's Environment panel shows it: driver, variant, every target's product,
    version and the knobs the run set."""
    asked = run.selection.get("knobs", {})  # target -> {knob -> value}, or knob -> value for all
    every = {k: v for k, v in asked.items() if isinstance(v, str)}
    entries = {
        "run": run.run_id,
        "harness": run.harness_version,
        "driver": str(run.selection.get("driver", "")),
        "variant": run.variant,
    }
    for target in run.targets:
        name = target["name"]
        entries[f"{name}.product"] = target["product"]
        entries[f"{name}.version"] = target["version"]
        own = asked.get(name)
        knobs = {**every, **(own if isinstance(own, dict) else {})}
        entries[f"{name}.knobs"] = ", ".join(f"{k}={v}" for k, v in sorted(knobs.items())) or "none set"
    return entries


def _property(text: str, key: bool) -> str:
    """``text`` escaped for a Java properties file (read as ISO 8859-1)."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if key:
        out = re.sub(r"([=: #!])", r"\\\1", out)
    elif out.startswith(" "):
        out = "\\" + out
    return "".join(c if 0x20 <= ord(c) < 0x7F else _unicode_escape(c) for c in out)


def _unicode_escape(char: str) -> str:
    """``\\uXXXX`` per UTF-16 unit, as Java reads it."""
    units = char.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def write_environment(run: RunRecord, results_dir: Path) -> Path:
    """Write ``environment.properties`` into the Allure results folder."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ENVIRONMENT_FILE
    lines = [f"{_property(k, key=True)}={_property(v, key=False)}" for k, v in environment(run).items()]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path
