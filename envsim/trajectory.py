"""The record of one episode: messages, tool calls, how it ended, and the final state.

Serialised with :meth:`Trajectory.to_json`, the same seed and the same agent actions give
byte-identical output.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EndReason = Literal["running", "user_done", "agent_ended", "max_turns"]


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

    def agent_texts(self) -> list[str]:
        """Every text the agent said to the user (assistant message contents)."""
        return [m["content"] for m in self.messages if m.get("role") == "assistant" and m.get("content")]

    def to_json(self) -> str:
        """Deterministic JSON (same episode, same bytes)."""
        return self.model_dump_json()
