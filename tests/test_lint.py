"""The lint real task suites need: declared refusals, declared unchanged worlds, every problem in one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.reward.base import RewardContext
from envsim.runtime import ScenarioRuntime
from envsim.scenario import Scenario


def _scenario(**changes: Any) -> dict[str, Any]:
    """A small valid retail scenario (``small`` fixture: #W0003 is shipped, #W0001 pending), with ``changes``."""
    data: dict[str, Any] = {
        "id": "LintProbe",
        "domain": "retail",
        "description": "A customer wants to cancel a shipped order; the agent must try and explain the refusal.",
        "toolkits": ["retail"],
        "world": {"fixture": "small", "seed": 0},
        "agent": {"guidelines": "Help the customer."},
        "user": {
            "goal": "Cancel order #W0003.",
            "opening": "Please cancel my order #W0003.",
            "facts": [{"key": "order_id", "value": "#W0003", "asked_by": ["order"], "say": "It is {{ value }}."}],
        },
        "expected": {
            "actions": [{"name": "get_order", "arguments": {"order_id": "#W0003"}}],
            "required_statements": ["already shipped"],
        },
        "max_turns": 8,
    }
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        target = data
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(yaml.safe_dump(data, sort_keys=False))
    return [str(p) for p in caught.value.problems]


CANCEL_SHIPPED = {"name": "cancel_order", "arguments": {"order_id": "#W0003", "reason": "no_longer_needed"}}


def test_a_declared_expected_failure_is_valid_and_leaves_the_expected_world_unchanged() -> None:
    actions = [{"name": "get_order", "arguments": {"order_id": "#W0003"}}, {**CANCEL_SHIPPED}]
    assert any(
        "fails on the initial world" in p and "expect_error: rule_violation" in p
        for p in _problems(_scenario(**{"expected.actions": actions}))
    )  # undeclared: still an error, which now says how to declare it
    actions[1]["expect_error"] = "rule_violation"
    scenario = load_scenario_text(yaml.safe_dump(_scenario(**{"expected.actions": actions})))
    assert scenario.expected.actions[1].expect_error == "rule_violation"
    runtime = ScenarioRuntime(scenario)
    context = RewardContext(runtime=runtime)
    assert context.expected_final_hash() == runtime.initial_world.state_hash()


def test_a_declared_failure_must_fail_exactly_as_declared() -> None:
    succeeds = {"name": "cancel_order", "arguments": {"order_id": "#W0001", "reason": "no_longer_needed"}}
    problems = _problems(_scenario(**{"expected.actions": [{**succeeds, "expect_error": "rule_violation"}]}))
    assert problems == [
        "<string>:27:19: expected.actions.0.expect_error: expected action cancel_order is declared to fail with "
        "rule_violation but succeeds on the initial world"
    ]
    wrong_kind = {"name": "get_order", "arguments": {"order_id": "#W9999"}, "expect_error": "rule_violation"}
    (problem,) = _problems(_scenario(**{"expected.actions": [wrong_kind]}))
    assert "expected.actions.0.expect_error: expected action get_order fails with not_found" in problem
    assert problem.endswith("not with the declared rule_violation")
    (problem,) = _problems(_scenario(**{"expected.actions": [{**CANCEL_SHIPPED, "expect_error": "Rule Violation"}]}))
    assert "expected.actions.0.expect_error: must be snake_case" in problem


def test_a_declared_failure_counts_for_no_required_action() -> None:
    data = _scenario(
        **{
            "expected.actions": [{**CANCEL_SHIPPED, "expect_error": "rule_violation"}],
            "expected.required_actions": ["cancel_order"],
            "reward.gates": ["required_actions"],
        }
    )
    assert any("required action cancel_order() is not among the expected actions" in p for p in _problems(data))


def test_an_unchanged_world_as_the_only_criterion_is_valid_when_declared() -> None:
    refusal = _scenario(**{"expected": {"actions": []}})
    assert any("no criteria" in p and "no_change: true" in p for p in _problems(refusal))
    refusal["expected"]["no_change"] = True
    scenario = load_scenario_text(yaml.safe_dump(refusal))
    runtime = ScenarioRuntime(scenario)
    assert RewardContext(runtime=runtime).expected_final_hash() == (runtime.initial_world.state_hash())
    with_reads = _scenario(**{"expected.no_change": True})  # reads and a refusal: the world stays as it was
    assert isinstance(load_scenario_text(yaml.safe_dump(with_reads)), Scenario)


def test_no_change_must_hold_and_be_read_by_final_state() -> None:
    cancels = {"name": "cancel_order", "arguments": {"order_id": "#W0001", "reason": "no_longer_needed"}}
    problems = _problems(_scenario(**{"expected.no_change": True, "expected.actions": [cancels]}))
    assert [p.split(": ", 1)[1] for p in problems] == [
        "expected.no_change: no_change is true but the expected actions change the world "
        "(tables: orders, payments, products)"
    ]
    unread = _scenario(
        **{"expected.no_change": True, "reward.gates": [], "reward.components": {"required_statements": 1.0}}
    )
    assert any("no_change is read by final_state, which is neither weighted nor a gate" in p for p in _problems(unread))


def test_validate_reports_every_layer_in_one_run() -> None:
    data = _scenario(
        **{
            "max_turns": 0,  # schema
            "expected.escalation": "sometimes",  # schema, in a section the replay does not need
            "user.persona": {"ref": "panicky"},  # an unknown name
            "world.inline": {  # two bad inline records and a good one
                "customers": {
                    "C9001": {"id": "C9001", "first_name": "Ada"},
                    "C9002": {"id": "C9002", "first_name": "Bo", "last_name": "X", "email": 5},
                },
                "orders": {"#W0001": {"status": "cancelled"}},
            },
        }
    )
    data["user"]["facts"][0]["say"] = "{{ valeu }} {{ value * 2 }}"  # two template problems
    problems = [p.split(": ", 1)[1] for p in _problems(data)]
    assert any(p.startswith("user.persona.ref: unknown persona 'panicky'") for p in problems)
    assert "user.facts.0.say: template line 1, column 4: undefined name 'valeu' (known names: key, value)" in problems
    assert any(p.startswith("user.facts.0.say: template line 1, column 22: arithmetic ('*')") for p in problems)
    assert any(p.startswith("world.inline.customers.C9001.last_name: required field is missing") for p in problems)
    assert any(p.startswith("world.inline.customers.C9002.") for p in problems)
    assert any(p.startswith("expected.escalation: Input should be") for p in problems)
    assert any(p.startswith("max_turns: Input should be greater than or equal to 1") for p in problems)


def test_validate_replays_despite_schema_errors_elsewhere() -> None:
    data = _scenario(
        **{
            "max_turns": "many",
            "tags": "not a list",
            "expected.actions": [CANCEL_SHIPPED],
            "expected.required_statements": [""],
        }
    )
    problems = [p.split(": ", 1)[1] for p in _problems(data)]
    assert any(p.startswith("max_turns: Input should be a valid integer") for p in problems)
    assert any(p.startswith("tags: Input should be a valid list") for p in problems)
    assert any(p.startswith("expected.required_statements.0: empty phrase") for p in problems)
    assert any(
        p.startswith("expected.actions.0: expected action cancel_order fails on the initial world") for p in problems
    )


def test_a_schema_error_in_a_section_skips_only_the_checks_that_read_it() -> None:
    data = _scenario(**{"expected.actions": [{"name": "get_order", "arguments": "#W0003"}]})
    problems = [p.split(": ", 1)[1] for p in _problems(data)]
    assert problems == ["expected.actions.0.arguments: Input should be a valid dictionary"]


def test_the_json_schema_documents_the_declarations() -> None:
    definitions = Scenario.model_json_schema()["$defs"]
    expect_error = definitions["ToolCallSpec"]["properties"]["expect_error"]
    assert {"pattern": "^[a-z][a-z0-9_]*$", "type": "string"} in expect_error["anyOf"]
    assert "initial world" in definitions["Expected"]["properties"]["no_change"]["description"]


def test_a_bad_template_is_located_at_its_value_in_the_file(tmp_path: Path) -> None:
    from envsim.loader import load_scenario

    data = _scenario()
    data["user"]["facts"][0]["say"] = "It is {{ value.__class__ }}."
    path = tmp_path / "probe.yaml"
    text = yaml.safe_dump(data, sort_keys=False, width=200)
    path.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "__class__" in row)
    column = text.splitlines()[line - 1].index("It is") + 1
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}:{column}: user.facts.0.say: template line 1, column 16: "
        "the attribute '__class__' is blocked (it starts with _)"
    ]


def test_a_slip_the_expected_writes_use_is_an_error() -> None:
    """``said_first`` is the wrong value the user corrects: an expected action that writes it rewards the agent
    for acting on the slip."""
    slipped = [{"key": "order_id", "value": "#W0003", "asked_by": ["order"], "said_first": "#W0001"}]
    wrong = _problems(
        _scenario(
            **{"user.facts": slipped, "expected.actions": [{"name": "get_order", "arguments": {"order_id": "#W0001"}}]}
        )
    )
    assert any("user.facts.0.said_first" in p and "expected.actions.0 (get_order) writes it" in p for p in wrong), wrong
    load_scenario_text(yaml.safe_dump(_scenario(**{"user.facts": slipped}), sort_keys=False))  # writes value: valid
