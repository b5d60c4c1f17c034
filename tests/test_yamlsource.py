"""Untrusted YAML: alias bombs, deep nesting, huge integers and unbuildable values are located errors, fast.

Every reader of user files (scenarios, judge rubrics, the test server's scenario index) goes
through ``envsim.yamlsource``; these tests hold its bounds. The time bounds are generous
fast-fail guards (the issue asks for "well under a second"): before the fix, a billion-laughs
document hung with unbounded memory.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from envsim import yamlsource
from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.reward.judge import load_rubric_text
from envsim.testing.playbook import read_scenario
from envsim.yamlsource import MAX_ALIAS_CHARS, MAX_DEPTH, MAX_INT_DIGITS, load_yaml, load_yaml_text
from tests.conftest import TINY_SCENARIO

FAST_S = 5.0  # a guard against hanging, not a timing target


def billion_laughs(levels: int = 9) -> str:
    """The classic bomb: each level is nine aliases of the one before (9**9 strings once expanded)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def located(text: str, path: Path | None = None) -> str:
    """The one problem ``text`` raises, as printed; fails the test unless it is a ScenarioError, fast."""
    start = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        load_yaml_text(text, path)
    assert time.perf_counter() - start < FAST_S
    assert len(info.value.problems) == 1
    return str(info.value.problems[0])


def test_billion_laughs_is_rejected_at_the_alias_that_crosses_the_bound() -> None:
    # levels a..f: f's aliases are the first to add more than 100,000 values (9 * 9**5 = 531,441)
    assert located(billion_laughs(), Path("bomb.yaml")) == (
        "bomb.yaml:6:8: invalid YAML: aliases expand to more than 100,000 values beyond those written out "
        '(a "billion laughs" document?)'
    )


def test_billion_laughs_in_a_scenario_and_a_judge_rubric_fails_fast() -> None:
    for load in (load_scenario_text, load_rubric_text):
        start = time.perf_counter()
        with pytest.raises(ScenarioError, match=r"<string>:6:8: invalid YAML: aliases expand"):
            load(billion_laughs())
        assert time.perf_counter() - start < FAST_S


def test_the_test_server_reads_scenarios_through_the_bounded_reader(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs(), encoding="utf-8")
    with pytest.raises(ScenarioError, match="aliases expand"):
        read_scenario(bomb)


def test_aliases_of_long_text_are_bounded_by_characters() -> None:
    big = "x" * 100_000
    uses = MAX_ALIAS_CHARS // len(big) + 1
    text = f'big: &big "{big}"\nlist: [{", ".join(["*big"] * uses)}]\n'
    assert "aliases expand to more than 10,000,000 characters" in located(text)


def test_ordinary_aliases_still_work() -> None:
    doc = load_yaml_text("common: &c {phone: '555'}\nfacts: [*c, *c]\n")
    assert doc.data == {"common": {"phone": "555"}, "facts": [{"phone": "555"}, {"phone": "555"}]}


def test_a_recursive_alias_is_refused() -> None:
    assert located("a: &a [1, *a]\n") == (
        "<string>:1:11: invalid YAML: alias *a refers to the node that contains it (a recursive structure)"
    )


@pytest.mark.parametrize("opener", ["[", "{"])
def test_ten_thousand_nested_brackets_are_a_located_error(opener: str) -> None:
    # the first bracket past the bound is at column 4 + MAX_DEPTH
    assert located("a: " + opener * 10_000) == (
        f"<string>:1:{4 + MAX_DEPTH}: invalid YAML: lists and mappings nest more than {MAX_DEPTH} levels deep"
    )


def test_deep_block_nesting_is_a_located_error() -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5))
    assert "nest more than 100 levels deep" in located(text)


def test_nesting_within_the_bound_is_read() -> None:
    depth = MAX_DEPTH - 1  # inside the document's top-level mapping
    assert load_yaml_text("a: " + "[" * depth + "]" * depth).data["a"] is not None


