"""Acceptance test of the GRPO adapter: a tiny model trained through whole envsim episodes on CPU.

A tokenizer trained on the scenario's own text and a randomly initialised ~0.5M-parameter
model are warmed up by a short SFT on scripted episodes of the seeds GRPO then plays (a random
model never emits a tool call), then GRPOTrainer runs two steps whose rollouts are envsim
episodes with tool calls and user replies. Every random stream is seeded (model init, SFT and
GRPO seeds, the rollout sampler's own seed) and each test trains its own copy of the warm model,
so the outcome does not depend on test order; and the warm-up is long enough that the checked
behaviour does not hang on a lucky seed (with 40 steps on two episodes, some init/SFT/GRPO seeds
got 2-3 of 8 episodes with a tool call and a user reply; now each of 8 combinations tried got 7-8).
Checked: the environment mask covers exactly the tool/user tokens (against an independent
rendering of those messages), TRL used that mask, the rewards reach the trainer per
component, the parameters changed; and episodes the infrastructure broke are dropped, not scored 0.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="the train extra (torch, transformers, trl, datasets) is not installed")

import torch

from envsim.agents.scripted import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.llm import ModelCallError
from envsim.rollout import run_episode
from envsim.train.episodes import EpisodeRollout
from envsim.train.grpo import EnvsimRollout, component_reward, episode_reward, grpo_config, make_trainer
from envsim.train.prompts import prompt_dataset
from envsim.train.sft import sft_config, sft_rows, sft_train
from envsim.train.tiny import build_model, build_tokenizer, scenario_corpus
from envsim.user.scripted import ScriptedUser

SCENARIO = "MedicalSupplyPanicCaller"  # ask for facts (user reply), look up (tool), dispatch (tool)
SEEDS = range(4)  # the episodes GRPO plays, and the scripted episodes the warm-up fine-tunes on

# TRL 1.16 reads `model.is_gradient_checkpointing`, which transformers 5.x deprecates (FutureWarning per step).
TRL_CHECKPOINTING = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """Tokenizer and a tiny model fine-tuned on scripted episodes of the scenario (one per seed GRPO plays)."""
    from transformers import set_seed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and robust to a loaded machine
    try:
        set_seed(0)
        tokenizer = build_tokenizer(scenario_corpus([SCENARIO], seeds=[0]), vocab_size=2048)
        model = build_model(tokenizer, hidden_size=128, layers=2, heads=4, intermediate_size=256, seed=0)
        env = ScenarioEnv(SCENARIO)
        conversations = []
        for seed in SEEDS:
            trajectory, _ = run_episode(env, ScriptedAgent(), seed=seed)
            conversations.append((trajectory.messages, env.session.tools.schemas()))
        args = sft_config(
            str(tmp_path_factory.mktemp("sft")),
            max_steps=45,
            learning_rate=3e-3,
            per_device_train_batch_size=1,
            lr_scheduler_type="constant",
            logging_steps=40,
            seed=0,
        )
        sft_train(model, tokenizer, sft_rows(tokenizer, conversations), args=args)
        yield tokenizer, model
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def warm(warm_model: tuple[Any, Any]) -> tuple[Any, Any]:
    """The tokenizer and a fresh copy of the warm model (tests train it, so none sees another's updates)."""
    tokenizer, model = warm_model
    return tokenizer, copy.deepcopy(model)


def _runs(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    """Maximal runs of equal mask bits: (bit, token ids)."""
    runs: list[tuple[int, list[int]]] = []
    for token, bit in zip(ids, mask, strict=True):
        if runs and runs[-1][0] == bit:
            runs[-1][1].append(token)
        else:
            runs.append((bit, [token]))
    return runs


def _expected_environment_text(messages: list[dict[str, Any]]) -> str:
    """What TRL's qwen2_5.jinja writes for tool/user/system messages (an independent re-statement)."""
    out = []
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if i == 0 or messages[i - 1]["role"] != "tool":
                out.append("<|im_start|>user")
            out.append(f"\n<tool_response>\n{m['content']}\n</tool_response>")
            if i == len(messages) - 1 or messages[i + 1]["role"] != "tool":
                out.append("<|im_end|>\n")
        else:
            out.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
    return "".join(out)


def _check_layout(tokenizer: Any, rollout: EpisodeRollout, env_mask: list[int]) -> None:
    """The mask is 1 exactly on the model's turns and 0 exactly on the rendered tool/user/system turns."""
    runs = _runs(rollout.completion_ids, env_mask)
    turns = [i for i, m in enumerate(rollout.messages) if m["role"] == "assistant"]
    model_runs = [tokenizer.decode(ids) for bit, ids in runs if bit == 1]
    env_runs = [tokenizer.decode(ids) for bit, ids in runs if bit == 0]
    assert runs[0][0] == 1 and runs[-1][0] == 1  # starts and ends with the model
    assert len(model_runs) == len(turns) == rollout.turns
    assert len(env_runs) == len(turns) - 1
    for n, text in enumerate(model_runs):
        assert "<|im_start|>" not in text
        if n < len(env_runs):  # ended by its end-of-turn token, or the turn hit its cap and the environment closed it
            assert text.endswith("<|im_end|>") != env_runs[n].startswith("<|im_end|>")
        if "tool_calls" not in rollout.messages[turns[n]] and rollout.messages[turns[n]]["role"] == "assistant":
            content = rollout.messages[turns[n]]["content"]
            assert text.removesuffix("<|im_end|>") == content or content in text
    for n, text in enumerate(env_runs):
        following = rollout.messages[turns[n] + 1 : turns[n + 1]]
        assert following and {m["role"] for m in following} <= {"tool", "user", "system"}
        closing = "" if model_runs[n].endswith("<|im_end|>") else "<|im_end|>"
        assert text == closing + "\n" + _expected_environment_text(following) + "<|im_start|>assistant\n"


def _has_tool_call_and_user_reply(rollout: EpisodeRollout) -> bool:
    """Whether the model's episode had a tool result and a user reply inside it (masked)."""
    first = next(i for i, m in enumerate(rollout.messages) if m["role"] == "assistant")
    last = max(i for i, m in enumerate(rollout.messages) if m["role"] == "assistant")
    inside = rollout.messages[first:last]
    return any(m["role"] == "tool" for m in inside) and any(m["role"] == "user" for m in inside)


@pytest.mark.filterwarnings(TRL_CHECKPOINTING)
def test_grpo_trains_through_whole_episodes(warm: tuple[Any, Any], tmp_path: Path) -> None:
    tokenizer, model = warm
    rollout = EnvsimRollout(max_turn_tokens=48)
    calls: list[tuple[list[EpisodeRollout], dict[str, list[Any]]]] = []

    def recording(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        output = rollout(prompts, trainer)
        calls.append((list(rollout.last), {k: list(v) for k, v in output.items()}))
        return output

    components = ["final_state", "required_statements", "forbidden_actions", "escalation"]
    args = grpo_config(
        str(tmp_path),
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=2,
        learning_rate=1e-3,
        temperature=1.0,
        reward_weights=[1.0] + [0.0] * len(components),
        seed=0,
    )
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = make_trainer(
            model,
            tokenizer,
            prompt_dataset([SCENARIO], seeds=SEEDS),
            args=args,
            rollout=recording,
            reward_funcs=[episode_reward, *(component_reward(c) for c in components)],
        )
        trainer.train()
    finally:
        torch.set_num_threads(threads)

    steps = [entry for entry in trainer.state.log_history if "rewards/episode_reward/mean" in entry]
    assert len(calls) == len(steps) == 2
    for (rollouts, output), logged in zip(calls, steps, strict=True):
        assert len(rollouts) == 8
        # Groups share scenario and seed: the 8 prompts are 2 seeds x 4 generations.
        keys = [r.key for r in rollouts]
        assert all(k.scenario_id == SCENARIO for k in keys)
        assert keys[0:4] == [keys[0]] * 4 and keys[4:8] == [keys[4]] * 4
        for r, mask, logps in zip(rollouts, output["env_mask"], output["logprobs"], strict=True):
            _check_layout(tokenizer, r, mask)
            assert len(logps) == len(r.completion_ids)
            assert all(lp == 0.0 for lp, bit in zip(logps, mask, strict=True) if bit == 0)
            assert all(lp <= 0.0 for lp in logps)
            if r.success:  # ended by the dispatch (the SFT'd model may know the patient id and skip the lookup)
                assert r.end_reason == "agent_ended" and '"dispatch"' in r.messages[-1]["content"]
        assert sum(map(_has_tool_call_and_user_reply, rollouts)) >= len(rollouts) // 2
        # TRL used the env_mask: it counts completion length over mask-1 tokens only.
        assert logged["completions/mean_length"] == pytest.approx(sum(map(sum, output["env_mask"])) / 8)
        # The reward is the episode total; each component reached the trainer as a reward and a metric.
        totals = [r.reward for r in rollouts]
        assert all(t is not None for t in totals)
        assert logged["rewards/episode_reward/mean"] == pytest.approx(sum(totals) / 8)  # type: ignore[arg-type]
        assert logged["reward"] == pytest.approx(sum(totals) / 8)  # type: ignore[arg-type]
        for name in components:
            mean = sum(r.components[name] for r in rollouts) / 8
            assert logged[f"rewards/envsim_{name}/mean"] == pytest.approx(mean)
            assert logged[f"envsim/{name}"] == pytest.approx(mean)
    assert any(entry["grad_norm"] > 0 for entry in steps), "some group had reward variance, so a gradient"
    changed = [name for name, value in model.named_parameters() if not torch.equal(before[name], value.detach())]
    assert changed, "the parameters changed"


class _BrokenUser(ScriptedUser):
    """A scripted user whose model provider fails on every reply (an infrastructure error)."""

    async def areply(self, agent_message: str, messages: Any) -> Any:
        raise ModelCallError("mock-user-model", RuntimeError("503 Service Unavailable"))


@pytest.mark.filterwarnings(TRL_CHECKPOINTING)
def test_infra_errors_are_dropped_from_their_group_not_scored_zero(warm: tuple[Any, Any], tmp_path: Path) -> None:
    tokenizer, model = warm
    made = 0

    def user_factory() -> ScriptedUser:
        nonlocal made
        made += 1
        return _BrokenUser() if made % 2 == 0 else ScriptedUser()  # every other environment's user is broken

    rollout = EnvsimRollout(max_turn_tokens=48, user_factory=user_factory)
    args = grpo_config(
        str(tmp_path), num_generations=4, per_device_train_batch_size=4, max_steps=1, temperature=1.0, seed=0
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = make_trainer(model, tokenizer, prompt_dataset([SCENARIO], seeds=[0]), args=args, rollout=rollout)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    rollouts = rollout.last
    dropped = [r for r in rollouts if r.reward is None]
    kept = [r for r in rollouts if r.reward is not None]
    assert dropped and kept
    assert {r.outcome for r in dropped} == {"infra_error"}
    logged = next(e for e in trainer.state.log_history if "reward" in e)
    assert logged["envsim/dropped"] == pytest.approx(len(dropped) / len(rollouts))
    kept_mean = sum(r.reward for r in kept) / len(kept)  # type: ignore[misc]
    assert logged["reward"] == pytest.approx(kept_mean)  # the dropped ones are not averaged in as 0
    # TRL's advantages (its completions log, in batch order): 0 for the dropped, centred on the kept ones' mean.
    advantages = list(trainer._logs["advantages"])
    assert [a for a, r in zip(advantages, rollouts, strict=True) if r.reward is None] == [0.0] * len(dropped)
    rewards = [r.reward for r in kept]
    if max(rewards) > min(rewards):  # type: ignore[type-var]
        assert any(not math.isclose(a, 0.0) for a, r in zip(advantages, rollouts, strict=True) if r.reward is not None)
