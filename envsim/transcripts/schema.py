"""The canonical transcript schema every importer produces.

One :class:`Conversation` per dialogue, one JSON object per line in the canonical JSONL.

Example:
    >>> c = Conversation(corpus="plain", id="1", turns=[Turn(role="user", text="Hi")])
    >>> Conversation.model_validate_json(c.model_dump_json()) == c
    True
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["user", "agent", "system", "tool", "instruction"]
"""Who produced a turn. ``instruction`` is a note to the human role-player (STAR's UserGuide)."""


class ToolEvent(BaseModel):
    """A tool (knowledge-base, action) call made by the agent, with its result when known."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: Any = None


class Turn(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    text: str = ""
    timestamp: float | None = Field(None, description="Seconds since the epoch, when the corpus has it.")
    tool: ToolEvent | None = Field(None, description="Set on tool turns.")
    labels: dict[str, Any] = Field(default_factory=dict, description="Per-turn labels: emotion, action label, ...")


class Conversation(BaseModel):
    """A whole conversation with its corpus labels.

    ``labels`` holds conversation-level labels in a corpus-neutral vocabulary where one exists:
    ``persona_instructions`` (list of instruction texts given to the role-playing user),
    ``annoyed`` (bool: the agent judged the user aggressive or annoyed), ``escalated`` (bool),
    ``outcome`` (str), ``intent`` (str), ``domains`` (list); anything else keeps the corpus' name.
    """

    model_config = ConfigDict(extra="forbid")

    corpus: str = Field(description="Corpus name: star, abcd, banking77, goemotions, plain, ...")
    id: str = Field(description="The dialogue's id in its corpus.")
    turns: list[Turn]
    labels: dict[str, Any] = Field(default_factory=dict)

    def user_turns(self) -> list[Turn]:
        """The user's turns, in order."""
        return [t for t in self.turns if t.role == "user"]
