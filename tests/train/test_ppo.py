"""The PPO path's environment scorer: a response played as an episode's first turn, scored by envsim."""

from __future__ import annotations

import pytest

from envsim.agents.scripted import ScriptedAgent
from envsim.train.episodes import EpisodeKey
from envsim.train.ppo import EnvScorer
from tests.test_rollout import CutAtTwo

KEY = EpisodeKey("MedicalSupplyPanicCaller", 0)


def test_a_continuation_plays_on_until_the_episode_ends() -> None:
    scored = EnvScorer(continuation=ScriptedAgent)(KEY, "Could you give me your phone number?")
    assert scored.end_reason in ("agent_ended", "user_done") and scored.reward == 1.0


def test_a_continuation_stops_when_a_step_says_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    # the one episode loop (EpisodeDriver): it ends on terminated or truncated, not on a key of info
    monkeypatch.setattr("envsim.train.ppo.ScenarioEnv", CutAtTwo)
    scorer = EnvScorer(continuation=ScriptedAgent)
    scorer(KEY, "Could you give me your phone number?")
    env = scorer.env(KEY.scenario_id)
    assert env.trajectory().turns == 2
