"""A corpus of broken scenario files and the exact messages ``envsim validate`` must print for them.

Each file in ``tests/data/broken_scenarios/`` is the same small, valid emergency scenario on the
``small`` medical_supply fixture with one deliberate mistake (its first line says which). Every
mistake must come back as ``path:line:col: field.path: message`` lines that point at the mistake
and say what is wrong in plain words, with a "did you mean" where a close name exists, and never
as a traceback.

The expectations are what a good tool prints, written by hand: a changed message fails here and
must be judged, not pasted in.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from envsim.errors import ScenarioError
from envsim.loader import load_scenario

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path("tests/data/broken_scenarios")  # relative to REPO: messages show the path as given

EXPECTED: dict[str, list[str]] = {
    # -- YAML syntax and file-level problems ----------------------------------------------------
    "yaml_bad_indentation.yaml": [
        "tests/data/broken_scenarios/yaml_bad_indentation.yaml:22:3: "
        "invalid YAML: bad indentation: this line does not line up with any mapping above it",
    ],
    "yaml_unclosed_quote.yaml": [
        "tests/data/broken_scenarios/yaml_unclosed_quote.yaml:22:12: "
        "invalid YAML: unclosed quote: the string that starts here runs on to line 25",
    ],
    "yaml_unclosed_quote_at_end.yaml": [
        "tests/data/broken_scenarios/yaml_unclosed_quote_at_end.yaml:39:12: "
        "invalid YAML: unclosed quote: the string that starts here is never closed",
    ],
    "yaml_tab_indentation.yaml": [
        "tests/data/broken_scenarios/yaml_tab_indentation.yaml:8:1: "
        "invalid YAML: a tab character cannot indent YAML; use spaces",
    ],
    "blank_follow_up.yaml": [
        "tests/data/broken_scenarios/blank_follow_up.yaml:28:41: user.follow_ups.1: "
        "must not be blank: the user would say nothing",
    ],
    "duplicate_key.yaml": [
        "tests/data/broken_scenarios/duplicate_key.yaml:40:1: "
        "invalid YAML: duplicate key 'max_turns' (first at line 39)",
    ],
    "top_level_list.yaml": [
        "tests/data/broken_scenarios/top_level_list.yaml:2:1: "
        "a scenario file must be a mapping of fields (id, domain, ...)",
    ],
    "empty_file.yaml": [
        "tests/data/broken_scenarios/empty_file.yaml:1:1: "
        "the file is empty: a scenario file must be a mapping of fields (id, domain, ...)",
    ],
    "non_utf8.yaml": [
        "tests/data/broken_scenarios/non_utf8.yaml:13:26: "
        "cannot read file: byte 0xe9 is not valid UTF-8 (save the file as UTF-8)",
    ],
    # -- hostile YAML: bounded, located, never a traceback or a hang ----------------------------
    "yaml_alias_bomb.yaml": [
        "tests/data/broken_scenarios/yaml_alias_bomb.yaml:44:49: invalid YAML: aliases expand to more than "
        '100,000 values beyond those written out (a "billion laughs" document?)',
    ],
    "yaml_deep_nesting.yaml": [
        "tests/data/broken_scenarios/yaml_deep_nesting.yaml:34:206: "
        "invalid YAML: lists and mappings nest more than 100 levels deep",
    ],
    "yaml_huge_integer.yaml": [
        "tests/data/broken_scenarios/yaml_huge_integer.yaml:39:12: "
        "invalid YAML: an integer of 5,000 digits is too long (at most 4,300)",
    ],
    "merge_key_unknown_field.yaml": [  # merge keys work; what they bring in is located where it is written
        "tests/data/broken_scenarios/merge_key_unknown_field.yaml:19:3: user.guidelines: unknown field",
    ],
    # -- schema: keys, types, ranges, patterns, literal values ----------------------------------
    "misspelt_top_level_key.yaml": [
        "tests/data/broken_scenarios/misspelt_top_level_key.yaml:4:1: "
        "descripton: unknown field (did you mean 'description'?)",
    ],
    "misspelt_nested_key.yaml": [
        "tests/data/broken_scenarios/misspelt_nested_key.yaml:22:3: "
        "user.opneing: unknown field (did you mean 'opening'?)",
    ],
    "missing_user_goal.yaml": [
        "tests/data/broken_scenarios/missing_user_goal.yaml:20:1: user.goal: required field is missing",
    ],
    "max_turns_wrong_type.yaml": [
        "tests/data/broken_scenarios/max_turns_wrong_type.yaml:39:12: "
        "max_turns: Input should be a valid integer, unable to parse string as an integer",
    ],
    "max_turns_zero.yaml": [
        "tests/data/broken_scenarios/max_turns_zero.yaml:39:12: max_turns: Input should be greater than or equal to 1",
    ],
    "bad_id_pattern.yaml": [
        "tests/data/broken_scenarios/bad_id_pattern.yaml:2:5: "
        "id: must be CamelCase (a capital letter, then letters and digits only), got 'broken-emergency-dispatch'",
    ],
    "persona_ref_and_inline.yaml": [
        "tests/data/broken_scenarios/persona_ref_and_inline.yaml:29:5: "
        "user.persona: give exactly one of 'ref' or 'inline'",
    ],
    "duplicate_fact_keys.yaml": [
        "tests/data/broken_scenarios/duplicate_fact_keys.yaml:27:12: "
        "user.facts.1.key: fact key 'phone' appears twice (first at user.facts.0)",
    ],
    "invalid_escalation_value.yaml": [
        "tests/data/broken_scenarios/invalid_escalation_value.yaml:38:15: "
        "expected.escalation: Input should be 'required', 'forbidden' or 'optional', got 'requird' "
        "(did you mean 'required'?)",
    ],
    "unknown_reward_weight.yaml": [
        "tests/data/broken_scenarios/unknown_reward_weight.yaml:42:5: "
        "reward.weights.required_statment: unknown key 'required_statment' (did you mean 'required_statements'?)",
    ],
    "negative_reward_weight.yaml": [
        "tests/data/broken_scenarios/negative_reward_weight.yaml:43:17: "
        "reward.weights.escalation: Input should be greater than or equal to 0",
    ],
    # -- names: toolkits, fixtures, personas, tools, tables -------------------------------------
    "unknown_toolkit.yaml": [
        "tests/data/broken_scenarios/unknown_toolkit.yaml:5:12: "
        "toolkits.0: unknown toolkit 'medical_suply' (did you mean 'medical_supply'?)",
    ],
    "unknown_fixture.yaml": [
        "tests/data/broken_scenarios/unknown_fixture.yaml:7:12: "
        "world.fixture: toolkit 'medical_supply' has no fixture 'tiny'; fixtures: default, small",
    ],
    "unknown_persona_ref.yaml": [
        "tests/data/broken_scenarios/unknown_persona_ref.yaml:28:18: "
        "user.persona.ref: unknown persona 'panicked_calller' (did you mean 'panicked_caller'?)",
    ],
    "misspelt_expected_tool.yaml": [
        "tests/data/broken_scenarios/misspelt_expected_tool.yaml:31:13: "
        "expected.actions.0.name: unknown tool 'lookup_patinet' (did you mean 'lookup_patient'?)",
    ],
    "unknown_forbidden_tool.yaml": [
        "tests/data/broken_scenarios/unknown_forbidden_tool.yaml:37:13: "
        "expected.forbidden_actions.0.name: unknown tool 'issue_refund'",
    ],
    "override_unknown_table.yaml": [
        "tests/data/broken_scenarios/override_unknown_table.yaml:19:5: "
        "world.overrides.patient: unknown table (did you mean 'patients'?); tables: patients, prescriptions, "
        "catalogue, insurance_plans, equipment_orders, delivery_slots, dispatches, handoffs",
    ],
    "override_wrong_field_type.yaml": [
        "tests/data/broken_scenarios/override_wrong_field_type.yaml:20:22: "
        "world.overrides.catalogue.EQ-01.stock: Input should be a valid integer, unable to parse string as an integer",
    ],
    "inline_record_missing_field.yaml": [
        "tests/data/broken_scenarios/inline_record_missing_field.yaml:11:7: "
        "world.inline.patients.PT-9001.address: required field is missing",
    ],
    # -- the expected outcome must be reachable and consistent ----------------------------------
    "expected_action_fails.yaml": [
        "tests/data/broken_scenarios/expected_action_fails.yaml:31:7: "
        "expected.actions.0: expected action lookup_patient fails on the initial world: "
        "no patient with phone '555-9999' (if the correct agent is meant to be refused here, "
        "declare expect_error: not_found)",
    ],
    "ends_episode_not_last.yaml": [
        "tests/data/broken_scenarios/ends_episode_not_last.yaml:33:7: "
        "expected.actions.1: dispatch_emergency_services ends the episode, so it must be the last expected action",
    ],
    "escalation_required_not_escalated.yaml": [
        "tests/data/broken_scenarios/escalation_required_not_escalated.yaml:36:15: "
        "expected.escalation: escalation is required but no expected action escalates (e.g. transfer_to_human)",
    ],
    "escalation_forbidden_but_escalates.yaml": [
        "tests/data/broken_scenarios/escalation_forbidden_but_escalates.yaml:38:15: "
        "expected.escalation: escalation is forbidden but expected action dispatch_emergency_services escalates",
    ],
    "forbidden_action_expected.yaml": [
        "tests/data/broken_scenarios/forbidden_action_expected.yaml:37:7: "
        "expected.forbidden_actions.0: forbidden action lookup_patient is also an expected action",
    ],
    "empty_expected.yaml": [
        "tests/data/broken_scenarios/empty_expected.yaml:29:1: "
        "expected: no criteria: give expected actions, required statements, forbidden actions "
        "or an escalation requirement (or, when the correct outcome is that the world does not change, "
        "declare no_change: true)",
    ],
}


def corpus_files() -> list[str]:
    """Names of the scenario files in the corpus folder (every ``.yaml``/``.yml``, whatever its content)."""
    return sorted(p.name for p in (REPO / CORPUS).iterdir() if p.suffix in {".yaml", ".yml"})


def problem_lines(path: Path) -> list[str]:
    """The located problems the loader reports for ``path``; fails the test if the file loads cleanly."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test from the repository root, so that relative corpus paths resolve (and print) as written."""
    monkeypatch.chdir(REPO)
    return REPO


def test_corpus_is_large_enough() -> None:
    assert len(EXPECTED) >= 24


def test_every_file_has_expectations() -> None:
    """A file added to the corpus without expectations (or an expectation without its file) fails here."""
    assert corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_scenario_messages(name: str, at_repo_root: Path) -> None:
    assert problem_lines(CORPUS / name) == EXPECTED[name]


def test_validate_cli_reports_every_file(at_repo_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from envsim.cli import main; main()", "validate", str(CORPUS)],
        cwd=at_repo_root,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    reported = {line.split(":", 1)[0] for line in result.stderr.splitlines() if line}
    assert reported == {str(CORPUS / name) for name in EXPECTED}
    assert f"{len(EXPECTED)} scenario files: 0 valid, {len(EXPECTED)} invalid" in result.stdout
