"""Checks beyond the schema: a scenario must be answerable by its own expected outcome.

- every toolkit, fixture and persona it names exists;
- the world's records fit their tables;
- every tool it names exists (with a "did you mean");
- the expected actions replay without error on the initial world;
- fact keys are unique;
- there is something to check (criteria are not empty) and every weighted component has
  criteria;
- escalation settings agree with the expected actions.

Each problem is ``(loc, message, at_key)``; the loader turns them into ``file:line:col``.
"""

from __future__ import annotations

import json

from envsim.errors import UnknownNameError
from envsim.scenario import Scenario
from envsim.suggest import did_you_mean
from envsim.toolkits import OverrideError, get_toolkit
from envsim.user.persona import load_persona
from envsim.yamlsource import Loc

LintProblem = tuple[Loc, str, bool]


def lint_scenario(scenario: Scenario) -> list[LintProblem]:
    """Every semantic problem of ``scenario`` (empty when it is sound)."""
    problems: list[LintProblem] = []
    for i, name in enumerate(scenario.toolkits):
        try:
            get_toolkit(name)
        except UnknownNameError as err:
            problems.append((("toolkits", i), str(err), False))
    if scenario.user.persona.ref is not None:
        try:
            load_persona(scenario.user.persona.ref)
        except UnknownNameError as err:
            problems.append((("user", "persona", "ref"), str(err), False))
    problems.extend(_lint_facts(scenario))
    problems.extend(_lint_criteria(scenario))
    if any(loc[0] == "toolkits" for loc, _, _ in problems):
        return problems

    from envsim.runtime import ScenarioRuntime

    try:
        runtime = ScenarioRuntime(scenario)
    except UnknownNameError as err:
        problems.append((("world", "fixture"), str(err), False))
        return problems
    except OverrideError as err:
        problems.append((("world", *err.loc), str(err), err.at_key))
        return problems
    session = runtime.session()
    tools = session.tools
    for section in ("actions", "forbidden_actions"):
        for i, action in enumerate(getattr(scenario.expected, section)):
            if tools.spec(action.name) is None:
                problems.append(
                    (
                        ("expected", section, i, "name"),
                        f"unknown tool {action.name!r}{did_you_mean(action.name, tools.names)}",
                        False,
                    )
                )
    if any(loc[:2] == ("expected", "actions") for loc, _, _ in problems):
        return problems

    actions = scenario.expected.actions
    for i, (action, result) in enumerate(zip(actions, session.replay(actions), strict=True)):
        if not result.ok:
            error = json.loads(result.content)["error"]
            problems.append(
                (
                    ("expected", "actions", i),
                    f"expected action {action.name} fails on the initial world: {error['message']}",
                    False,
                )
            )
            break
        if result.ends_episode and i != len(actions) - 1:
            problems.append(
                (
                    ("expected", "actions", i),
                    f"{action.name} ends the episode, so it must be the last expected action",
                    False,
                )
            )
    escalates = [a for a in actions if (spec := tools.spec(a.name)) is not None and spec.flags.escalation]
    escalation = scenario.expected.escalation
    if escalation == "required" and not escalates:
        problems.append(
            (
                ("expected", "escalation"),
                "escalation is required but no expected action escalates (e.g. transfer_to_human)",
                False,
            )
        )
    if escalation == "forbidden" and escalates:
        problems.append(
            (
                ("expected", "escalation"),
                f"escalation is forbidden but expected action {escalates[0].name} escalates",
                False,
            )
        )
    for i, pattern in enumerate(scenario.expected.forbidden_actions):
        for action in actions:
            if pattern.matches(action.name, action.arguments):
                problems.append(
                    (
                        ("expected", "forbidden_actions", i),
                        f"forbidden action {pattern.name} is also an expected action",
                        False,
                    )
                )
    return problems


def _lint_facts(scenario: Scenario) -> list[LintProblem]:
    first: dict[str, int] = {}
    problems: list[LintProblem] = []
    for i, fact in enumerate(scenario.user.facts):
        if fact.key in first:
            problems.append(
                (
                    ("user", "facts", i, "key"),
                    f"fact key {fact.key!r} appears twice (first at user.facts.{first[fact.key]})",
                    False,
                )
            )
        first.setdefault(fact.key, i)
    return problems


def _lint_criteria(scenario: Scenario) -> list[LintProblem]:
    expected = scenario.expected
    problems: list[LintProblem] = []
    if not (
        expected.actions
        or expected.required_statements
        or expected.forbidden_actions
        or expected.escalation != "optional"
    ):
        problems.append(
            (
                ("expected",),
                "no criteria: give expected actions, required statements, forbidden "
                "actions or an escalation requirement",
                True,
            )
        )
        return problems
    has_criteria = {
        "final_state": True,  # no expected actions: the world must stay unchanged
        "required_statements": bool(expected.required_statements),
        "forbidden_actions": bool(expected.forbidden_actions),
        "escalation": expected.escalation != "optional",
    }
    weights: dict[str, float] = {str(k): v for k, v in scenario.reward.weights.items()}
    if all(weights.get(name, 0) == 0 or not has for name, has in has_criteria.items()):
        problems.append((("reward", "weights"), "no weighted component has criteria: every reward would be 1", True))
    for i, statement in enumerate(expected.required_statements):
        if any(not phrase.strip() for phrase in statement.any_of):
            problems.append((("expected", "required_statements", i), "empty phrase", False))
    return problems
