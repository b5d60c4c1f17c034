"""Outcome calibration: does every mock user rank agents of graded quality the same way?

A mock user is only useful for training and evaluation if a better agent succeeds more often
under it. Agents of known, graded quality (:class:`~envsim.agents.ScriptedAgent` at the error
rates :data:`ERROR_RATES`: 0 is the reference run, each higher rate makes more mistakes) play the
same episodes (the shipped scenarios, :data:`DEFAULT_EPISODES` seeds each, seeds ``seed`` to
``seed + episodes - 1``, the same for every agent and user) under each mock user (``scripted``,
``transcript``, and ``llm`` when a model is given). The figures (:class:`OutcomeCalibration`):

- ``success``: the success rate (the share of episodes whose outcome is ``success``) of each
  agent under each user, side by side;
- ``tau``: per user, Kendall's tau-b between the agents' quality (minus their error rate) and
  their success rate (:func:`kendall_tau`); the target is :data:`TARGET_TAU` (1: success falls
  strictly as the error rate rises). A tie between two agents' success rates lowers tau below 1;
  a user under which every agent has the same success rate ranks nothing (tau ``None``).

A user that is too easy (ending on a phrase, say) lets a careless agent succeed as often as a
careful one and shows here as tau below 1, whatever its turns look like.

Example:
    >>> kendall_tau({"u": {"scripted@0": 1.0, "scripted@0.1": 0.8, "scripted@0.3": 0.4, "scripted@0.6": 0.1}},
    ...             (0.0, 0.1, 0.3, 0.6))
    {'u': 1.0}
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import EnvsimError
from envsim.user.base import UserSimulator

ERROR_RATES: tuple[float, ...] = (0.0, 0.1, 0.3, 0.6)
"""The error rates of the graded scripted agents, best first."""

DEFAULT_EPISODES = 10
"""Episodes (seeds) per scenario and agent under each user when none is given."""

TARGET_TAU = 1.0
"""The target Kendall's tau of every user: agents ranked exactly by their quality."""

SHIPPED_PACKAGE = "envsim_scenarios"
"""The package of envsim's own scenarios (the repository's ``scenarios/`` folder)."""


