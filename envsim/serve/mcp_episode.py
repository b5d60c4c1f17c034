"""One MCP session's episode: its own world, the tool calls made on it, and their reward so far.

An MCP client sees a scenario's mocked tools and nothing else: no mock user, no conversation.
:class:`McpScenario` holds what every session of one server shares (the scenario's runtime, its
rubric and the expected final state, computed once); :meth:`McpScenario.episode` gives a session
its :class:`McpEpisode`, a fork of the initial world (copy-on-write: microseconds, whatever the
fixture's size).

The reward is the scenario's own rubric (:meth:`envsim.reward.Rubric.for_scenario`) over the
calls made so far. The components that read the conversation with the user (required
statements, claims, judges, custom components, resolution, customer effort) cannot be judged
from the tool calls: they are recorded as not run (``ran`` False), which leaves them out of the
total and the gates, and the payload names them under ``not_applicable`` with why.

Example:
    >>> scenario = McpScenario.load("RetailCancelPendingOrder")
    >>> episode = scenario.episode()
    >>> episode.call("cancel_order", {"order_id": 7}).error_type
    'invalid_arguments'
    >>> for action in scenario.scenario.expected.actions:
    ...     _ = episode.call(action.name, action.arguments)
    >>> report = episode.reward()
    >>> report["breakdown"]["components"]["final_state"]["score"], report["expected_state_reached"]
    (1.0, True)
    >>> report["not_applicable"]["required_statements"][:40]
    'reads the conversation with the user, wh'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from envsim.registration import load_registered
from envsim.reward import ComponentScore, RewardContext, Rubric
from envsim.reward.custom import GuardedReward
from envsim.runtime import ScenarioRuntime
from envsim.scenario import Scenario
from envsim.tools import ToolResult, error_content
from envsim.trajectory import EndReason, ToolCallRecord, Trajectory

TOOL_CALL_COMPONENTS: frozenset[str] = frozenset(
    {
        "final_state",
        "forbidden_actions",
        "escalation",
        "required_actions",
        "argument_checks",
        "handoff_summary",
        "containment",
    }
)
"""The built-in reward components that read only the tool calls and the world: judged over MCP."""

CONVERSATION_MEASURES: tuple[str, ...] = ("resolution", "turns_to_resolution", "customer_effort")
"""Measures that depend on the user's side of the conversation: None over MCP."""

_CONVERSATION = "reads the conversation with the user, which an MCP server does not see (only the tool calls)"
_CUSTOM = "a custom reward component is given the conversation with the user, which an MCP server does not see"


def not_applicable(rubric: Rubric) -> dict[str, str]:
    """The components of ``rubric`` that cannot be judged from tool calls alone, with why.

    Example:
        >>> rubric = Rubric({"final_state": 0.8, "required_statements": 0.2}, metrics=["resolution"])
        >>> sorted(not_applicable(rubric))
        ['required_statements', 'resolution']
    """
    return {
        name: _CUSTOM if isinstance(fn, GuardedReward) else _CONVERSATION
        for name, fn in rubric.functions.items()
        if name not in TOOL_CALL_COMPONENTS
    }


class McpScenario:
    """What every MCP session of one scenario shares: the runtime, the rubric, the expected final state."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.runtime = ScenarioRuntime(scenario)
        rubric = Rubric.for_scenario(scenario)
        self.not_applicable = not_applicable(rubric)
        self.rubric = rubric.with_scores(
            {name: ComponentScore.not_run(why) for name, why in self.not_applicable.items()}
        )
        self.context = RewardContext(self.runtime)
        self.context.expected_final_hash()  # replayed once here, not in the first session's reward read
        probe = self.runtime.session()
        self.tool_specs = [spec for spec in (probe.tools.spec(n) for n in probe.tools.names) if spec is not None]

    @classmethod
    def load(cls, scenario: str | Path) -> McpScenario:
        """The scenario registered as ``scenario`` (an id) or in that file, validated."""
        return cls(load_registered(scenario))

    def episode(self) -> McpEpisode:
        """A new episode on a fresh fork of the scenario's initial world."""
        return McpEpisode(self)


class McpEpisode:
    """One session's world and the calls made on it; never raises on a bad call (see :meth:`call`)."""

    def __init__(self, shared: McpScenario) -> None:
        self.shared = shared
        self.session = shared.runtime.session()
        self.calls: list[ToolCallRecord] = []
        self.end_reason: EndReason = "running"

    def call(self, name: str, arguments: Any) -> ToolResult:
        """Run one tool call on this episode's world, as the environment does.

        An unknown tool, arguments that do not fit the tool's schema, a missing record or a business
        rule the mock enforces give a result with ``ok`` False and envsim's typed error content
        (``{"error": {"type": ..., "message": ...}}``). Once a tool that ends the episode has
        succeeded (a hand-off, a dispatch), further calls are not executed (``not_executed``).
        """
        if self.end_reason != "running":
            ended_by = next((c.name for c in reversed(self.calls) if c.ok and c.ends_episode), "a tool")
            message = f"the episode has ended ({ended_by} ended it): the call was not executed"
            result = ToolResult(str(name), False, error_content("not_executed", message), "not_executed")
        else:
            result = self.session.tools.call(name, arguments)
        self.calls.append(
            ToolCallRecord(
                turn=len(self.calls) + 1,
                id=f"mcp_{len(self.calls) + 1}",
                name=str(name),
                arguments=arguments if isinstance(arguments, dict) else {},
                ok=result.ok,
                error_type=result.error_type,
                write=result.flags.write,
                escalation=result.flags.escalation,
                ends_episode=result.flags.ends_episode,
            )
        )
        if result.ends_episode:
            self.end_reason = "agent_ended"
        return result

    def trajectory(self) -> Trajectory:
        """The episode so far: its tool calls and final state, with no messages (MCP carries none)."""
        return Trajectory(
            scenario_id=self.shared.scenario.id,
            seed=None,
            messages=[],
            tool_calls=list(self.calls),
            turns=len(self.calls),
            end_reason=self.end_reason,
            final_state_hash=self.session.world.state_hash(),
        )

    def reward(self) -> dict[str, Any]:
        """The scenario's reward over the calls so far, as JSON data (see the module docstring).

        Keys: ``scenario_id``, ``end_reason`` (``running``, or ``agent_ended`` once a tool ended the
        episode), ``tool_calls``, ``expected_state_reached`` (the world equals the expected actions
        replayed), ``breakdown`` (:class:`~envsim.reward.RewardBreakdown`; a NaN score is written as
        ``"NaN"``) and ``not_applicable`` (component name -> why it was not judged).
        """
        trajectory = self.trajectory()
        breakdown = self.shared.rubric.evaluate(trajectory, self.shared.context)
        measures = {**breakdown.measures, **dict.fromkeys(CONVERSATION_MEASURES)}
        breakdown = breakdown.model_copy(update={"measures": measures})
        return {
            "scenario_id": self.shared.scenario.id,
            "end_reason": self.end_reason,
            "tool_calls": len(self.calls),
            "expected_state_reached": trajectory.final_state_hash == self.shared.context.expected_final_hash(),
            "breakdown": json.loads(breakdown.model_dump_json()),
            "not_applicable": dict(self.shared.not_applicable),
        }
