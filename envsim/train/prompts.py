"""Scenarios × seeds → the prompt dataset GRPOTrainer needs.

One row per episode: ``prompt`` is the conversation the environment opens with (system prompt
and the user's opening message, OpenAI format), and ``scenario_id`` and ``seed`` are columns (they
reach reward functions as keyword arguments). GRPOTrainer repeats each row ``num_generations``
times, so the episodes of a group share scenario and seed.

``rollout_func`` receives only the prompts, so the episode travels inside the prompt too: the
first message carries an ``envsim`` field ``{"scenario_id": ..., "seed": ...}``, which chat
templates ignore and :func:`episode_key` reads back.

Example:
    >>> rows = prompt_rows(["MedicalSupplyPanicCaller"], seeds=[3])
    >>> [m["role"] for m in rows[0]["prompt"]], rows[0]["prompt"][0]["envsim"], rows[0]["seed"]
    (['system', 'user'], {'scenario_id': 'MedicalSupplyPanicCaller', 'seed': 3}, 3)
    >>> episode_key(rows[0]["prompt"])
    EpisodeKey(scenario_id='MedicalSupplyPanicCaller', seed=3)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envsim.train.episodes import EpisodeKey

KEY_FIELD = "envsim"
"""The field of a prompt's first message that names its episode."""


def prompt_rows(scenario_ids: Sequence[str], seeds: Iterable[int]) -> list[dict[str, Any]]:
    """One row per scenario and seed (scenario-major): ``prompt``, ``scenario_id``, ``seed``.

    ``scenario_ids`` may name suites (``DIR`` or ``DIR:split``): each stands for the ids of its
    scenarios, which are registered in this process so the rollouts find them (:func:`envsim.suite.resolve_ids`).
    """
    from envsim.env import ScenarioEnv
    from envsim.suite import resolve_ids

    seed_list = [int(s) for s in seeds]
    rows: list[dict[str, Any]] = []
    for scenario_id in resolve_ids(scenario_ids):
        env = ScenarioEnv(scenario_id)
        for seed in seed_list:
            _, info = env.reset(seed=seed)
            messages = [{"role": m["role"], "content": m["content"]} for m in info["messages"]]
            messages[0][KEY_FIELD] = {"scenario_id": scenario_id, "seed": seed}
            rows.append({"prompt": messages, "scenario_id": scenario_id, "seed": seed})
    return rows


def prompt_dataset(scenario_ids: Sequence[str], seeds: Iterable[int]) -> Any:
    """:func:`prompt_rows` as a ``datasets.Dataset`` (the ``train`` extra)."""
    from datasets import Dataset  # type: ignore[import-untyped]

    return Dataset.from_list(prompt_rows(scenario_ids, seeds))


def episode_key(prompt: Sequence[Mapping[str, Any]] | Any) -> EpisodeKey:
    """The episode a prompt stands for (see the module docstring).

    Raises:
        ValueError: The prompt does not name its episode (it was not made by :func:`prompt_rows`).
    """
    tag = None
    if isinstance(prompt, Sequence) and not isinstance(prompt, str):
        for message in prompt:
            if isinstance(message, Mapping) and isinstance(message.get(KEY_FIELD), Mapping):
                tag = message[KEY_FIELD]
                break
    if tag is None or not isinstance(tag.get("scenario_id"), str) or tag.get("seed") is None:
        raise ValueError(
            f"the prompt does not name its episode (no {KEY_FIELD!r} field with scenario_id and seed on a message): "
            "build the dataset with envsim.train.prompts.prompt_dataset"
        )
    return EpisodeKey(tag["scenario_id"], int(tag["seed"]))