@pytest.mark.parametrize(
    ("literal", "digits"),
    [("9" * 5000, 5000), ("-" + "1_0" * 2200, 4400), ("0x" + "f" * 4301, 4301)],
)
def test_huge_integers_are_a_located_error(literal: str, digits: int) -> None:
    assert located(f"max_turns: {literal}\n") == (
        f"<string>:1:12: invalid YAML: an integer of {digits:,} digits is too long (at most {MAX_INT_DIGITS:,})"
    )


def test_integers_within_the_bound_are_read() -> None:
    assert load_yaml_text(f"n: {'7' * MAX_INT_DIGITS}\n").data["n"] == int("7" * MAX_INT_DIGITS)


def test_a_huge_integer_in_a_scenario_is_located_not_a_value_error() -> None:
    with pytest.raises(ScenarioError, match=r"<string>:29:12: invalid YAML: an integer of 5,000 digits"):
        load_scenario_text(TINY_SCENARIO.replace("max_turns: 8", "max_turns: " + "8" * 5000))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "d: 2024-13-45\n",
            "<string>:1:4: invalid YAML: cannot read '2024-13-45' as timestamp: month must be in 1..12",
        ),
        ("? [a]\n: b\n", "<string>:1:3: invalid YAML: a key must be a single value, not a list or mapping"),
        ("a: 1\nb: \x07\n", "<string>:2:4: invalid YAML: the character U+0007 is not allowed"),
        ("a: '\ud800'\n", "<string>:1:5: invalid YAML: the character U+D800 is not allowed"),
        ("a: &x 1\nb: &x 2\n", "<string>:2:4: invalid YAML: duplicate anchor 'x' (first at line 1)"),
    ],
)
def test_values_python_refuses_are_located(text: str, expected: str) -> None:
    assert located(text).startswith(expected)


MERGES = [
    "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
    "a: &a {x: 1}\nb: &b {x: 2, z: 3}\nd:\n  <<: [*a, *b]\n  w: 0\n",
    "a: &a {x: 1}\nb: &b\n  <<: *a\n  y: 2\nd:\n  <<: *b\n  z: 3\n",
    "=: 1\n",
]


@pytest.mark.parametrize("text", MERGES)
def test_merge_keys_work_as_yaml_safe_load(text: str) -> None:
    assert load_yaml_text(text).data == yaml.safe_load(text)


def test_a_merged_value_is_located_where_it_is_written() -> None:
    doc = load_yaml_text("base: &b\n  x: 1\nd:\n  <<: *b\n  y: 2\n")
    assert doc.locate(("d", "x")) == (2, 6)
    assert doc.locate(("d", "y")) == (5, 6)


def test_a_key_written_twice_beside_a_merge_is_still_an_error() -> None:
    assert located("base: &b {x: 1}\nd:\n  <<: *b\n  y: 2\n  y: 3\n") == (
        "<string>:5:3: invalid YAML: duplicate key 'y' (first at line 4)"
    )


def test_merging_a_scalar_is_a_located_error() -> None:
    assert "expected a mapping or list of mappings for merging" in located("d:\n  <<: 3\n")


@pytest.mark.parametrize("text", ["a: 1\n", "a: 1  # a\ttab\n"])  # libyaml's composer, or PyYAML's (a tab)
def test_a_file_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """One compose per file (it used to be parsed twice: a load and a compose)."""
    composed = []
    original = yaml.composer.Composer.compose_document

    def counting(self: yaml.composer.Composer) -> object:
        composed.append(1)
        return original(self)

    monkeypatch.setattr(yaml.composer.Composer, "compose_document", counting)
    if yamlsource._FastLoader is not None:
        fast = yamlsource._FastLoader.get_single_node

        def fast_counting(self: yaml.CSafeLoader) -> object:
            composed.append(1)
            return fast(self)

        monkeypatch.setattr(yamlsource._FastLoader, "get_single_node", fast_counting)
    path = tmp_path / "a.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_yaml(path).data == {"a": 1}
    assert len(composed) == 1


