"""The record of one episode: messages, tool calls, how it ended, and the final state.

Serialised with :meth:`Trajectory.to_json`, the same seed and the same agent actions give
byte-identical output.

Besides what the environment records itself, a trajectory carries what the parts around it
report: model usage per role (``usage``: tokens, cost and calls of the agent, the user
simulator, a judge), the mock user's affect after each user turn (``affects``), and why an
episode cannot be used as evidence about the agent (``fault`` for a simulator fault,
``infra_error`` for a failure of the infrastructure). Rewards read them (see
:mod:`envsim.reward.kpis` and :mod:`envsim.reward.outcome`).

Example:
    >>> t = Trajectory(scenario_id="X", seed=0, messages=[],
    ...                usage={"agent": Usage(prompt_tokens=900, completion_tokens=100, cost=0.002, calls=3)},
    ...                affects=["angry", "calm"])
    >>> t.usage["agent"].total_tokens, t.affects[-1], t.fault is None
    (1000, 'calm', True)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EndReason = Literal["running", "user_done", "agent_ended", "max_turns", "sim_fault"]


class ToolCallRecord(BaseModel):
    """One tool call the agent made and what came of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    turn: int = Field(description="Agent step (1-based) in which the call was made.")
    id: str = Field(description="The tool call id in the message list.")
    name: str
    arguments: dict[str, Any]
    ok: bool
    error_type: str | None = None
    write: bool = False
    escalation: bool = False
    ends_episode: bool = False


class Usage(BaseModel):
    """Model usage of one role in an episode: tokens, cost and the number of model calls.

    Usages add up: ``a + b`` is the usage of both.

    Example:
        >>> (Usage(prompt_tokens=10, calls=1) + Usage(completion_tokens=5, cost=0.5, calls=1)).model_dump()
        {'prompt_tokens': 10, 'completion_tokens': 5, 'cost': 0.5, 'calls': 2}
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: int = Field(0, ge=0, description="Tokens sent to the model.")
    completion_tokens: int = Field(0, ge=0, description="Tokens the model generated.")
    cost: float = Field(0.0, ge=0, description="What the calls cost, in US dollars.")
    calls: int = Field(0, ge=0, description="Model calls made (retries included).")

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=self.cost + other.cost,
            calls=self.calls + other.calls,
        )


UsageRole = str
"""A role whose model usage is recorded: by convention ``agent``, ``user`` (the user simulator) or ``judge``."""


class Trajectory(BaseModel):
    """Everything a reward (or a dataset) needs to know about an episode."""

    model_config = ConfigDict(extra="forbid")

    scenario_id: str
    seed: int | None
    messages: list[dict[str, Any]] = Field(description="OpenAI-format messages, system prompt first.")
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    turns: int = Field(0, description="Agent steps taken.")
    end_reason: EndReason = "running"
    final_state_hash: str = ""
    usage: dict[UsageRole, Usage] = Field(
        default_factory=dict, description="Model usage per role: agent, user (simulator), judge."
    )
    affects: list[str] = Field(
        default_factory=list, description="The mock user's affect after each user turn, opening first (e.g. calm)."
    )
    fault: str | None = Field(None, description="Why the simulation (e.g. the user simulator) failed, if it did.")
    infra_error: str | None = Field(None, description="Why the infrastructure (e.g. a model API) failed, if it did.")

    def agent_texts(self) -> list[str]:
        """Every text the agent said to the user (assistant message contents)."""
        return [m["content"] for m in self.messages if m.get("role") == "assistant" and m.get("content")]

    def to_json(self) -> str:
        """Deterministic JSON (same episode, same bytes)."""
        return self.model_dump_json()
