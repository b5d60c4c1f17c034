"""Acceptance test of the PPO path: TRL 1.12's PPOTrainer, rewards from envsim episodes, a tiny model on CPU.

Runs in its own virtual environment (``bash .ci/ppo_env.sh``: trl==1.12.*, the last TRL with
PPOTrainer); the main test run does not collect this folder. A tokenizer trained on the
scenario's own text and a randomly initialised ~0.25M-parameter Qwen2 model are warmed up by a
short SFT on one-turn answers (statements and the dispatch call), so that sampled responses are
sometimes right and sometimes not; then PPOTrainer runs two updates. Checked: the reward model,
through TRL's own ``get_reward``, returns the environment's reward for right and wrong responses
(compared with playing the same action in a fresh environment); every response PPO generated was
played in the environment and the scores TRL logged are those rewards; the policy changed, and the
KL term compares it with a reference that stayed as it was before PPO.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl.experimental.ppo", reason="PPOTrainer needs trl==1.12.* (bash .ci/ppo_env.sh)")

import torch

from envsim.env import ScenarioEnv
from envsim.registration import load_registered
from envsim.train.episodes import EpisodeKey
from envsim.train.ppo import (
    SCOPE,
    EnvRewardModel,
    EnvScorer,
    PromptTable,
    build_prompt_table,
    one_response_scenario,
    run_ppo,
)
from envsim.train.sft import sft_config, sft_rows, sft_train
from envsim.train.tiny import build_model, build_tokenizer, scenario_corpus

SCENARIO = "MedicalSupplyPanicCaller"  # solved in one turn: say help is coming, dispatch to PT-9001
SEEDS = range(8)  # four distinct openings

# transformers 5.x deprecates `is_gradient_checkpointing`, which TRL 1.12 reads (FutureWarning per step).
TRL_CHECKPOINTING = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
TRL_EXPERIMENTAL = "ignore:You are importing from 'trl.experimental'"


def _call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


RIGHT = "Emergency services are dispatched: help is on the way." + _call(
    "dispatch_emergency_services",
    {"patient_id": "PT-9001", "emergency": "breathing_difficulty", "address_confirmed": True, "details": "Collapsed."},
)
"""A one-turn answer that solves the scenario."""

WRONG = "I will send the oxygen refill right away." + _call(
    "create_equipment_order", {"patient_id": "PT-9001", "item_id": "EQ-01", "quantity": 1}
)
"""A one-turn answer that takes an order during an emergency (a forbidden action)."""

ASK = "Could you give me your phone number?"
"""A harmless first turn that does not finish the task in one turn."""


def _assistant(text: str) -> dict[str, Any]:
    """The assistant message the environment records for ``text`` (as the policy would write it)."""
    from envsim.agents.hf import parse_generation

    parsed = parse_generation(text)
    assert isinstance(parsed, dict)
    return parsed


def _played(key: EpisodeKey, text: str) -> float:
    """The reward of ``text`` as the only turn of the episode, played directly in a fresh environment."""
    env = ScenarioEnv(one_response_scenario(load_registered(key.scenario_id)))
    env.reset(seed=key.seed)
    _, reward, terminated, truncated, info = env.step(_assistant(text))
    assert "reward_breakdown" in info  # the episode ended after one turn
    return float(reward)


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, PromptTable]]:
    """Tokenizer, a tiny model fine-tuned on one-turn answers (right and wrong), and the prompt table."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and robust to a loaded machine
    try:
        tokenizer = build_tokenizer(scenario_corpus([SCENARIO], seeds=[0]), vocab_size=4096)
        model = build_model(tokenizer, hidden_size=64, layers=2, heads=4, intermediate_size=128)
        table = build_prompt_table(tokenizer, [SCENARIO], SEEDS)
        env = ScenarioEnv(SCENARIO)
        conversations = []
        for key in table.episodes.values():
            _, info = env.reset(seed=key.seed)
            for text in (RIGHT, RIGHT, WRONG):  # mostly right: PPO sees both rewards
                conversations.append(([*info["messages"], _assistant(text)], info["tools"]))
        args = sft_config(
            str(tmp_path_factory.mktemp("sft")),
            max_steps=60,
            learning_rate=5e-3,
            per_device_train_batch_size=4,
            lr_scheduler_type="constant",
            logging_steps=60,
            seed=0,
        )
        sft_train(model, tokenizer, sft_rows(tokenizer, conversations), args=args)
        yield tokenizer, model, table
    finally:
        torch.set_num_threads(threads)


def _row(tokenizer: Any, prompt: list[int], text: str, width: int) -> list[int]:
    """``prompt`` left-padded to ``width``, then ``text`` and the end-of-turn token (TRL's layout)."""
    pad = tokenizer.pad_token_id
    response: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return [pad] * (width - len(prompt)) + prompt + response


