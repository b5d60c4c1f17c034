"""Running one episode of a policy in an environment."""

from __future__ import annotations

from envsim.agents.base import Policy
from envsim.env import ScenarioEnv
from envsim.reward import RewardBreakdown
from envsim.trajectory import Trajectory


def run_episode(env: ScenarioEnv, policy: Policy, *, seed: int | None = None) -> tuple[Trajectory, RewardBreakdown]:
    """Play one episode to its end; return the trajectory and its reward breakdown.

    Example:
        >>> from envsim.agents import ScriptedAgent
        >>> trajectory, breakdown = run_episode(ScenarioEnv("MedicalSupplyPanicCaller"), ScriptedAgent(), seed=1)
        >>> trajectory.end_reason, breakdown.total
        ('agent_ended', 1.0)
    """
    observation, info = env.reset(seed=seed)
    policy.reset(env.scenario, env.np_random)
    for _ in range(env.scenario.max_turns):
        observation, _, terminated, truncated, info = env.step(policy.act(observation, info))
        if "end_reason" in info:
            break
    return env.trajectory(), env.score()


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
    observation, info = env.reset(seed=seed)
    policy.reset(env.scenario, env.np_random)
    for _ in range(env.scenario.max_turns):
        observation, _, terminated, truncated, info = await env.astep(await policy.aact(observation, info))
        if "end_reason" in info:
            break
    return env.trajectory(), env.score()
