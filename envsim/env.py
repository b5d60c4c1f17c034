"""The Gymnasium environment: one scenario, an agent's actions in, observations out.

Each step takes one agent action (see :mod:`envsim.actions`):

- a **tool call** runs against the mocked systems; the observation is the tool's JSON
  result, or a JSON error (``{"error": {"type": ..., "message": ...}}``) for any misuse;
  several calls in one assistant message give one JSON result per line;
- a **message** goes to the mock user; the observation is the user's reply.

The episode **terminates** when the user is done or a tool that ends the episode (a hand-off,
an emergency dispatch) succeeds. It is **truncated** at the turn limit: the scenario's
``max_turns``, or a shorter Gymnasium ``TimeLimit`` around the environment (``gym.make``
adds one with ``max_episode_steps=max_turns``, or the ``max_episode_steps`` given to it). The
environment truncates itself on that step, wrapped or not, so the last step of every episode,
however it ends, carries the reward (the rubric's total) and ``info`` carries the outcome and
the breakdown (see :meth:`ScenarioEnv.step` for every element). ``info`` always carries the
OpenAI-format message list and the tool schemas.

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

import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.wrappers import TimeLimit
from pydantic_core import to_json

from envsim.actions import Malformed, Message, ToolCalls, escape_surrogates, parse_action
from envsim.llm import UsageMeter
from envsim.prompts import render_remembered
from envsim.reward import RewardBreakdown, RewardContext, Rubric
from envsim.runtime import ScenarioRuntime
from envsim.scenario import Scenario
from envsim.spaces import ChatText
from envsim.tools import ToolResult, error_content
from envsim.trajectory import EndReason, ToolCallRecord, Trajectory, Usage
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.scripted import ScriptedUser

_CALLER_FRAMES = 64
"""How far :func:`time_limit_around` looks up the call stack for the wrappers resetting an environment."""


def time_limit_around(env: gym.Env[Any, Any], caller: FrameType | None) -> int | None:
    """The smallest ``max_episode_steps`` of the ``TimeLimit`` wrappers around ``env`` that are resetting it now.

    A ``TimeLimit`` cuts an episode without telling the environment it wraps. Its ``reset`` calls
    down the stack of wrappers to ``env.reset``, so ``env.reset`` finds every ``TimeLimit`` that
    wraps it among its callers (``caller`` is the frame that called ``env.reset``): the frames of
    Gymnasium's code and of wrappers around ``env``, up to the first frame of anything else.
    None when no ``TimeLimit`` wraps ``env`` (or ``env.reset`` was called directly).

    Example:
        >>> from gymnasium.wrappers import TimeLimit
        >>> class Probe(gym.Env):
        ...     def reset(self, *, seed=None, options=None):
        ...         self.limit = time_limit_around(self, sys._getframe(1))
        ...         return None, {}
        >>> probe = Probe(); _ = TimeLimit(TimeLimit(probe, 50), 3).reset(); probe.limit
        3
        >>> _ = probe.reset(); probe.limit is None
        True
    """
    limits: list[int] = []
    frame = caller
    for _ in range(_CALLER_FRAMES):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, TimeLimit) and owner.unwrapped is env:
            limit = getattr(owner, "_max_episode_steps", None)
            if isinstance(limit, int):
                limits.append(limit)
        elif (
            owner is not env
            and not isinstance(owner, gym.Wrapper)
            and not str(frame.f_globals.get("__name__", "")).startswith("gymnasium.")
        ):
            break
        frame = frame.f_back
    return min(limits, default=None)


def _fit(observation: str, limit: int | None) -> str:
    """``observation`` cut to ``limit`` characters (the observation space's bound), ending with a note that says so
    (when the note takes at most half the space)."""
    if limit is None or len(observation) <= limit:
        return observation
    note = f"\n[truncated: {len(observation):,} characters, more than the observation space's {limit:,}]"
    return observation[:limit] if len(note) > limit // 2 else observation[: limit - len(note)] + note


class _WorldGoal:
    """An environment's :meth:`ScenarioEnv.goal_met` as its user holds it (:data:`~envsim.user.base.GoalCheck`),
    through a weak reference: the environment and its user then form no reference cycle, so that an environment
    dropped is freed at once with its worlds and episode, not at the garbage collector's next pass. It pickles
    (and copies) as the environment it stands for; ``None`` once that environment is gone."""

    __slots__ = ("_env",)

    def __init__(self, env: ScenarioEnv | None) -> None:
        self._env = weakref.ref(env) if env is not None else None

    def __call__(self) -> bool | None:
        env = self._env() if self._env is not None else None
        return None if env is None else env.goal_met()

    def __reduce__(self) -> tuple[type[_WorldGoal], tuple[ScenarioEnv | None]]:
        return _WorldGoal, (self._env() if self._env is not None else None,)


@dataclass(frozen=True)
class _AwaitingUser:
    """A message to the user whose reply is still to come."""

    message: str


class ScenarioEnv(gym.Env[str, str]):
    """A text environment for one scenario (see the module docstring for the protocol).

    An environment pickles (for ``multiprocessing``, ``AsyncVectorEnv`` and the like) with its
    episode so far; the mock user must pickle too (the shipped offline users do).

    Args:
        scenario: A :class:`Scenario`, a scenario file path, or a registered scenario id.
        user: The mock user (default: :class:`ScriptedUser`).
        render_mode: ``"ansi"`` (``render()`` returns the transcript) or ``"human"`` (prints it).
        judge_model: The model (a litellm model string) of the scenario's judges (``reward.judges``),
            called once when the episode is scored; None (the default, offline): the judges are
            recorded as not run, outside the total.
        judge_options: Further arguments of :class:`envsim.reward.judge.Judge` for those judges
            (``cache``, ``client``, ``completion_kwargs``, ``samples``...).
        rubric: The rubric that scores episodes (default: the scenario's, :meth:`Rubric.for_scenario`
            with ``judge_model`` and ``judge_options``); a runner passes one it built.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        scenario: Scenario | str | Path,
        *,
        user: UserSimulator | None = None,
        render_mode: str | None = None,
        judge_model: str | None = None,
        judge_options: Mapping[str, Any] | None = None,
        rubric: Rubric | None = None,
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
        self.rubric = rubric or Rubric.for_scenario(self.scenario, judge_model=judge_model, judge_options=judge_options)
        self._reward_context = RewardContext(self.runtime)
        self._world_goal = _WorldGoal(self)
        self._system_prompt = render_remembered(
            "agent_system.j2", domain=self.scenario.domain, guidelines=self.scenario.agent.guidelines
        )
        self._tools = self.session.tools.schemas()
        self._messages: list[dict[str, Any]] = []
        self._calls: list[tuple[int, str, str, dict[str, Any], ToolResult]] = []
        self._turn = 0
        self._limit = self.scenario.max_turns
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
        """Start an episode: a fresh world, and the mock user's opening message as the observation.

        Args:
            seed: Seeds the environment's ``np_random``, which the mock user draws from (its
                persona's phrasing, its replies). The same seed and the same actions give the same
                episode, byte for byte (:meth:`trajectory`). ``None`` keeps the current generator.
            options: Unused.

        Returns:
            observation (str): The user's opening message.
            info (dict): ``"messages"``: the conversation so far in OpenAI format (the agent's
                system prompt, then the user's opening message); ``"tools"``: the OpenAI schemas of
                the scenario's tools; ``"scenario_id"``: the scenario's id.
        """
        super().reset(seed=seed)
        limit = time_limit_around(self, sys._getframe(1))
        self._limit = self.scenario.max_turns if limit is None else min(limit, self.scenario.max_turns)
        self._seed = seed
        self.session.reset()
        self._calls = []
        self._turn = 0
        self._end = "running"
        self._breakdown = None
        self._final = None
        self._fault = None
        self.usage = {}
        self.user.attach_goal(self._world_goal)
        opening = self.user.reset(self.scenario, self.np_random)
        first_affect = getattr(self.user, "affect", None)
        self._affects = [first_affect] if isinstance(first_affect, str) else []
        self._messages = [{"role": "system", "content": self._system_prompt}, {"role": "user", "content": opening}]
        return opening, {"messages": list(self._messages), "tools": self._tools, "scenario_id": self.scenario.id}

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply one agent action: a tool call, or a message to the mock user.

        A bad action never raises: it becomes an error observation. Once the episode has ended
        (``terminated or truncated``), call :meth:`reset` before the next step (a step after the
        end raises ``RuntimeError``).

        Args:
            action (str | dict): A tool call (``{"name": ..., "arguments": {...}}`` as JSON text or a
                dict), an OpenAI assistant message dict (its ``content`` and ``tool_calls``), or any
                other text, which is a message to the user (see :mod:`envsim.actions`).

        Returns:
            observation (str): The tool's JSON result (one line per call when the message made
                several calls), a JSON error ``{"error": {"type": ..., "message": ...}}`` for a
                misused tool or a malformed action, or the user's reply to a message.
            reward (float): ``0.0`` on every step but the last; on the last step (``terminated or
                truncated``), the rubric's total in [0, 1] (``info["reward_breakdown"]["total"]``).
                Use it for learning only when ``info["carries_reward"]`` is true.
            terminated (bool): Whether the conversation reached its end: the user is done (or the
                user simulator failed: outcome ``sim_fault``), or a tool that ends the episode (a
                hand-off, an emergency dispatch) succeeded.
            truncated (bool): Whether the turn limit cut the episode on this step: the scenario's
                ``max_turns``, or a shorter ``TimeLimit`` around this environment (its
                ``max_episode_steps``, e.g. from ``gym.make``). The environment never sets both
                ``terminated`` and ``truncated`` (a ``TimeLimit`` around it may).
            info (dict): On every step:

                - ``"messages"`` (list[dict]): the whole conversation so far, OpenAI format, a new list;
                - ``"tools"`` (list[dict]): the OpenAI schemas of the scenario's tools;
                - ``"turn"`` (int): the steps taken in this episode, this one included.

                On the last step (``terminated or truncated``) also:

                - ``"end_reason"`` (str): ``"user_done"``, ``"agent_ended"`` (a tool ended the episode),
                  ``"sim_fault"`` (the user simulator failed) or ``"max_turns"`` (the turn limit);
                - ``"outcome"`` (str): ``"success"``, ``"failure"``, ``"truncated"``, ``"sim_fault"``,
                  ``"judge_error"`` (a judge could not judge), ``"reward_error"`` (a custom reward
                  function failed) or ``"infra_error"``; see :mod:`envsim.reward.outcome`;
                - ``"carries_reward"`` (bool): whether ``reward`` is evidence about the agent (the
                  outcome is success, failure or truncated); a trainer drops the other episodes;
                - ``"reward_breakdown"`` (dict): :class:`~envsim.reward.RewardBreakdown` as a dict:
                  ``total``, ``components`` (per component: ``score``, ``weight``, ``explanation``,
                  ``gate``, ``judged``), ``gates`` (which held), ``outcome`` and ``measures``.
        """
        done = self._act(action)
        if isinstance(done, _AwaitingUser):
            done = self._hear(self.user.reply(done.message, self._messages))
        return self._finish(*done)

    async def astep(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """:meth:`step` for asyncio runners (same return): the user's reply is awaited (``UserSimulator.areply``),
        and so is the score of the last step (:meth:`ascore`)."""
        done = self._act(action)
        if isinstance(done, _AwaitingUser):
            done = self._hear(await self.user.areply(done.message, self._messages))
        if self._ended(done[1]):
            await self.ascore()
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

    async def ascore(self) -> RewardBreakdown:
        """:meth:`score` for asyncio runners: the rubric's components with an async form (judges) are awaited."""
        if self._breakdown is not None:
            return self._breakdown
        breakdown = await self.rubric.aevaluate(self.trajectory(), self._reward_context)
        if self._end != "running":
            self._breakdown = breakdown
        return breakdown

    def goal_met(self) -> bool | None:
        """The world's verdict on the scenario's goal, which the mock user reads to decide its ending.

        ``True`` when the session's state hash equals the expected final state's (the expected
        actions replayed on a fresh world, computed once, as the ``final_state`` reward does) and
        that state differs from the initial one: the expected writes are done; ``False`` when the
        hashes differ; ``None`` when the expected state is the initial one and the world is in it
        (nothing to write: no evidence). See :func:`envsim.user.base.satisfied`.
        """
        expected = self._reward_context.expected_final_hash()
        if self.session.world.state_hash() != expected:
            return False
        return None if expected == self.runtime.initial_world.state_hash() else True

    def set_usage(self, role: str, usage: Usage) -> None:
        """Record a role's model usage so far in this episode (runners call it before each step).

        The mock user's own usage is read from the user (its ``usage`` attribute) when it has one.
        """
        self.usage[role] = usage
        self._final = None  # the usage is part of the trajectory
        self._breakdown = None  # and of the score

    # -- pickling ------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the session's tools (built on the world): the world's changes stand for the session."""
        state = dict(vars(self))
        state["session"] = self.session.world.snapshot()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A new session on the runtime's initial world, with the pickled changes restored."""
        changes = state.pop("session")
        vars(self).update(state)
        self.session = self.runtime.session()
        self.session.world.restore(changes)

    # -- internals -----------------------------------------------------------------------

    def _usage(self) -> dict[str, Usage]:
        usage = dict(self.usage)
        meter = getattr(self.user, "usage", None)  # a model-backed user's (envsim.llm.UsageMeter)
        if isinstance(meter, UsageMeter) and meter.attempts > 0:
            usage["user"] = meter.usage()
        return usage

    def _act(self, action: Any) -> tuple[str, bool] | _AwaitingUser:
        if self._end != "running":
            raise RuntimeError("the episode has ended: call reset() before step()")
        self._turn += 1
        parsed = parse_action(action, max_length=getattr(self.action_space, "max_length", None))
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
        text = escape_surrogates(turn.text)  # a model's reply may hold a lone surrogate: kept as its escape
        self._messages.append({"role": "user", "content": text})
        if turn.affect is not None:
            self._affects.append(turn.affect)
        if turn.fault is not None:  # the simulator failed: the episode says nothing about the agent
            self._fault = escape_surrogates(turn.fault)
            self._end = "sim_fault"
            return text, True
        if turn.done:
            self._end = "user_done"
        return text, turn.done

    def _ended(self, terminated: bool) -> bool:
        """Whether the episode has ended with this step (a turn past the limit ends it as ``max_turns``)."""
        if not terminated and self._turn >= self._limit:
            self._end = "max_turns"
        return self._end != "running"

    def _finish(self, observation: str, terminated: bool) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        observation = _fit(observation, getattr(self.observation_space, "max_length", None))
        reward = 0.0
        info: dict[str, Any] = {"messages": list(self._messages), "tools": self._tools, "turn": self._turn}
        truncated = not terminated and self._turn >= self._limit
        if self._ended(terminated):
            breakdown = self.score()
            reward = breakdown.total
            info["reward_breakdown"] = breakdown.model_dump()
            info["end_reason"] = self._end
            info["outcome"] = breakdown.outcome
            info["carries_reward"] = breakdown.carries_reward
        if self.render_mode == "human":
            self.render()
        return observation, reward, terminated, truncated, info

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
