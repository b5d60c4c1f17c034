"""The batched episode runner, driven by a generator that replays the scripted agent's turns (no model).

Replaying the scripted agent through the token-level loop checks that what the runner hands the
environment is what the model wrote (every scenario is solved), that a rollout's tokens are
exactly the SFT layout of the same conversation, and that a slow mock user does not stall the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from envsim.agents.scripted import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.rollout import run_episode
from envsim.train.chat import assistant_text, encode, encode_conversation
from envsim.train.episodes import EpisodeKey, EpisodeRunner, Generation, summarize
from envsim.user.scripted import ScriptedUser
from tests.conftest import LoggedCalls
from tests.train.conftest import SCENARIOS


class ReplayGenerator:
    """Writes, for each context, the next assistant turn of a recorded conversation with the same prompt (its last
    turn again once the episode outlasts the recording)."""

    def __init__(self, tokenizer: Any, keys: Sequence[EpisodeKey], *, cap_first_turn: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.turns: dict[tuple[int, ...], list[list[int]]] = {}
        self.calls = 0
        for key in keys:
            env = ScenarioEnv(key.scenario_id)
            trajectory, _ = run_episode(env, ScriptedAgent(), seed=key.seed)
            tools = env.session.tools.schemas()
            ids, mask = encode_conversation(tokenizer, trajectory.messages, tools)
            prompt = tuple(ids[: mask.index(1)])
            self.turns[prompt] = [
                encode(tokenizer, assistant_text(tokenizer, trajectory.messages, tools, assistant_index=i))
                for i, m in enumerate(trajectory.messages)
                if m["role"] == "assistant"
            ]

    def __call__(self, contexts: Sequence[list[int]], max_new_tokens: int) -> list[Generation]:
        self.calls += 1
        out = []
        for context in contexts:
            prompt = next(p for p in self.turns if tuple(context[: len(p)]) == p)
            done = self.tokenizer.decode(context[len(prompt) :]).count("<|im_start|>assistant")
            recorded = self.turns[prompt]  # past the recording (an episode that went another way): its last turn again
            ids = recorded[min(done, len(recorded) - 1)][:max_new_tokens]
            out.append(Generation(ids, [-0.5] * len(ids)))
        return out


def test_replaying_the_scripted_agent_solves_every_scenario_with_the_sft_layout(tokenizer: Any) -> None:
    keys = [EpisodeKey(s, seed) for s in SCENARIOS for seed in (0, 1)]
    runner = EpisodeRunner(tokenizer, max_turn_tokens=512)
    rollouts = runner.run(keys, ReplayGenerator(tokenizer, keys))
    assert [r.key for r in rollouts] == keys
    assert summarize(rollouts)["success_rate"] == 1.0
    for r in rollouts:
        env = ScenarioEnv(r.key.scenario_id)
        trajectory, breakdown = run_episode(env, ScriptedAgent(), seed=r.key.seed)
        assert r.reward == breakdown.total == 1.0
        # The rollout is token for token the SFT encoding of the same conversation.
        ids, mask = encode_conversation(tokenizer, trajectory.messages, env.session.tools.schemas())
        assert r.prompt_ids + r.completion_ids == ids
        assert [0] * len(r.prompt_ids) + r.env_mask == mask
        assert len(r.logprobs) == len(r.completion_ids)
        assert r.components and all(score == 1.0 for score in r.components.values())
    assert set(runner.timings) == {"envsim", "generate", "tokenize"}


def test_a_turn_cut_by_its_cap_is_closed_by_the_environment(tokenizer: Any) -> None:
    keys = [EpisodeKey("MedicalSupplyPanicCaller", 0)]
    runner = EpisodeRunner(tokenizer, max_turn_tokens=3)  # every turn is cut before its end-of-turn token
    (rollout,) = runner.run(keys, ReplayGenerator(tokenizer, keys))
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    first_env = rollout.env_mask.index(0)
    assert rollout.completion_ids[first_env] == eos  # the end-of-turn token is the environment's, not trained
    assert rollout.completion_ids[first_env - 1] != eos


def test_token_caps_end_the_episode_as_truncated(tokenizer: Any) -> None:
    keys = [EpisodeKey("RetailCancelPendingOrder", 0)]
    runner = EpisodeRunner(tokenizer, max_turn_tokens=512, max_episode_tokens=600)
    (rollout,) = runner.run(keys, ReplayGenerator(tokenizer, keys))
    assert rollout.end_reason == "token_limit"
    assert rollout.outcome == "truncated" and rollout.reward is not None  # truncated carries a reward
    assert rollout.env_mask[-1] == 1  # it ends with the model's turn


class _SlowUser(ScriptedUser):
    """A scripted user whose replies take ``delay`` seconds, like a model behind an API."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def areply(self, agent_message: str, messages: Any) -> Any:
        await asyncio.sleep(self.delay)
        return self.reply(agent_message, messages)


