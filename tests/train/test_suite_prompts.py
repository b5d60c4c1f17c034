"""The GRPO adapter takes a suite as it takes scenario ids: prompt rows over a split, played by the episode runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from envsim.train.episodes import EpisodeRunner, summarize
from envsim.train.prompts import episode_key, prompt_rows
from tests.suites import LAYOUT, make_suite
from tests.train.test_episodes import ReplayGenerator


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Gymnasium's registry as it was before the test (naming a suite registers its scenarios)."""
    before = set(gym.registry)
    yield
    for gym_id in set(gym.registry) - before:
        del gym.registry[gym_id]


def test_prompt_rows_of_a_split_play_through_the_episode_runner(
    tokenizer: Any, tmp_path: Path, clean_registry: None
) -> None:
    suite = make_suite(tmp_path / "suite")
    rows = prompt_rows([f"{suite}:train", "MedicalSupplyPanicCaller"], seeds=[0, 1])
    train = {f"{family}X{suffix}" for family, suffix in LAYOUT["train"]}
    assert {row["scenario_id"] for row in rows} == {*train, "MedicalSupplyPanicCaller"}
    assert len(rows) == 2 * (len(train) + 1)
    keys = [episode_key(row["prompt"]) for row in rows]
    assert [k.scenario_id for k in keys] == [row["scenario_id"] for row in rows]  # ids, not paths
    rollouts = EpisodeRunner(tokenizer, max_turn_tokens=512).run(keys, ReplayGenerator(tokenizer, keys))
    assert summarize(rollouts)["success_rate"] == 1.0


def test_the_ppo_prompt_table_takes_a_suite_as_it_takes_scenario_ids(
    tokenizer: Any, tmp_path: Path, clean_registry: None
) -> None:
    """issue 18 item 5: PPO's prompt table reads ``DIR:split`` references (and ``DIR``) as the GRPO prompts do."""
    from envsim.env import ScenarioEnv
    from envsim.train.chat import encode, render
    from envsim.train.episodes import EpisodeKey
    from envsim.train.ppo import EnvScorer, build_prompt_table

    suite = make_suite(tmp_path / "suite")
    table = build_prompt_table(tokenizer, [f"{suite}:dev", f"{suite}:test", "BankingLostCardReplacement"], seeds=[0])
    held_out = {f"{family}X{suffix}" for split in ("dev", "test") for family, suffix in LAYOUT[split]}
    assert set(table.episodes.values()) == {EpisodeKey(i, 0) for i in [*held_out, "BankingLostCardReplacement"]}
    key = EpisodeKey(f"{LAYOUT['test'][0][0]}X{LAYOUT['test'][0][1]}", 0)
    _, info = ScenarioEnv(key.scenario_id).reset(seed=0)  # registered by the table: the scorer plays it
    prompt = encode(tokenizer, render(tokenizer, info["messages"], info["tools"], add_generation_prompt=True))
    assert table.find([*prompt, 7, 8]) == (key, len(prompt))
    assert EnvScorer()(key, "Could you give me your phone number?").outcome in ("failure", "truncated")
    # The whole suite: its train split copies one scenario twice under two ids, which open alike.
    with pytest.raises(ValueError, match="open with the same prompt"):
        build_prompt_table(tokenizer, [str(suite)], seeds=[0])
