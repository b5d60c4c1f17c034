"""The scripted reference agent: follows the scenario's expected outcome, optionally with errors.

Its plan: ask for the facts the user holds, make the expected tool calls, say the required
statements, then end (a closing question, or the expected hand-off/dispatch carrying the
statements as its message text). With ``error_rate > 0`` each planned step is, with that
probability, skipped, done with a wrong argument, or replaced by a forbidden action: the
imperfect trajectories rejection sampling needs.

Example:
    >>> import gymnasium as gym
    >>> import envsim
    >>> env = gym.make("envsim/MedicalSupplyPanicCaller-v0")
    >>> agent = ScriptedAgent()
    >>> obs, info = env.reset(seed=0)
    >>> agent.reset(env.unwrapped.scenario, env.unwrapped.np_random)
    >>> done = False
    >>> while not done:
    ...     obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
    ...     done = terminated or truncated
    >>> reward
    1.0
"""

from __future__ import annotations

import json
import typing
from typing import Any

import numpy as np

from envsim.agents.base import Policy
from envsim.prompts import render_remembered
from envsim.scenario import Scenario, ToolCallSpec


def _complete(tool_name: str, replaced: ToolCallSpec, arguments: dict[str, Any], toolkits: list[str]) -> dict[str, Any]:
    """Arguments for a forbidden call that would actually run: the pattern's own, then those of the
    replaced action where the parameter names match, then a plausible value for any other required one.
    The tool is looked up in the scenario's ``toolkits`` only."""
    from envsim.toolkits import get_toolkit

    spec = next((k.tool_specs[tool_name] for k in map(get_toolkit, toolkits) if tool_name in k.tool_specs), None)
    if spec is None:
        return dict(arguments)
    out: dict[str, Any] = {}
    for name, field in spec.args_model.model_fields.items():
        if name in arguments:
            out[name] = arguments[name]
        elif name in replaced.arguments:
            out[name] = replaced.arguments[name]
        elif field.is_required():
            out[name] = _plausible(field.annotation)
    return out


def _plausible(annotation: Any) -> Any:
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if choices:
        return choices[0]
    return {bool: True, int: 1, float: 1.0}.get(annotation, "as the customer asked")


def _call(action: ToolCallSpec) -> str:
    return json.dumps({"name": action.name, "arguments": action.arguments}, ensure_ascii=False)


class ScriptedAgent(Policy):
    """A reference agent that replays the expected outcome.

    Args:
        error_rate: Probability, per planned step, of a mistake (0 gives the reference run).
    """

    def __init__(self, error_rate: float = 0.0) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be within [0, 1], got {error_rate}")
        self.error_rate = error_rate
        self._plan: list[str | dict[str, Any]] = []
        self._closing = "Is there anything else I can help you with?"

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Build this episode's plan (with mistakes drawn from ``rng``)."""
        from envsim.toolkits import get_toolkit

        ending = {
            name
            for kit in scenario.toolkits
            for name, spec in get_toolkit(kit).tool_specs.items()
            if spec.flags.ends_episode
        }
        expected = scenario.expected
        statements = [s.any_of[0] for s in expected.required_statements]
        actions = list(expected.actions)
        final = actions.pop() if actions and actions[-1].name in ending else None
        plan: list[str | dict[str, Any]] = []
        if scenario.user.facts:
            plan.append(render_remembered("agent_ask_facts.j2", asks=tuple(f.asked_by[0] for f in scenario.user.facts)))
        for again in range(1, 1 + max((f.found_after for f in scenario.user.facts), default=0)):
            # what the customer could not find yet (found_after): asked again
            later = tuple(f.asked_by[0] for f in scenario.user.facts if f.found_after >= again)
            plan.append(render_remembered("agent_ask_facts.j2", asks=later))
        for action in actions:
            plan.extend(self._maybe_wrong(action, scenario, rng))
        if rng.random() < self.error_rate and statements:  # forget one statement
            statements.pop(int(rng.integers(len(statements))))
        if final is None:
            plan.append(render_remembered("agent_closing.j2", statements=tuple(statements)))
        else:
            for step in self._maybe_wrong(final, scenario, rng):
                if isinstance(step, str) and step.startswith("{"):
                    call = json.loads(step)
                    plan.append(
                        {
                            "role": "assistant",
                            "content": " ".join(statements) or None,
                            "tool_calls": [
                                {
                                    "id": "call_final",
                                    "type": "function",
                                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                                }
                            ],
                        }
                    )
                else:
                    plan.append(step)
            plan.append(render_remembered("agent_closing.j2", statements=tuple(statements)))
        self._plan = plan

    def _maybe_wrong(
        self, action: ToolCallSpec, scenario: Scenario, rng: np.random.Generator
    ) -> list[str | dict[str, Any]]:
        if self.error_rate == 0.0 or rng.random() >= self.error_rate:
            return [_call(action)]
        mistake = int(rng.integers(3))
        if mistake == 0:  # skip the step
            return []
        if mistake == 1:  # a wrong argument value
            args = dict(action.arguments)
            keys = [k for k, v in args.items() if isinstance(v, str)]
            if keys:
                key = keys[int(rng.integers(len(keys)))]
                args[key] = f"{args[key]}X"
            return [_call(ToolCallSpec(name=action.name, arguments=args))]
        forbidden = scenario.expected.forbidden_actions
        if forbidden:  # a forbidden action instead
            pattern = forbidden[int(rng.integers(len(forbidden)))]
            return [
                _call(
                    ToolCallSpec(
                        name=pattern.name,
                        arguments=_complete(pattern.name, action, pattern.arguments, scenario.toolkits),
                    )
                )
            ]
        return []

    def act(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        """The next planned step; once the plan is spent, the closing question."""
        return self._plan.pop(0) if self._plan else self._closing
