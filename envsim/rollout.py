"""The episode loop of envsim: one policy in one environment, turn by turn, until the episode ends.

:class:`EpisodeDriver` is the one loop every runner uses (:func:`run_episode` and
:func:`arun_episode` here, the batch runner of :mod:`envsim.batch.runner`, the RL rollouts of
:mod:`envsim.train.episodes`): :meth:`~EpisodeDriver.reset` starts an episode, each
:meth:`~EpisodeDriver.turn` (:meth:`~EpisodeDriver.aturn` for asyncio) has the policy act on the
last observation and steps the environment, and the episode is :attr:`~EpisodeDriver.done` once
a step returned ``terminated`` or ``truncated`` (Gymnasium's contract: the environment's own end,
or its turn limit). The two halves of a turn, :meth:`~EpisodeDriver.act` and
:meth:`~EpisodeDriver.step`, are also callable on their own, for runners that do something between
them (the batch runner's phases) or whose actions come from elsewhere (a token generator).
"""

from __future__ import annotations

from typing import Any, SupportsFloat

from envsim.agents.base import Policy
from envsim.env import ScenarioEnv
from envsim.reward import RewardBreakdown
from envsim.trajectory import Trajectory

Step = tuple[str, SupportsFloat, bool, bool, dict[str, Any]]
"""What ``env.step`` returns: observation, reward, terminated, truncated, info."""


class EpisodeDriver:
    """Plays one episode at a time of ``env`` (reusable: :meth:`reset` starts the next).

    Args:
        env: The environment.
        policy: The agent; None when the caller supplies every action to :meth:`step` itself.

    Example:
        >>> from envsim.agents import ScriptedAgent
        >>> episode = EpisodeDriver(ScenarioEnv("MedicalSupplyPanicCaller"), ScriptedAgent())
        >>> _ = episode.reset(seed=1)
        >>> while not episode.done:
        ...     _ = episode.turn()
        >>> episode.terminated, episode.truncated, episode.reward
        (True, False, 1.0)
    """

    def __init__(self, env: ScenarioEnv, policy: Policy | None = None) -> None:
        self.env = env
        self.policy = policy
        self.observation = ""
        self.info: dict[str, Any] = {}
        self.reward = 0.0
        self.terminated = False
        self.truncated = False

    @property
    def done(self) -> bool:
        """Whether the last step ended the episode (``terminated or truncated``)."""
        return self.terminated or self.truncated

    def reset(self, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode: the environment's ``reset``, then the policy's; the opening observation and info."""
        self.observation, self.info = self.env.reset(seed=seed)
        self.reward, self.terminated, self.truncated = 0.0, False, False
        if self.policy is not None:
            self.policy.reset(self.env.scenario, self.env.np_random)
        return self.observation, self.info

    def act(self) -> Any:
        """The policy's action on the last observation (the first half of a turn)."""
        return self._policy().act(self.observation, self.info)

    async def aact(self) -> Any:
        """:meth:`act` for asyncio (the policy's model call awaited)."""
        return await self._policy().aact(self.observation, self.info)

    def step(self, action: Any) -> Step:
        """Step the environment with ``action`` (the second half of a turn); what ``env.step`` returned."""
        if self.done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        return self._took(self.env.step(action))

    async def astep(self, action: Any) -> Step:
        """:meth:`step` for asyncio (the mock user's reply awaited)."""
        if self.done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        return self._took(await self.env.astep(action))

    def turn(self) -> Step:
        """One turn: the policy acts, the environment steps."""
        return self.step(self.act())

    async def aturn(self) -> Step:
        """:meth:`turn` for asyncio."""
        return await self.astep(await self.aact())

    def result(self) -> tuple[Trajectory, RewardBreakdown]:
        """The episode's trajectory and reward breakdown (as it stands, if it has not ended)."""
        return self.env.trajectory(), self.env.score()

    def _policy(self) -> Policy:
        if self.policy is None:
            raise RuntimeError("this episode has no policy: pass each action to step()")
        return self.policy

    def _took(self, result: Step) -> Step:
        observation, reward, terminated, truncated, info = result
        self.observation, self.info = observation, info
        self.reward, self.terminated, self.truncated = float(reward), bool(terminated), bool(truncated)
        return result


def run_episode(env: ScenarioEnv, policy: Policy, *, seed: int | None = None) -> tuple[Trajectory, RewardBreakdown]:
    """Play one episode to its end; return the trajectory and its reward breakdown.

    Example:
        >>> from envsim.agents import ScriptedAgent
        >>> trajectory, breakdown = run_episode(ScenarioEnv("MedicalSupplyPanicCaller"), ScriptedAgent(), seed=1)
        >>> trajectory.end_reason, breakdown.total
        ('agent_ended', 1.0)
    """
    episode = EpisodeDriver(env, policy)
    episode.reset(seed=seed)
    while not episode.done:
        episode.turn()
    return episode.result()


async def arun_episode(
    env: ScenarioEnv, policy: Policy, *, seed: int | None = None
) -> tuple[Trajectory, RewardBreakdown]:
    """:func:`run_episode` for asyncio: the agent's and the user's model calls are awaited.

    Example:
        >>> import asyncio
        >>> from envsim.agents import ScriptedAgent
        >>> env = ScenarioEnv("MedicalSupplyPanicCaller")
        >>> trajectory, breakdown = asyncio.run(arun_episode(env, ScriptedAgent(), seed=1))
        >>> breakdown.total
        1.0
    """
    episode = EpisodeDriver(env, policy)
    episode.reset(seed=seed)
    while not episode.done:
        await episode.aturn()
    return episode.result()