def test_a_slow_mock_user_does_not_stall_the_batch(tokenizer: Any) -> None:
    keys = [EpisodeKey("MedicalSupplyPanicCaller", seed) for seed in range(8)]
    delay = 0.25
    runner = EpisodeRunner(tokenizer, max_turn_tokens=512, user_factory=lambda: _SlowUser(delay))
    generator = ReplayGenerator(tokenizer, keys)
    runner.run(keys, generator)  # makes the environments (reused afterwards): not what is measured
    generator.calls = 0
    started = time.perf_counter()
    rollouts = runner.run(keys, generator)
    elapsed = time.perf_counter() - started
    replies = sum(1 for m in rollouts[0].messages[2:] if m["role"] == "user")
    assert replies >= 1 and all(r.success for r in rollouts)
    sequential = delay * replies * len(keys)
    assert elapsed < sequential / 2, f"{elapsed:.2f} s: the users' replies did not overlap ({sequential:.2f} s)"
    assert generator.calls == rollouts[0].turns  # one batched generation call per turn, for all episodes


def test_a_simulation_error_drops_only_its_episode(tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    made = 0

    class Broken(ScriptedUser):
        async def areply(self, agent_message: str, messages: Any) -> Any:
            raise KeyError("bug in a user simulator")

    def factory() -> ScriptedUser:
        nonlocal made
        made += 1
        return Broken() if made == 1 else ScriptedUser()

    keys = [EpisodeKey("MedicalSupplyPanicCaller", 0), EpisodeKey("MedicalSupplyPanicCaller", 1)]
    runner = EpisodeRunner(tokenizer, max_turn_tokens=512, user_factory=factory)
    first, second = runner.run(keys, ReplayGenerator(tokenizer, keys))
    assert first.outcome == "sim_fault" and first.reward is None and "KeyError" in (first.error or "")
    assert second.success
    assert "dropped (sim_fault)" in caplog.text


def test_run_sync_finishes_litellms_logging_of_the_loops_calls(slow_litellm_callback: LoggedCalls) -> None:
    """A batch's model calls (an LLM user's) are all logged by litellm before its loop closes."""
    from envsim import llm
    from envsim.train.episodes import run_sync

    messages = [{"role": "user", "content": "Where is my order?"}]

    async def batch() -> list[str]:
        replies = await asyncio.gather(
            *(llm.acomplete("openai/gpt-4o-mini", messages, mock_response="on its way") for _ in range(100))
        )
        return [reply.text for reply in replies]

    assert run_sync(batch) == ["on its way"] * 100
    assert slow_litellm_callback.count == 100 and llm.logging_backlog() == 0


def test_an_episode_ends_when_a_step_says_truncated(tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # the one episode loop (EpisodeDriver) ends on terminated or truncated, not on a key of info
    from tests.test_rollout import CutAtTwo

    keys = [EpisodeKey("MedicalSupplyPanicCaller", 0)]
    generator = ReplayGenerator(tokenizer, keys)  # the scripted agent needs three turns
    monkeypatch.setattr("envsim.train.episodes.ScenarioEnv", CutAtTwo)
    (rollout,) = EpisodeRunner(tokenizer, max_turn_tokens=512).run(keys, generator)
    assert rollout.turns == 2 and rollout.breakdown is not None and rollout.env_mask[-1] == 1