class OutcomeCalibration(BaseModel):
    """The outcome calibration's figures (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(description="The mock users, in the order measured.")
    agents: dict[str, float] = Field(description="Agent label → the scripted agent's error rate.")
    scenarios: int = Field(description="Scenarios played.")
    episodes: int = Field(description="Episodes (seeds) per scenario, agent and user.")
    seed: int = Field(description="The first episode seed.")
    success: dict[str, dict[str, float]] = Field(description="User → agent label → success rate.")
    tau: dict[str, float | None] = Field(
        description="User → Kendall's tau-b of quality against success rate (None: every agent ties)."
    )
    target_tau: float = Field(TARGET_TAU, description="The target tau of every user.")
    notes: dict[str, str] = Field(default_factory=dict, description="User → how it ran, where that matters.")
    wall_seconds: float


def agent_label(error_rate: float) -> str:
    """The label of the scripted agent at ``error_rate``.

    Example:
        >>> agent_label(0.0), agent_label(0.3)
        ('scripted@0', 'scripted@0.3')
    """
    return f"scripted@{error_rate:g}"


def kendall_tau(success: Mapping[str, Mapping[str, float]], error_rates: Sequence[float]) -> dict[str, float | None]:
    """Per user, Kendall's tau-b between agent quality (minus the error rate) and success rate.

    ``success`` maps each user to its agents' success rates by :func:`agent_label`. Tau-b
    accounts for ties (pandas' ``DataFrame.corr(method="kendall")``); ``None`` where a user's
    success rates are all equal (no ranking at all).

    Example:
        >>> kendall_tau({"easy": {"scripted@0": 1.0, "scripted@0.5": 1.0}}, (0.0, 0.5))
        {'easy': None}
    """
    labels = [agent_label(rate) for rate in error_rates]
    table = pd.DataFrame({user: [float(rates[label]) for label in labels] for user, rates in success.items()})
    table.insert(0, "__quality__", [-float(rate) for rate in error_rates])
    column = table.corr(method="kendall")["__quality__"]
    return {user: None if math.isnan(float(column[user])) else round(float(column[user]), 4) for user in success}


def shipped_scenarios() -> list[Path]:
    """envsim's own scenario files (the repository's ``scenarios/`` folder), sorted; families excluded."""
    from envsim.plugins import package_folder
    from envsim.registration import scenario_files

    folder = package_folder(SHIPPED_PACKAGE)
    if folder is None:
        raise EnvsimError(f"the shipped scenarios ({SHIPPED_PACKAGE}) are not installed")
    return scenario_files([folder])


def _make_users(
    users: Sequence[str], corpus: str | Path | None, model: str | None, api_base: str | None
) -> tuple[dict[str, UserSimulator], dict[str, str]]:
    """The mock users by name, and a note for each that does not run as its name says."""
    from envsim.transcripts.corpus import corpus_dir
    from envsim.user.registry import make_user
    from envsim.user.transcript.index import load_index

    made: dict[str, UserSimulator] = {}
    notes: dict[str, str] = {}
    for name in users:
        options: dict[str, Any] = {}
        if name == "transcript":
            where = corpus_dir(corpus)
            options["corpus"] = where
            if where is None or load_index(where) is None:
                notes[name] = "no transcript corpus: the persona's template lines (the scripted user's fallback)"
            else:
                notes[name] = f"corpus {where}"
        elif name == "llm":
            if model is None:
                raise EnvsimError("the llm user needs a model (--user-model)")
            options = {"model": model, "api_base": api_base}
            notes[name] = f"model {model}" + (f" at {api_base}" if api_base else "")
        made[name] = make_user(name, **options)
    return made, notes


def calibrate_outcomes(
    users: Sequence[str] | Mapping[str, UserSimulator] | None = None,
    *,
    episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    scenarios: Sequence[str | Path] | None = None,
    error_rates: Sequence[float] = ERROR_RATES,
    corpus: str | Path | None = None,
    model: str | None = None,
    api_base: str | None = None,
) -> OutcomeCalibration:
    """Play the graded scripted agents under each mock user; their success rates and Kendall's tau per user.

    Args:
        users: Mock users by registry name (default ``scripted`` and ``transcript``, plus ``llm``
            when ``model`` is given), or ready-made users by name.
        episodes: Seeds per scenario, agent and user (``seed`` .. ``seed + episodes - 1``).
        seed: The first episode seed; the same seed gives the same figures.
        scenarios: Scenario files (default :func:`shipped_scenarios`).
        error_rates: The agents' error rates, best first (default :data:`ERROR_RATES`).
        corpus: The transcripts folder of the transcript user (default
            :func:`~envsim.transcripts.corpus.corpus_dir`; without one it speaks template lines,
            noted in ``notes``).
        model: The litellm model of the LLM user.
        api_base: The LLM user's API base URL.
    """
    from envsim.agents import ScriptedAgent
    from envsim.env import ScenarioEnv
    from envsim.loader import load_scenario
    from envsim.rollout import run_episode

    if episodes < 1:
        raise EnvsimError(f"episodes must be at least 1, got {episodes}")
    if len(error_rates) < 2:
        raise EnvsimError("the outcome calibration needs at least two error rates")
    started = time.perf_counter()
    names = list(users) if users else ["scripted", "transcript", *(["llm"] if model else [])]
    files = [Path(f) for f in scenarios] if scenarios is not None else shipped_scenarios()
    if not files:
        raise EnvsimError("no scenarios to play for the outcome calibration")
    loaded = [load_scenario(f) for f in files]
    if isinstance(users, Mapping):
        made: dict[str, UserSimulator] = dict(users)
        notes: dict[str, str] = {}
    else:
        made, notes = _make_users(names, corpus, model, api_base)
    success: dict[str, dict[str, float]] = {}
    for name in names:
        rates: dict[str, float] = {}
        for rate in error_rates:
            wins = 0
            for scenario in loaded:
                env = ScenarioEnv(scenario, user=made[name])
                for k in range(episodes):
                    _, breakdown = run_episode(env, ScriptedAgent(rate), seed=seed + k)
                    wins += breakdown.outcome == "success"
            rates[agent_label(rate)] = round(wins / (len(loaded) * episodes), 4)
        success[name] = rates
    return OutcomeCalibration(
        users=names,
        agents={agent_label(rate): float(rate) for rate in error_rates},
        scenarios=len(loaded),
        episodes=episodes,
        seed=seed,
        success=success,
        tau=kendall_tau(success, error_rates),
        notes=notes,
        wall_seconds=round(time.perf_counter() - started, 2),
    )


def table_rows(result: OutcomeCalibration) -> list[tuple[str, ...]]:
    """The success table as text rows (a header, one row per agent, then tau per user), for the CLI.

    Example:
        >>> r = OutcomeCalibration(users=["scripted"], agents={"scripted@0": 0.0, "scripted@0.6": 0.6}, scenarios=1,
        ...     episodes=1, seed=0, success={"scripted": {"scripted@0": 1.0, "scripted@0.6": 0.0}},
        ...     tau={"scripted": 1.0}, wall_seconds=0.1)
        >>> table_rows(r)
        [('agent', 'scripted'), ('scripted@0', '1.00'), ('scripted@0.6', '0.00'), ('tau (target 1)', '1.00')]
    """
    rows: list[tuple[str, ...]] = [("agent", *result.users)]
    for label in result.agents:
        rows.append((label, *(f"{result.success[u][label]:.2f}" for u in result.users)))
    tau = result.tau
    rows.append(
        (f"tau (target {result.target_tau:g})", *("-" if tau[u] is None else f"{tau[u]:.2f}" for u in result.users))
    )
    return rows
