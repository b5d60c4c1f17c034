"""Hand-built trajectories and scenario variants for the reward tests.

A trajectory is a list of agent turns: :func:`say` (a message to the user, who answers) or
:func:`calls` (one assistant message with tool calls, optionally with text). Tool-call records
and message ids are kept consistent, as the environment makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envsim.loader import load_scenario_text
from envsim.reward import RewardContext
from envsim.runtime import ScenarioRuntime
from envsim.scenario import Scenario
from envsim.trajectory import EndReason, ToolCallRecord, Trajectory, Usage
from tests.conftest import TINY_SCENARIO


@dataclass(frozen=True)
class Call:
    """One tool call and how it went."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    escalation: bool = False


@dataclass(frozen=True)
class Turn:
    """One agent turn: text, tool calls, or both."""

    text: str | None = None
    calls: tuple[Call, ...] = ()


def say(text: str) -> Turn:
    """The agent says ``text`` to the user."""
    return Turn(text=text)


def calls(*made: Call, text: str | None = None) -> Turn:
    """The agent makes ``made`` in one message (with ``text`` beside them)."""
    return Turn(text=text, calls=made)


def call(name: str, ok: bool = True, *, escalation: bool = False, **arguments: Any) -> Call:
    """A tool call of ``name`` with ``arguments``."""
    return Call(name, arguments, ok, escalation)


def trajectory(
    *turns: Turn,
    end_reason: EndReason = "user_done",
    final_state_hash: str = "",
    affects: list[str] | None = None,
    usage: dict[str, Usage] | None = None,
    fault: str | None = None,
    infra_error: str | None = None,
) -> Trajectory:
    """A trajectory of ``turns`` (the user opens, and answers every message)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "policy"}, {"role": "user", "content": "Hi"}]
    records: list[ToolCallRecord] = []
    for number, turn in enumerate(turns, start=1):
        if not turn.calls:
            messages.append({"role": "assistant", "content": turn.text})
            messages.append({"role": "user", "content": "Okay."})
            continue
        ids = [f"call_{number}_{i}" for i in range(len(turn.calls))]
        messages.append(
            {
                "role": "assistant",
                "content": turn.text,
                "tool_calls": [
                    {"id": i, "type": "function", "function": {"name": c.name, "arguments": "{}"}}
                    for i, c in zip(ids, turn.calls, strict=True)
                ],
            }
        )
        for i, c in zip(ids, turn.calls, strict=True):
            records.append(
                ToolCallRecord(
                    turn=number,
                    id=i,
                    name=c.name,
                    arguments=c.arguments,
                    ok=c.ok,
                    error_type=None if c.ok else "rule_violation",
                    write=c.escalation,
                    escalation=c.escalation,
                    ends_episode=c.escalation,
                )
            )
            messages.append({"role": "tool", "tool_call_id": i, "content": "{}"})
    return Trajectory(
        scenario_id="TinyEmergency",
        seed=0,
        messages=messages,
        tool_calls=records,
        turns=len(turns),
        end_reason=end_reason,
        final_state_hash=final_state_hash,
        affects=affects or [],
        usage=usage or {},
        fault=fault,
        infra_error=infra_error,
    )


def tiny_text(expected: str = "", reward: str = "", *, escalation: str = "required") -> str:
    """The tiny emergency scenario's YAML with extra ``expected`` lines and a ``reward`` section (indented)."""
    text = TINY_SCENARIO.replace("  escalation: required\n", f"  escalation: {escalation}\n{expected}")
    if reward:
        text = text.replace("max_turns: 8\n", f"reward:\n{reward}max_turns: 8\n")
    return text


def tiny(expected: str = "", reward: str = "", *, escalation: str = "required") -> Scenario:
    """The tiny emergency scenario with extra ``expected`` lines and a ``reward`` section, loaded and linted."""
    return load_scenario_text(tiny_text(expected, reward, escalation=escalation))


def context(scenario: Scenario) -> RewardContext:
    """A reward context for ``scenario``."""
    return RewardContext(ScenarioRuntime(scenario))


LOOKUP_OK = call("lookup_patient", phone="555-0142")
DISPATCH_ARGS: dict[str, Any] = {
    "patient_id": "PT-9001",
    "emergency": "unresponsive",
    "address_confirmed": True,
    "details": "collapsed",
}
DISPATCH_OK = call("dispatch_emergency_services", escalation=True, **DISPATCH_ARGS)
