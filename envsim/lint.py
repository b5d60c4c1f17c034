"""Checks beyond the schema: a scenario must be answerable by its own expected outcome.

- every toolkit, fixture and persona it names exists;
- the world's records fit their tables (every bad inline record or override is reported);
- every tool it names exists (with a "did you mean");
- the expected actions replay on the initial world: each succeeds, or fails exactly as it
  declares (``expect_error: rule_violation``: the correct agent tries and is refused);
- ``expected.no_change: true`` (a refusal: the correct outcome leaves the world as it was) holds
  for the expected actions, and counts as a criterion read by ``final_state``;
- fact keys are unique, and every templated field (``facts[].say``) is an allowed template that
  renders (:mod:`envsim.prompts`);
- there is something to check (criteria are not empty) and every weighted component has
  criteria;
- escalation settings agree with the expected actions;
- the reward section names known components (with a "did you mean"), loads only allowed
  custom reward functions with the one signature, and uses the criteria it declares;
- required actions, argument checks and the hand-off summary hold for the expected actions
  (the reference solution must pass its own reward).

Each problem is ``(loc, message, at_key)``; the loader turns them into ``file:line:col``. A
scenario whose schema validation failed in places is linted too, with ``broken`` naming the
sections (``"expected.actions"``, ``"toolkits"``...) that hold stand-ins: the checks that read
them are skipped, every other runs, so one run reports every problem it can find.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from pydantic import BaseModel

from envsim.errors import OverrideError, RewardModuleError, TemplateError, UnknownNameError
from envsim.prompts import check_scenario_template, render_scenario_text
from envsim.reward import COMPONENTS
from envsim.reward.components import summary_problems
from envsim.reward.custom import load_reward_function
from envsim.reward.judges import RUN_JUDGE
from envsim.reward.spec import custom_without_role, effective_reward_spec, judges_without_role
from envsim.runtime import ScenarioRuntime, Session, remember_expected_hash
from envsim.scenario import RewardSpec, Scenario, ToolCallSpec
from envsim.suggest import did_you_mean
from envsim.toolkits import apply_records, build_world, get_toolkit, table_record_types
from envsim.user.persona import load_persona
from envsim.yamlsource import Loc

LintProblem = tuple[Loc, str, bool]

FACT_TEMPLATE_NAMES = ("key", "value")
"""The names a fact's ``say`` template is rendered with."""


class _Sections:
    """Which sections of a scenario hold real values (not stand-ins for ones that failed validation)."""

    def __init__(self, broken: Collection[str]) -> None:
        self.broken = frozenset(broken)

    def intact(self, *sections: str) -> bool:
        """Whether none of ``sections`` (dotted), nor a section inside or around one of them, is broken."""
        for section in sections:
            for bad in self.broken:
                if bad == section or bad.startswith(section + ".") or section.startswith(bad + "."):
                    return False
        return True


