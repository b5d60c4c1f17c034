"""Call patterns (envsim.scenario): one type for every list of calls in `expected`, one equality rule."""

from __future__ import annotations

from typing import Any

import pytest

from envsim.loader import load_scenario_text
from envsim.reward import components
from envsim.scenario import ArgumentRule, CallPattern, Claim, Expected, same_value
from tests.conftest import TINY_SCENARIO
from tests.reward.builders import call, calls, context, trajectory


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (True, 1, False),
        (1, True, False),
        (False, 0, False),
        (0.0, False, False),
        (True, True, True),
        (1, 1.0, True),
        ("1", 1, False),
        (None, None, True),
        ({"rush": True}, {"rush": 1}, False),
        ([1, [False]], [1.0, [0]], False),
        ([1, {"n": 2}], [1.0, {"n": 2.0}], True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1, 2, 3], False),
    ],
)
def test_same_value_is_json_equality_booleans_are_not_numbers(a: Any, b: Any, equal: bool) -> None:
    assert same_value(a, b) is equal
    assert same_value(b, a) is equal


def test_every_call_list_of_expected_is_a_call_pattern() -> None:
    expected = Expected.model_validate(
        {
            "forbidden_actions": [{"name": "set_rush", "arguments": {"rush": True}}, "cancel_order"],
            "required_actions": [{"name": "set_rush", "arguments": {"rush": True}}],
            "argument_checks": [{"name": "set_rush", "checks": {"rush": {"equals": True}}}],
            "claims": [{"phrases": ["rushed"], "requires": [{"name": "set_rush", "arguments": {"rush": True}}]}],
        }
    )
    patterns = [
        *expected.forbidden_actions,
        *expected.required_actions,
        *expected.argument_checks,
        *(p for c in expected.claims for p in c.requires),
    ]
    assert all(type(p) is CallPattern for p in patterns)
    assert expected.forbidden_actions[1] == CallPattern(name="cancel_order")
    assert isinstance(expected.claims[0], Claim)
    # one rule everywhere: true is not 1, whichever list the pattern is in
    assert [p.matches("set_rush", {"rush": 1}) for p in patterns] == [False, False, False, False, False]
    assert [p.matches("set_rush", {"rush": True}) for p in patterns] == [True, False, True, True, True]
    assert ArgumentRule(one_of=[1, 2]).check(True) is False


def test_a_forbidden_pattern_with_true_is_not_hit_by_a_call_with_1() -> None:
    """Forbidden actions used to compare with ``==`` (``True == 1``): now as every other call pattern."""
    text = TINY_SCENARIO.replace(
        "forbidden_actions: [{name: create_equipment_order}]",
        "forbidden_actions: [{name: create_equipment_order, arguments: {patient_id: true}}]",
    )
    scenario = load_scenario_text(text)
    assert scenario.expected.forbidden_actions == [
        CallPattern(name="create_equipment_order", arguments={"patient_id": True})
    ]
    ctx = context(scenario)
    with_one = trajectory(calls(call("create_equipment_order", patient_id=1, prescription_id="RX1")))
    with_true = trajectory(calls(call("create_equipment_order", patient_id=True, prescription_id="RX1")))
    assert components.forbidden_actions(with_one, ctx).score == 1.0
    assert components.forbidden_actions(with_true, ctx).score == 0.0