SAME_EITHER_WAY = [
    "base: &b {x: 1, y: [a, 'b', \"c\"]}\nd:\n  <<: *b\n  y: 3\n  when: 2024-05-01\n  n: 0x1F\n",
    "opening: |\n  Hello, is that the bank?\n  My card — the one ending 1234 — is gone!\nfacts: {last4: '1234'}\n",
    "- a: ~\n  b:\n  c: yes\n- [1, 2.5, .inf, -3]\n- {k: v, 'q?': \"r?\"}\n- >-\n  folded\n  text\n",
    "emoji: 😀 é\nlist:\n- - nested\n  - x\n",
]


@pytest.mark.parametrize("text", SAME_EITHER_WAY)
def test_libyaml_reads_what_pyyaml_reads_to_the_same_data_and_positions(text: str) -> None:
    fast = yamlsource._compose_fast(text)
    if yamlsource._FastLoader is None:
        pytest.skip("PyYAML without libyaml: every text is read by the Python loader")
    assert fast is not None
    node, data = yamlsource._compose_and_construct(text)
    slow_doc, fast_doc = yamlsource.YamlDocument(data, None), yamlsource.YamlDocument(fast[1], None)
    yamlsource._index(node, (), slow_doc)
    yamlsource._index(fast[0], (), fast_doc)
    assert repr(fast_doc.data) == repr(slow_doc.data)
    assert (fast_doc.values, fast_doc.keys) == (slow_doc.values, slow_doc.keys)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("a: {b: c?d}\n", "<string>:1:9: invalid YAML: while parsing a flow mapping expected ',' or '}', but got '?'"),
        ("a: [1, , 2]\n", "<string>:1:8: invalid YAML: while parsing a flow node expected the node content"),
        ("a: >-#\n  text\n", "<string>:1:6: invalid YAML: while scanning a block scalar expected chomping"),
        ("a: !\n", {"a": None}),  # libyaml: ''
        ("- \n- 2\n", [None, 2]),
        ("?", {None: None}),
        ("---", None),
        ("a: 1  # a\ttab\n", {"a": 1}),
        ("\ufeffa: 1\n", {"a": 1}),
        ("a: 1\r\nb: 2\r\n", {"a": 1, "b": 2}),
    ],
)
def test_where_libyaml_and_pyyaml_part_pyyaml_reads(text: str, read: object) -> None:
    """libyaml reads these otherwise than PyYAML (or reads what PyYAML refuses): they go to PyYAML."""
    assert yamlsource._compose_fast(text) is None
    if isinstance(read, str):
        assert located(text).startswith(read)
    else:
        assert load_yaml_text(text).data == read


def test_envsim_judge_with_a_bomb_rubric_exits_2_with_the_located_error(tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(billion_laughs(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", "from envsim.cli import main; main()", "judge", "calibrate", str(rubric), "x.jsonl"],
        capture_output=True,
        text=True,
        timeout=120,  # before the fix: unbounded memory, never returned
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{rubric}:6:8: invalid YAML: aliases expand to more than 100,000 values" in result.stderr


def test_a_packages_persona_file_is_read_with_the_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Persona files of installed packages are untrusted too: hostile ones are skipped, fast.

    Before, 10,000 nested brackets raised RecursionError out of ``persona_library`` (and so out of
    every scenario load).
    """
    from envsim.user import persona

    (tmp_path / "bomb.yaml").write_text(billion_laughs(), encoding="utf-8")
    (tmp_path / "deep.yaml").write_text("- name: deep\n  nudges: " + "[" * 10_000 + "\n", encoding="utf-8")
    monkeypatch.setattr(persona, "plugin_folders", lambda group: [tmp_path])
    persona.persona_library.cache_clear()
    try:
        start = time.perf_counter()
        library = persona.persona_library()
        assert time.perf_counter() - start < FAST_S
        assert "panicked_caller" in library
    finally:
        persona.persona_library.cache_clear()