def lint_scenario(scenario: Scenario, *, broken: Collection[str] = ()) -> list[LintProblem]:
    """Every semantic problem of ``scenario`` (empty when it is sound).

    ``broken`` names sections (dotted paths such as ``"expected.actions"``) that failed schema
    validation and hold stand-ins: the checks that read them are skipped.
    """
    ok = _Sections(broken).intact
    problems: list[LintProblem] = []
    if ok("toolkits"):
        for i, name in enumerate(scenario.toolkits):
            try:
                get_toolkit(name)
            except UnknownNameError as err:
                problems.append((("toolkits", i), str(err), False))
    if ok("user.persona") and scenario.user.persona.ref is not None:
        try:
            load_persona(scenario.user.persona.ref)
        except UnknownNameError as err:
            problems.append((("user", "persona", "ref"), str(err), False))
    if ok("user.facts"):
        problems.extend(_lint_facts(scenario))
    reward: RewardSpec | None = None  # the merged reward spec, once the sections it reads are intact
    if ok("reward", "domain"):
        reward = effective_reward_spec(scenario)
        problems.extend(_lint_reward(scenario, reward, criteria=ok("expected")))
        if ok("expected"):
            problems.extend(_lint_criteria(scenario, reward))
    if not ok("toolkits", "world") or any(loc[0] == "toolkits" for loc, _, _ in problems):
        return problems
    try:
        runtime = ScenarioRuntime(scenario)
    except UnknownNameError as err:
        problems.append((("world", "fixture"), str(err), False))
        return problems
    except OverrideError:
        problems.extend(_lint_world_records(scenario))
        return problems
    session = runtime.session()
    tools = session.tools
    for section in ("actions", "forbidden_actions", "required_actions", "argument_checks"):
        if not ok(f"expected.{section}"):
            continue
        for i, action in enumerate(getattr(scenario.expected, section)):
            if tools.spec(action.name) is None:
                problems.append(
                    (
                        ("expected", section, i, "name"),
                        f"unknown tool {action.name!r}{did_you_mean(action.name, tools.names)}",
                        False,
                    )
                )
    if ok("expected.claims"):
        for i, claim in enumerate(scenario.expected.claims):
            for j, pattern in enumerate(claim.requires):
                if tools.spec(pattern.name) is None:
                    problems.append(
                        (
                            ("expected", "claims", i, "requires", j, "name"),
                            f"unknown tool {pattern.name!r}{did_you_mean(pattern.name, tools.names)}",
                            False,
                        )
                    )
    if not ok("expected.actions") or any(loc[:2] == ("expected", "actions") for loc, _, _ in problems):
        return problems

    problems.extend(_lint_replay(scenario, runtime.initial_world.state_hash(), session))
    remember_expected_hash(scenario, session.world.state_hash())  # every action ran: the reward's replay, done
    actions = scenario.expected.actions
    succeeded = [a for a in actions if a.expect_error is None]  # (when the replay holds)
    escalates = [a for a in succeeded if (spec := tools.spec(a.name)) is not None and spec.flags.escalation]
    escalation = scenario.expected.escalation
    if ok("expected.escalation") and escalation == "required" and not escalates:
        problems.append(
            (
                ("expected", "escalation"),
                "escalation is required but no expected action escalates (e.g. transfer_to_human)",
                False,
            )
        )
    if ok("expected.escalation") and escalation == "forbidden" and escalates:
        problems.append(
            (
                ("expected", "escalation"),
                f"escalation is forbidden but expected action {escalates[0].name} escalates",
                False,
            )
        )
    if ok("expected.forbidden_actions"):
        for i, forbidden in enumerate(scenario.expected.forbidden_actions):
            for action in actions:
                if forbidden.matches(action.name, action.arguments):
                    problems.append(
                        (
                            ("expected", "forbidden_actions", i),
                            f"forbidden action {forbidden.name} is also an expected action",
                            False,
                        )
                    )
    if reward is not None and ok("expected") and not any(loc[0] == "expected" for loc, _, _ in problems):
        problems.extend(_lint_reference_reward(scenario, reward, succeeded, escalates))
    return problems


