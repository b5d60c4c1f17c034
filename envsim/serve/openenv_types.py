"""The wire types of ``envsim serve``: envsim's action, observation and state as OpenEnv models.

They subclass OpenEnv's own :class:`~openenv.core.env_server.types.Action`,
:class:`~openenv.core.env_server.types.Observation` and :class:`~openenv.core.env_server.types.State`
(``openenv-core`` 0.3.0), so the server's ``/schema`` route publishes them and OpenEnv's clients send
and read them unchanged.

An action is envsim's action (:mod:`envsim.actions`) in one of its forms:

- a tool call ``{"name": ..., "arguments": {...}}`` (``arguments`` may be JSON text, as OpenAI sends it);
- an OpenAI assistant message ``{"role": "assistant", "content": ..., "tool_calls": [...]}``, or
  ``{"content": ...}`` alone: a message to the user;
- ``{"text": ...}``: the agent's raw text, read exactly as ``env.step(text)`` reads a string (JSON text that
  starts with ``{`` is a tool call, anything else a message).

Example:
    >>> EnvsimAction(name="lookup_patient", arguments={"phone": "555-0142"}).envsim_action()
    {'name': 'lookup_patient', 'arguments': {'phone': '555-0142'}}
    >>> EnvsimAction(content="How can I help?").envsim_action()
    {'content': 'How can I help?'}
    >>> EnvsimAction(text="Hello").envsim_action()
    'Hello'
    >>> from pydantic import ValidationError
    >>> try:
    ...     EnvsimAction(text="Hello", content="Hi")
    ... except ValidationError as error:
    ...     print(error.errors()[0]["msg"].rpartition(";")[2])
     got text, content
"""

from __future__ import annotations

from typing import Any, Literal

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

_CALL_FIELDS = ("name", "arguments", "id")
_MESSAGE_FIELDS = ("role", "content", "tool_calls")


class EnvsimAction(Action):  # type: ignore[misc]  # openenv ships no type information
    """One agent action (see the module docstring): ``text``, a tool call, or an assistant message."""

    text: str | None = Field(default=None, description="The agent's raw text, read as env.step(text) reads it.")
    name: str | None = Field(default=None, description="A tool call: the tool's name.")
    arguments: dict[str, Any] | str | None = Field(
        default=None, description="A tool call: its arguments, an object or JSON text."
    )
    id: str | None = Field(default=None, description="A tool call: its id (recorded in the conversation).")
    role: Literal["assistant"] | None = Field(default=None, description="An assistant message: its role, if sent.")
    content: str | None = Field(default=None, description="An assistant message: its text (alone: to the user).")
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, description="An assistant message: its tool calls, OpenAI format."
    )

    @model_validator(mode="after")
    def _one_form(self) -> EnvsimAction:
        given = [name for name in ("text", *_CALL_FIELDS, *_MESSAGE_FIELDS) if getattr(self, name) is not None]
        forms = {"text" if name == "text" else "call" if name in _CALL_FIELDS else "message" for name in given}
        if len(forms) != 1 or ("call" in forms and self.name is None):
            # a PydanticCustomError, not a ValueError: OpenEnv's error frame carries ``errors()``, which must be JSON
            # (a ValueError's ``ctx`` holds the exception object, and the frame would fail to serialize)
            raise PydanticCustomError(
                "action_form",
                "an action is either 'text', or a tool call ('name', 'arguments', 'id'), or an assistant message "
                f"('role', 'content', 'tool_calls'); got {', '.join(given) or 'no field'}",
            )
        return self

    def envsim_action(self) -> str | dict[str, Any]:
        """The action as :meth:`envsim.env.ScenarioEnv.step` takes it (a string or a dict)."""
        if self.text is not None:
            return self.text
        fields = (*_CALL_FIELDS, *_MESSAGE_FIELDS)
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}


class EnvsimObservation(Observation):  # type: ignore[misc]  # openenv ships no type information
    """What one reset or step returns; ``done`` and ``reward`` are OpenEnv's own fields.

    ``reward`` is 0.0 on every step but the last, where it is the rubric's total and ``reward_breakdown``,
    ``outcome``, ``end_reason`` and ``carries_reward`` are set (see :meth:`envsim.env.ScenarioEnv.step`).
    """

    text: str = Field(description="The observation: a tool's JSON result, a JSON error, or the user's words.")
    scenario_id: str = Field(description="The scenario being played.")
    turn: int = Field(default=0, ge=0, description="Steps taken in this episode, this one included.")
    terminated: bool = Field(default=False, description="The conversation reached its end.")
    truncated: bool = Field(default=False, description="The turn limit cut the episode on this step.")
    messages: list[dict[str, Any]] | None = Field(
        default=None, description="On reset: the agent's system prompt and the user's opening message, OpenAI format."
    )
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="On reset: the OpenAI schemas of the scenario's tools."
    )
    end_reason: str | None = Field(default=None, description="On the last step: why the episode ended.")
    outcome: str | None = Field(default=None, description="On the last step: success, failure, truncated, ...")
    carries_reward: bool | None = Field(
        default=None, description="On the last step: whether the reward is evidence about the agent."
    )
    reward_breakdown: dict[str, Any] | None = Field(
        default=None, description="On the last step: the reward's breakdown (total, components, gates, ...)."
    )


class EnvsimState(State):  # type: ignore[misc]  # openenv ships no type information
    """A session's episode: OpenEnv's ``episode_id`` and ``step_count``, and envsim's conversation so far."""

    scenario_id: str | None = Field(default=None, description="The scenario being played (None before reset).")
    seed: int | None = Field(default=None, description="The episode's seed.")
    end_reason: str = Field(default="running", description="'running', or why the episode ended.")
    messages: list[dict[str, Any]] = Field(default_factory=list, description="The conversation so far, OpenAI format.")