@pytest.mark.filterwarnings(TRL_EXPERIMENTAL)
def test_reward_model_returns_the_environments_reward(warm: tuple[Any, Any, PromptTable]) -> None:
    from trl.experimental.utils import get_reward  # what PPOTrainer calls on its reward model

    tokenizer, _, table = warm
    prompts = list(table.episodes.items())
    width = max(len(ids) for ids, _ in prompts) + 3
    texts = [RIGHT, WRONG, ASK]
    rows = [_row(tokenizer, list(prompts[i % len(prompts)][0]), text, width) for i, text in enumerate(texts)]
    longest = max(len(r) for r in rows) + 2
    pad = tokenizer.pad_token_id
    batch = torch.tensor([r + [pad] * (longest - len(r)) for r in rows])  # right padding after the responses
    scorer = EnvScorer()
    model = EnvRewardModel(tokenizer, table, scorer)
    _, scores, _ = get_reward(model, batch, pad, width)
    keys = [prompts[i % len(prompts)][1] for i in range(len(texts))]
    expected = [_played(key, text) for key, text in zip(keys, texts, strict=True)]
    assert expected == [1.0, 0.0, 0.0]  # right; a forbidden order; a question that does not finish the task
    assert scores.tolist() == expected
    assert [(s.key, s.text) for s in scorer.history] == list(zip(keys, texts, strict=True))  # decoded exactly
    assert scorer.history[1].components["forbidden_actions"] == 0.0
    assert model(batch, batch != pad).tolist() == expected  # the module itself, called directly


def test_a_continuation_scores_the_first_action_by_how_an_expert_ends_the_episode() -> None:
    from envsim.agents.scripted import ScriptedAgent

    scorer = EnvScorer(continuation=ScriptedAgent)
    key = EpisodeKey(SCENARIO, 0)
    assert scorer(key, WRONG).reward == 0.0  # the forbidden order fails a gate, whatever follows
    assert scorer(key, ASK).reward == 1.0
    assert scorer(key, "zzz").reward == 1.0  # a useless first turn costs nothing: why it is not the default
    assert scorer.history[-1].end_reason == "agent_ended"


def test_unknown_prompts_are_refused(warm: tuple[Any, Any, PromptTable]) -> None:
    tokenizer, _, table = warm
    model = EnvRewardModel(tokenizer, table)
    ids = torch.tensor([tokenizer("hello there", add_special_tokens=False)["input_ids"]])
    with pytest.raises(KeyError, match="no prompt of the PromptTable"):
        model(ids)


@pytest.mark.filterwarnings(TRL_CHECKPOINTING)
def test_ppo_trains_on_environment_rewards(warm: tuple[Any, Any, PromptTable], tmp_path: Path) -> None:
    tokenizer, model, table = warm
    before = {name: value.detach().clone() for name, value in model.state_dict().items()}
    scorer = EnvScorer()
    batch = 8
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = run_ppo(
            model,
            tokenizer,
            [SCENARIO],
            SEEDS,
            output_dir=str(tmp_path),
            scorer=scorer,
            max_steps=2,
            per_device_train_batch_size=batch,
            response_length=64,
            temperature=1.0,
            learning_rate=1e-3,
            seed=0,
        )
    finally:
        torch.set_num_threads(threads)
    print(f"\nPPO: {run.steps} steps, {run.seconds_per_step:.2f} s/step; {SCOPE}")

    assert run.steps == 2
    # Every response PPO generated was played in the environment, once, in one-turn episodes.
    assert len(scorer.history) == 2 * batch
    assert {s.key for s in scorer.history} <= set(table.episodes.values())
    assert all(s.end_reason in {"max_turns", "agent_ended", "user_done"} and not s.dropped for s in scorer.history)
    # The scores TRL logged per step are the environment's rewards for that step's responses.
    logged = [h["objective/scores"] for h in run.trainer.state.log_history if "objective/scores" in h]
    rewards = [s.reward for s in scorer.history]
    per_step = [sum(rewards[:batch]) / batch, sum(rewards[batch:]) / batch]
    assert logged == pytest.approx(per_step)
    # Both rewards occurred: the warmed-up policy solves the task in some samples and not in others.
    assert 1.0 in rewards and min(rewards) < 1.0, rewards
    changed = [name for name, value in model.named_parameters() if not torch.equal(value, before[name])]
    assert changed, "PPO left the policy unchanged"
    # The KL term compares with the policy as it was before PPO, not with the live policy (TRL 1.12's SFT
    # patches model.forward, which a plain deepcopy would carry over to the reference).
    fresh = build_model(tokenizer, hidden_size=64, layers=2, heads=4, intermediate_size=128)
    fresh.load_state_dict(before)
    ids = torch.tensor([list(next(iter(table.episodes))) + tokenizer(RIGHT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        reference, start, now = run.trainer.ref_model(ids).logits, fresh(ids).logits, model(ids).logits
    assert torch.allclose(reference, start) and not torch.allclose(reference, now)
    kl = [h["objective/kl"] for h in run.trainer.state.log_history if "objective/kl" in h]
    assert kl[0] == pytest.approx(0.0, abs=1e-4) and abs(kl[1]) > 1e-3, kl  # 0 before the first update only
