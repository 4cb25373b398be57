"""Hostile and broken YAML: the experiment of issue 15 (600 broken copies of the shipped
scenarios) as a test. Every copy is answered with the loader's error at a line, in time: never a
traceback, a hang, or code run from a tag. The same holds for profiles and baselines, and for
``interop validate`` as a user runs it.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness import resources
from harness.baseline import BaselineError, read_file
from harness.profiles import ProfileError, load_profile
from harness.scenario.loader import ScenarioError, load_scenario, scenario_files
from harness.yaml_file import MAX_BYTES, MAX_DEPTH, YamlFileError

SECONDS_PER_FILE = 1.0  # an alias bomb or 10000 brackets hung or crashed the loader before
PWNED = "pwned"  # what the tags below would create if any code ran
TAGS = (
    f"!!python/object/apply:os.system ['touch {PWNED}']",
    "!!python/name:os.system",
    f"!!python/object/new:subprocess.Popen [[touch, {PWNED}]]",
    "!unknown-local-tag value",
)
SCENARIOS = scenario_files(resources.SCENARIOS)
BASELINE = """\
known_failures:
  auth.sasl.plain: no PLAIN here
  auth.sasl.retry-limit:
    reason: no limit yet
    link: https://tracker.example/1
"""

# A broken copy: its text (or bytes), and the line the error must name (None: any line, for
# damage whose line depends on where it falls; a range: anywhere in what was added).
Broken = tuple[str | bytes, int | range | None, str]
Breaker = Callable[[str, random.Random], Broken]


def block_keys(text: str) -> list[tuple[yaml.Node, yaml.Node]]:
    """Keys of block mappings that start their line, with their values: where a line can be
    changed and the line of the change is known."""
    lines = text.splitlines()
    found = []

    def walk(node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not node.flow_style and not lines[key.start_mark.line][: key.start_mark.column].strip():
                    found.append((key, value))
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    walk(yaml.compose(text, Loader=yaml.SafeLoader))
    return found


def one_line_values(text: str) -> list[yaml.Node]:
    return [
        value
        for key, value in block_keys(text)
        if isinstance(value, yaml.ScalarNode)
        and value.style in (None, "'", '"')
        and value.end_mark.line == key.start_mark.line
    ]


def replace_value(text: str, rng: random.Random, new: str) -> tuple[str, int]:
    value = rng.choice(one_line_values(text))
    return text[: value.start_mark.index] + new + text[value.end_mark.index :], value.start_mark.line + 1


def tag_in_a_value(text: str, rng: random.Random) -> Broken:
    return *replace_value(text, rng, rng.choice(TAGS)), "tags are not allowed here"


def tag_on_the_document(text: str, rng: random.Random) -> Broken:
    return f"--- {rng.choice(TAGS[:3]).split(' ')[0]}\n{text}", 1, "tags are not allowed here"


def tag_on_a_key(text: str, rng: random.Random) -> Broken:
    return f"{rng.choice(TAGS)}: x\n{text}", 1, "tags are not allowed here"


def deep_brackets(text: str, rng: random.Random) -> Broken:
    opening, closing = rng.choice((("[", "]"), ("{a: ", "}")))
    deep = opening * 10_000 + closing * 10_000
    return *replace_value(text, rng, deep), f"nested more than {MAX_DEPTH} levels"


def deep_blocks(text: str, rng: random.Random) -> Broken:
    start = text.count("\n") + 1
    nested = "".join("  " * level + f"k{level}:\n" for level in range(2 * MAX_DEPTH))
    return text + nested + "  " * 64 + "end\n", range(start, start + 2 * MAX_DEPTH), "nested more than"


def alias_bomb(text: str, rng: random.Random) -> Broken:
    """Billion laughs: ten lines, each ten aliases of the one before."""
    start = text.count("\n") + 1
    bomb = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
    )
    return text + bomb, range(start, start + 10), "alias *a"


def huge(text: str, rng: random.Random) -> Broken:
    return text + "# " + "x" * MAX_BYTES + "\n", 1, f"larger than {MAX_BYTES} bytes"


def tab_indent(text: str, rng: random.Random) -> Broken:
    line = rng.choice([key.start_mark.line for key, _ in block_keys(text) if key.start_mark.column >= 2])
    lines = text.splitlines(keepends=True)
    lines[line] = "\t" + lines[line][2:]
    return "".join(lines), line + 1, "not valid YAML"


def duplicate_key(text: str, rng: random.Random) -> Broken:
    line = rng.choice(one_line_values(text)).start_mark.line
    lines = text.splitlines(keepends=True)
    lines.insert(line + 1, lines[line])
    return "".join(lines), line + 2, "is given twice"


def not_utf8(text: str, rng: random.Random) -> Broken:
    marked, line = replace_value(text, rng, "\ue000")
    return marked.encode().replace("\ue000".encode(), b"\xff\xfe"), line, "not UTF-8"


def control_character(text: str, rng: random.Random) -> Broken:
    return *replace_value(text, rng, "a \x00 b"), "is not allowed"


def truncated(text: str, rng: random.Random) -> Broken:
    return text.encode()[: rng.randrange(len(text.encode()))], None, ""


def byte_flipped(text: str, rng: random.Random) -> Broken:
    raw = bytearray(text.encode())
    for _ in range(rng.randint(1, 4)):
        raw[rng.randrange(len(raw))] ^= rng.randint(1, 255)
    return bytes(raw), None, ""


HOSTILE: list[Breaker] = [
    tag_in_a_value,
    tag_on_the_document,
    tag_on_a_key,
    deep_brackets,
    deep_blocks,
    alias_bomb,
    tab_indent,
    duplicate_key,
    not_utf8,
    control_character,
]
RANDOM: list[Breaker] = [truncated, truncated, byte_flipped, byte_flipped]


def write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def check(load: Callable[[Path], object], error: type[YamlFileError], path: Path, broken: Broken) -> None:
    """``path`` holding the broken copy either loads (random damage may leave a valid file) or
    raises ``error`` naming the expected line; in time, and nothing a tag names runs."""
    content, line, message = broken
    write(path, content)
    started = time.monotonic()
    try:
        load(path)
        assert line is None, f"{path.name} ({message}) loaded"
    except error as exc:
        newlines = content.count(b"\n" if isinstance(content, bytes) else "\n")
        assert exc.problems and all(1 <= p.line <= newlines + 1 for p in exc.problems), str(exc)
        first = exc.problems[0]
        if line is not None:
            assert first.line in (line if isinstance(line, range) else [line]), str(exc)
            assert message in first.message, str(exc)
    assert time.monotonic() - started < SECONDS_PER_FILE, f"{path.name}: {message or 'random damage'}"
    assert not (path.parent / PWNED).exists() and not Path(PWNED).exists()


@pytest.mark.parametrize("breaker", HOSTILE + [huge], ids=lambda b: b.__name__)
def test_every_shipped_scenario_broken_on_purpose_is_refused_at_its_line(tmp_path, breaker) -> None:
    sources = SCENARIOS[:5] if breaker is huge else SCENARIOS  # a megabyte each: a few suffice
    for source in sources:
        rng = random.Random(f"{breaker.__name__} {source.name}")
        check(load_scenario, ScenarioError, tmp_path / source.name, breaker(source.read_text(), rng))


def test_every_shipped_scenario_damaged_at_random_loads_or_is_refused(tmp_path) -> None:
    for source in SCENARIOS:
        rng = random.Random(source.name)
        for breaker in RANDOM:
            check(load_scenario, ScenarioError, tmp_path / source.name, breaker(source.read_text(), rng))


@pytest.mark.parametrize("breaker", HOSTILE + [huge] + RANDOM, ids=lambda b: b.__name__)
def test_a_broken_profile_or_baseline_is_refused_at_its_line(tmp_path, breaker) -> None:
    profile = (resources.PROFILES / "compliance.yaml").read_text()
    rng = random.Random(breaker.__name__)
    check(lambda p: load_profile(str(p)), ProfileError, tmp_path / "mine.yaml", breaker(profile, rng))
    check(read_file, BaselineError, tmp_path / "prosody.yaml", breaker(BASELINE, rng))


def test_interop_validate_answers_hostile_files_with_file_line_and_exit_2(tmp_path) -> None:
    """The real command, as a user runs it: one line per file, exit 2, no traceback, no hang."""
    source = SCENARIOS[0]
    expected = {}
    for breaker in (tag_in_a_value, deep_brackets, alias_bomb, huge, not_utf8):
        folder = tmp_path / breaker.__name__
        folder.mkdir()
        content, line, _ = breaker(source.read_text(), random.Random(0))
        path = folder / source.name
        write(path, content)
        expected[path] = line
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for path, line in expected.items():
        lines = [line] if isinstance(line, int) else line
        assert any(f"{path}:{n}: " in done.stderr for n in lines), (path, done.stderr)
    assert not (tmp_path / PWNED).exists()
