"""The Gymnasium environment: one scenario, an agent's actions in, observations out.

Each step takes one agent action (see :mod:`envsim.actions`):

- a **tool call** runs against the mocked systems; the observation is the tool's JSON
  result, or a JSON error (``{"error": {"type": ..., "message": ...}}``) for any misuse;
  several calls in one assistant message give one JSON result per line;
- a **message** goes to the mock user; the observation is the user's reply.

The episode terminates when the user is done or a tool that ends the episode (a hand-off,
an emergency dispatch) succeeds; the turn limit is Gymnasium's ``TimeLimit`` (registered
scenarios get ``max_episode_steps=max_turns``). On the last step (terminated, or the
scenario's turn limit reached) the reward is the rubric's total and ``info`` carries the
breakdown. ``info`` always carries the OpenAI-format message list and the tool schemas.

Example:
    >>> import gymnasium as gym
    >>> import envsim
    >>> env = gym.make("envsim/MedicalSupplyPanicCaller-v0")
    >>> obs, info = env.reset(seed=7)
    >>> obs, reward, terminated, truncated, info = env.step(
    ...     '{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}')
    >>> '"id":"PT-9001"' in obs
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
from pydantic_core import to_json

from envsim.actions import Malformed, Message, ToolCalls, parse_action
from envsim.prompts import render
from envsim.reward import RewardBreakdown, RewardContext, Rubric
from envsim.runtime import ScenarioRuntime
from envsim.scenario import Scenario
from envsim.spaces import ChatText
from envsim.tools import ToolResult, error_content
from envsim.trajectory import EndReason, ToolCallRecord, Trajectory, Usage
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.scripted import ScriptedUser


@dataclass(frozen=True)
class _AwaitingUser:
    """A message to the user whose reply is still to come."""

    message: str


class ScenarioEnv(gym.Env[str, str]):
    """A text environment for one scenario (see the module docstring for the protocol).

    Args:
        scenario: A :class:`Scenario`, a scenario file path, or a registered scenario id.
        user: The mock user (default: :class:`ScriptedUser`).
        render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"`` (prints it).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self, scenario: Scenario | str | Path, *, user: UserSimulator | None = None, render_mode: str | None = None
    ) -> None:
        from envsim.registration import load_registered

        self.scenario = scenario if isinstance(scenario, Scenario) else load_registered(scenario)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = ChatText()
        self.action_space = ChatText()
        self.runtime = ScenarioRuntime(self.scenario)
        self.session = self.runtime.session()
        self.user = user or ScriptedUser()
        self.rubric = Rubric.for_scenario(self.scenario)
        self._reward_context = RewardContext(self.runtime)
        self._system_prompt = render(
            "agent_system.j2", domain=self.scenario.domain, guidelines=self.scenario.agent.guidelines
        )
        self._tools = self.session.tools.schemas()
        self._messages: list[dict[str, Any]] = []
        self._calls: list[tuple[int, str, str, dict[str, Any], ToolResult]] = []
        self._turn = 0
        self._seed: int | None = None
        self._end: EndReason = "running"
        self._breakdown: RewardBreakdown | None = None
        self._final: Trajectory | None = None
        self._affects: list[str] = []
        self._fault: str | None = None
        self.usage: dict[str, Usage] = {}
        """Model usage per role (``agent``, ``judge``...) that runners record with :meth:`set_usage`."""

    # -- Gymnasium API -------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode: fresh world, the user's opening message as the observation."""
        super().reset(seed=seed)
        self._seed = seed
        self.session.reset()
        self._calls = []
        self._turn = 0
        self._end = "running"
        self._breakdown = None
        self._final = None
        self._fault = None
        self.usage = {}
        opening = self.user.reset(self.scenario, self.np_random)
        first_affect = getattr(self.user, "affect", None)
        self._affects = [first_affect] if isinstance(first_affect, str) else []
        self._messages = [{"role": "system", "content": self._system_prompt}, {"role": "user", "content": opening}]
        return opening, {"messages": list(self._messages), "tools": self._tools, "scenario_id": self.scenario.id}

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one agent action; never raises on a bad action (it becomes an error observation)."""
        done = self._act(action)
        if isinstance(done, _AwaitingUser):
            done = self._hear(self.user.reply(done.message, self._messages))
        return self._finish(*done)

    async def astep(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """:meth:`step` for asyncio runners: the mock user's reply is awaited (``UserSimulator.areply``)."""
        done = self._act(action)
        if isinstance(done, _AwaitingUser):
            done = self._hear(await self.user.areply(done.message, self._messages))
        return self._finish(*done)

    def render(self) -> str | None:
        """``ansi``: the transcript so far as text; ``human``: print it and return ``None``."""
        if self.render_mode is None:
            return None
        from envsim.transcript_text import format_messages

        text = format_messages(self._messages)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    # -- envsim API ----------------------------------------------------------------------

    def trajectory(self) -> Trajectory:
        """The episode so far as a :class:`Trajectory` (once the episode ended, the same object each time)."""
        if self._final is not None:
            return self._final
        trajectory = Trajectory(
            scenario_id=self.scenario.id,
            seed=self._seed,
            messages=[dict(m) for m in self._messages],
            tool_calls=[
                ToolCallRecord(
                    turn=turn,
                    id=call_id,
                    name=name,
                    arguments=arguments,
                    ok=result.ok,
                    error_type=result.error_type,
                    write=result.flags.write,
                    escalation=result.flags.escalation,
                    ends_episode=result.flags.ends_episode,
                )
                for turn, call_id, name, arguments, result in self._calls
            ],
            turns=self._turn,
            end_reason=self._end,
            final_state_hash=self.session.world.state_hash(),
            affects=list(self._affects),
            fault=self._fault,
            usage=self._usage(),
        )
        if self._end != "running":
            self._final = trajectory
        return trajectory

    def score(self) -> RewardBreakdown:
        """The reward breakdown of the episode as it stands (cached once the episode ended)."""
        if self._breakdown is not None:
            return self._breakdown
        breakdown = self.rubric.evaluate(self.trajectory(), self._reward_context)
        if self._end != "running":
            self._breakdown = breakdown
        return breakdown

    def set_usage(self, role: str, usage: Usage) -> None:
        """Record a role's model usage so far in this episode (runners call it before each step).

        The mock user's own usage is read from the user (its ``usage`` attribute) when it has one.
        """
        self.usage[role] = usage
        self._final = None  # the usage is part of the trajectory
        self._breakdown = None  # and of the score

    # -- internals -----------------------------------------------------------------------

    def _usage(self) -> dict[str, Usage]:
        usage = dict(self.usage)
        user_usage = getattr(self.user, "usage", None)
        if user_usage is not None and int(getattr(user_usage, "calls", 0) or 0) > 0:
            usage["user"] = Usage(
                prompt_tokens=user_usage.prompt_tokens,
                completion_tokens=user_usage.completion_tokens,
                cost=user_usage.cost,
                calls=user_usage.calls,
            )
        return usage

    def _act(self, action: Any) -> tuple[str, bool] | _AwaitingUser:
        if self._end != "running":
            raise RuntimeError("the episode has ended: call reset() before step()")
        self._turn += 1
        parsed = parse_action(action)
        if isinstance(parsed, ToolCalls):
            observation, terminated = self._run_tools(parsed)
            if terminated:
                self._end = "agent_ended"
            return observation, terminated
        if isinstance(parsed, Message):
            self._messages.append({"role": "assistant", "content": parsed.content})
            return _AwaitingUser(parsed.content)
        return self._malformed(parsed), False

    def _hear(self, turn: UserTurn) -> tuple[str, bool]:
        self._messages.append({"role": "user", "content": turn.text})
        if turn.affect is not None:
            self._affects.append(turn.affect)
        if turn.fault is not None:  # the simulator failed: the episode says nothing about the agent
            self._fault = turn.fault
            self._end = "sim_fault"
            return turn.text, True
        if turn.done:
            self._end = "user_done"
        return turn.text, turn.done

    def _finish(self, observation: str, terminated: bool) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        reward = 0.0
        info: dict[str, Any] = {"messages": list(self._messages), "tools": self._tools, "turn": self._turn}
        if not terminated and self._turn >= self.scenario.max_turns:
            self._end = "max_turns"
        if self._end != "running":
            breakdown = self.score()
            reward = breakdown.total
            info["reward_breakdown"] = breakdown.model_dump()
            info["end_reason"] = self._end
            info["outcome"] = breakdown.outcome
            info["carries_reward"] = breakdown.carries_reward
        if self.render_mode == "human":
            self.render()
        return observation, reward, terminated, False, info

    def _run_tools(self, parsed: ToolCalls) -> tuple[str, bool]:
        calls = parsed.calls
        ids = [call.id or f"call_{self._turn}_{i}" for i, call in enumerate(calls)]
        self._messages.append(
            {
                "role": "assistant",
                "content": parsed.content or None,
                "tool_calls": [
                    {
                        "id": ids[i],
                        "type": "function",
                        "function": {"name": call.name, "arguments": to_json(call.arguments).decode()},
                    }
                    for i, call in enumerate(calls)
                ],
            }
        )
        contents: list[str] = []
        ended = False
        for call_id, call in zip(ids, calls):  # noqa: B905 - equal lengths by construction
            if ended:
                result = ToolResult(
                    call.name, False, error_content("not_executed", "the episode had already ended"), "not_executed"
                )
            elif call.error is not None:
                result = ToolResult(
                    call.name, False, error_content("invalid_arguments", call.error), "invalid_arguments"
                )
            else:
                result = self.session.tools.call(call.name, call.arguments)
            self._calls.append((self._turn, call_id, call.name, call.arguments, result))
            self._messages.append({"role": "tool", "tool_call_id": call_id, "content": result.content})
            contents.append(result.content)
            ended = ended or result.ends_episode
        if len(contents) == 1:
            return contents[0], ended
        return "\n".join(contents), ended

    def _malformed(self, parsed: Malformed) -> str:
        content = error_content("malformed_action", parsed.reason)
        self._messages.append({"role": "assistant", "content": parsed.raw})
        self._messages.append({"role": "system", "content": content})
        return content
