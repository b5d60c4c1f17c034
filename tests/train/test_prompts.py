"""The GRPO prompt dataset: one row per scenario and seed, the episode named inside the prompt."""

from __future__ import annotations

import pytest

from envsim.train.episodes import EpisodeKey
from envsim.train.prompts import KEY_FIELD, episode_key, prompt_dataset, prompt_rows


def test_rows_are_the_environment_opening_with_the_episode_named() -> None:
    rows = prompt_rows(["RetailCancelPendingOrder", "MedicalSupplyPanicCaller"], seeds=[5, 6])
    assert [(r["scenario_id"], r["seed"]) for r in rows] == [
        ("RetailCancelPendingOrder", 5),
        ("RetailCancelPendingOrder", 6),
        ("MedicalSupplyPanicCaller", 5),
        ("MedicalSupplyPanicCaller", 6),
    ]
    for row in rows:
        assert episode_key(row["prompt"]) == EpisodeKey(row["scenario_id"], row["seed"])
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]


def test_the_dataset_keeps_the_episode_field_through_arrow() -> None:
    pytest.importorskip("datasets", reason="the train extra is not installed")
    dataset = prompt_dataset(["MedicalSupplyPanicCaller"], seeds=range(3))
    assert dataset.column_names == ["prompt", "scenario_id", "seed"]
    row = dataset[2]
    assert episode_key(row["prompt"]) == EpisodeKey("MedicalSupplyPanicCaller", 2)
    assert row["prompt"][1].get(KEY_FIELD) is None  # Arrow gives every message the field; only the first has it


def test_the_grpo_export_of_a_run_names_its_episodes_the_same_way() -> None:
    from envsim.datasets import EPISODE_FIELD

    assert EPISODE_FIELD == KEY_FIELD


@pytest.mark.parametrize(
    "prompt",
    [[{"role": "user", "content": "hi"}], "hi", [{"role": "system", "content": "s", KEY_FIELD: {"seed": 1}}]],
)
def test_a_prompt_that_does_not_name_its_episode_is_refused(prompt: object) -> None:
    with pytest.raises(ValueError, match="does not name its episode"):
        episode_key(prompt)