def _lint_replay(scenario: Scenario, initial_hash: str, session: Session) -> list[LintProblem]:
    """Replay the expected actions: each must succeed, or fail exactly as it declares (the replay stops
    at the first that does not); and ``no_change`` must hold."""
    problems: list[LintProblem] = []
    actions = scenario.expected.actions
    for i, (action, result) in enumerate(zip(actions, session.replay(actions), strict=True)):
        declared = action.expect_error
        if result.ok:
            if declared is not None:
                problems.append(
                    (
                        ("expected", "actions", i, "expect_error"),
                        f"expected action {action.name} is declared to fail with {declared} but succeeds on the "
                        "initial world",
                        False,
                    )
                )
                break
        else:
            error = json.loads(result.content)["error"]
            if declared is None:
                problems.append(
                    (
                        ("expected", "actions", i),
                        f"expected action {action.name} fails on the initial world: {error['message']} (if the "
                        f"correct agent is meant to be refused here, declare expect_error: {result.error_type})",
                        False,
                    )
                )
                break
            if result.error_type != declared:
                problems.append(
                    (
                        ("expected", "actions", i, "expect_error"),
                        f"expected action {action.name} fails with {result.error_type} ({error['message']}), "
                        f"not with the declared {declared}",
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
    if not problems and scenario.expected.no_change:
        changed = session.world.changed()
        if session.world.state_hash() != initial_hash:
            tables = ", ".join(sorted(changed)) or "?"
            problems.append(
                (
                    ("expected", "no_change"),
                    f"no_change is true but the expected actions change the world (tables: {tables})",
                    False,
                )
            )
    return problems


def _lint_world_records(scenario: Scenario) -> list[LintProblem]:
    """Every inline record and override that does not fit its table (each one tried on its own)."""
    spec = scenario.world
    try:
        world = build_world(tuple(scenario.toolkits), spec.fixture, spec.seed, None, None).fork()
    except UnknownNameError as err:
        return [(("world", "fixture"), str(err), False)]
    record_types: dict[str, type[BaseModel]] = {}
    for name in scenario.toolkits:
        record_types.update(table_record_types(get_toolkit(name).state_model))
    problems: list[LintProblem] = []
    failed: set[tuple[str, str]] = set()
    for where, records in (("inline", spec.inline), ("overrides", spec.overrides)):
        for table, rows in records.items():
            if table not in record_types:
                try:
                    apply_records(world, {table: rows}, record_types, where=where)
                except OverrideError as err:
                    problems.append((("world", *err.loc), str(err), err.at_key))
                continue
            for key, row in rows.items():
                if (table, key) in failed:
                    continue  # an override of an inline record that was itself bad: reported once
                try:
                    apply_records(world, {table: {key: row}}, record_types, where=where)
                except OverrideError as err:
                    failed.add((table, key))
                    problems.append((("world", *err.loc), str(err), err.at_key))
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
        if fact.say is not None:
            problems.extend(_lint_template(("user", "facts", i, "say"), fact.say, key=fact.key, value=fact.value))
        if fact.said_first is not None:  # the slip is what the agent must not write: the expected writes use value
            for j, action in enumerate(scenario.expected.actions):
                if _holds(action.arguments, fact.said_first):
                    problems.append(
                        (
                            ("user", "facts", i, "said_first"),
                            f"said_first {fact.said_first!r} is the wrong value the user corrects, but expected."
                            f"actions.{j} ({action.name}) writes it; the expected writes must use value {fact.value!r}",
                            False,
                        )
                    )
    return problems


def _holds(arguments: object, value: str) -> bool:
    """Whether ``value`` is one of the (nested) string arguments of an expected action."""
    if isinstance(arguments, str):
        return arguments.strip() == value.strip()
    if isinstance(arguments, dict):
        return any(_holds(v, value) for v in arguments.values())
    if isinstance(arguments, list):
        return any(_holds(v, value) for v in arguments)
    return False


def _lint_template(loc: Loc, source: str, **context: str) -> list[LintProblem]:
    """Every problem of a templated field: constructs outside the allowed subset, unknown names, and
    (when there are none) a test rendering with ``context``."""
    found = check_scenario_template(source, context)
    if not found:
        try:
            render_scenario_text(source, **context)
        except TemplateError as err:
            return [(loc, str(err), False)]
    return [(loc, f"template line {p.line}, column {p.column}: {p.message}", False) for p in found]


def _lint_criteria(scenario: Scenario, spec: RewardSpec) -> list[LintProblem]:
    expected = scenario.expected
    problems: list[LintProblem] = []
    if not (
        expected.actions
        or expected.required_statements
        or expected.forbidden_actions
        or expected.escalation != "optional"
        or expected.required_actions
        or expected.argument_checks
        or expected.claims
        or expected.no_change
    ):
        problems.append(
            (
                ("expected",),
                "no criteria: give expected actions, required statements, forbidden "
                "actions or an escalation requirement (or, when the correct outcome is that the world "
                "does not change, declare no_change: true)",
                True,
            )
        )
        return problems
    weights = spec.weighted()
    counted = {name for name, weight in weights.items() if weight > 0} | set(spec.gates or ())
    if expected.no_change and "final_state" not in counted:
        problems.append(
            (
                ("expected", "no_change"),
                "no_change is read by final_state, which is neither weighted nor a gate: give it a weight or a gate",
                False,
            )
        )
    trivial = {name for name, has in _has_criteria(scenario).items() if not has}
    where = ("reward", "components") if scenario.reward.components is not None else ("reward", "weights")
    if not counted:
        problems.append((where, "no gate and no weighted component: every reward would be 0", True))
    elif counted <= set(spec.judges or ()):
        problems.append(
            (where, "every gate and weighted component is a judge: without a judge model nothing is scored", True)
        )
    elif counted <= trivial:
        problems.append((where, "no gate or weighted component has criteria: every reward would be 1", True))
    for i, statement in enumerate(expected.required_statements):
        if any(not phrase.strip() for phrase in statement.any_of):
            problems.append((("expected", "required_statements", i), "empty phrase", False))
    return problems


def _has_criteria(scenario: Scenario) -> dict[str, bool]:
    """Per built-in component whose criteria a scenario may leave empty, whether it gives any."""
    expected = scenario.expected
    return {
        "required_statements": bool(expected.required_statements),
        "forbidden_actions": bool(expected.forbidden_actions),
        "escalation": expected.escalation != "optional",
        "required_actions": bool(expected.required_actions),
        "argument_checks": bool(expected.argument_checks),
    }


_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")

_USES = {
    "required_actions": "required_actions",
    "argument_checks": "argument_checks",
    "claims": "no_false_claims",
}
"""Criteria sections of ``expected`` and the reward component that reads each."""


def _lint_reward(scenario: Scenario, spec: RewardSpec, *, criteria: bool = True) -> list[LintProblem]:
    """Names in the reward section, custom reward functions, and (with ``criteria``) criteria of
    ``expected`` that no component reads (``spec``: the scenario's :func:`effective_reward_spec`)."""
    own = scenario.reward
    problems: list[LintProblem] = []
    custom = spec.custom or {}
    idle = set(custom_without_role(spec))
    for name, reference in (own.custom or {}).items():
        loc = ("reward", "custom", name)
        if not _SNAKE.match(name):
            problems.append((loc, f"custom component name {name!r} must be snake_case", True))
        elif name in COMPONENTS:
            problems.append((loc, f"custom component {name!r} has the name of a built-in component", True))
        else:
            try:
                load_reward_function(reference)
            except RewardModuleError as err:
                problems.append((loc, str(err), False))
            if name in idle:
                message = "is never called: name it in reward.gates, reward.components or reward.metrics"
                problems.append((loc, f"custom component {name!r} {message}", True))
    judges = spec.judges or {}
    idle_judges = set(judges_without_role(spec))
    for name in own.judges or {}:
        loc = ("reward", "judges", name)
        if not _SNAKE.match(name):
            problems.append((loc, f"judge name {name!r} must be snake_case", True))
        elif name in COMPONENTS or name in custom or name == RUN_JUDGE:
            problems.append((loc, f"judge {name!r} has the name of another reward component", True))
        elif name in idle_judges:
            message = "is never run: name it in reward.gates, reward.components or reward.metrics"
            problems.append((loc, f"judge {name!r} {message}", True))
    known = [*COMPONENTS, *custom, *judges]
    for section in ("gates", "metrics"):
        seen: set[str] = set()
        for i, name in enumerate(getattr(own, section) or []):
            if name not in known:
                problems.append(
                    (("reward", section, i), f"unknown reward component {name!r}{did_you_mean(name, known)}", False)
                )
            elif name in seen:
                problems.append((("reward", section, i), f"{name} is listed twice", False))
            seen.add(name)
    for name in own.components or {}:
        if name not in known:
            problems.append(
                (("reward", "components", name), f"unknown reward component {name!r}{did_you_mean(name, known)}", True)
            )
    if not criteria:
        return problems
    used = set(spec.weighted()) | set(spec.gates or ()) | set(spec.metrics or ())
    expected = scenario.expected
    declared = [section for section in _USES if getattr(expected, section)]
    if "handoff_summary" in expected.model_fields_set:
        declared.append("handoff_summary")
    for section in declared:
        component = _USES.get(section, section)
        if component not in used:
            problems.append(
                (
                    ("expected", section),
                    f"no reward component reads it: add {component} to reward.gates, reward.components or "
                    "reward.metrics",
                    True,
                )
            )
    return problems


def _lint_reference_reward(
    scenario: Scenario, spec: RewardSpec, actions: list[ToolCallSpec], escalates: list[ToolCallSpec]
) -> list[LintProblem]:
    """The expected actions that succeed must pass the scenario's own action-based reward criteria
    (the reward reads successful calls only, so a declared failure counts for none of them)."""
    expected = scenario.expected
    problems: list[LintProblem] = []
    if expected.required_actions_in_order:
        matched = 0
        for action in actions:
            if matched < len(expected.required_actions) and expected.required_actions[matched].matches(
                action.name, action.arguments
            ):
                matched += 1
        if matched < len(expected.required_actions):
            pattern = expected.required_actions[matched]
            problems.append(
                (
                    ("expected", "required_actions", matched),
                    f"required action {pattern.describe()} is not among the expected actions in this order: "
                    "the reference solution would fail it",
                    False,
                )
            )
    else:
        for i, pattern in enumerate(expected.required_actions):
            if not any(pattern.matches(a.name, a.arguments) for a in actions):
                problems.append(
                    (
                        ("expected", "required_actions", i),
                        f"required action {pattern.describe()} is not among the expected actions: "
                        "the reference solution would fail it",
                        False,
                    )
                )
    for i, pattern in enumerate(expected.argument_checks):
        for action in actions:
            if pattern.selects(action.name, action.arguments):
                failed = pattern.failed_checks(action.arguments)
                if failed:
                    problems.append(
                        (
                            ("expected", "argument_checks", i),
                            f"expected action {action.name} fails this check: {'; '.join(failed)}",
                            False,
                        )
                    )
                    break
    counted = {n for n, w in spec.weighted().items() if w > 0} | set(spec.gates or ())
    if "handoff_summary" in counted and expected.escalation != "forbidden" and escalates:
        subjects = [v for a in escalates for k, v in a.arguments.items() if k.endswith("_id") and isinstance(v, str)]
        lacking = summary_problems(escalates[0].arguments, expected.handoff_summary, subjects)
        if lacking:
            index = next(i for i, a in enumerate(expected.actions) if a is escalates[0])
            problems.append(
                (
                    ("expected", "actions", index),
                    f"the expected {escalates[0].name} fails the handoff_summary reward: {'; '.join(lacking)}",
                    False,
                )
            )
    return problems
