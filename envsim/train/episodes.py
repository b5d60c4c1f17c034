"""Whole envsim episodes played by a token-level generator, many at once: the RL rollout loop.

:class:`EpisodeRunner` plays a batch of episodes (each a scenario and a seed) in lockstep: every
turn, one batched generation call writes the next assistant turn of every episode still running
(:class:`TokenGenerator`; :class:`HFGenerator` wraps ``transformers`` ``generate``), the text is
parsed into an action (:func:`envsim.agents.hf.parse_generation`), and the environments' steps run
concurrently on one event loop (``await asyncio.gather(env.astep(...) ...)``), so that a mock user
backed by a model waits on the network for all episodes at once and never stalls the batch.

Each :class:`EpisodeRollout` keeps the token layout of :mod:`envsim.train.chat`: the prompt ids,
then the completion ids (the model's sampled turns, ``env_mask`` 1, with their log-probabilities;
between them the environment's text, tool results and user replies, ``env_mask`` 0 and
log-probability 0). The completion ends with the model's last turn. The episode's reward is the
environment's breakdown; an episode whose outcome carries no reward (``sim_fault``,
``infra_error``, ``judge_error``; see :mod:`envsim.reward.outcome`), or in which the simulation
raised, has ``reward`` ``None``: a trainer drops it rather than scoring it 0.

An episode ends when the environment ends it (a step returns ``terminated``: the user is done,
an ending tool succeeded; or ``truncated``: the scenario's turn limit; the episode loop is
:class:`~envsim.rollout.EpisodeDriver`, as everywhere in envsim), or, as ``truncated``, when its
context would pass ``max_context_tokens`` or its completion ``max_episode_tokens``.

:attr:`EpisodeRunner.timings` adds up where the time went (``envsim``: reset, step and scoring;
``generate``; ``tokenize``: templates and tokenization), for ``bench/train_step.py``.

With a :class:`~envsim.train.values.ValueCodec` (``values=``), the policy sees every conversation with
its values replaced by placeholders and its text's placeholders are replaced by the values before it
is parsed into an action (:meth:`EpisodeRunner.view` and :meth:`EpisodeRunner.action`): the
environment, its messages and the reward keep the literal values.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import math
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from envsim.agents.hf import parse_generation
from envsim.env import ScenarioEnv
from envsim.llm import ModelCallError, drain_logging
from envsim.reward import RewardBreakdown
from envsim.reward.outcome import Outcome, carries_reward
from envsim.rollout import EpisodeDriver
from envsim.train.chat import encode, end_of_turn, environment_text, render
from envsim.train.values import ValueCodec
from envsim.user.base import UserSimulator

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class EpisodeKey(NamedTuple):
    """One episode to play: a registered scenario id and the environment seed."""

    scenario_id: str
    seed: int


class Generation(NamedTuple):
    """One generated turn: the new token ids and each one's log-probability under the sampler."""

    ids: list[int]
    logprobs: list[float]


class TokenGenerator(Protocol):
    """Continues each context (token ids) by one assistant turn, at most ``max_new_tokens`` long."""

    def __call__(self, contexts: Sequence[list[int]], max_new_tokens: int) -> list[Generation]:
        """One :class:`Generation` per context, in order; each stops after the end-of-turn token."""


@dataclass
class EpisodeRollout:
    """A played episode as tokens, masks and reward (see the module docstring)."""

    key: EpisodeKey
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    breakdown: RewardBreakdown | None = None
    outcome: Outcome = "truncated"
    end_reason: str = "running"
    turns: int = 0
    error: str | None = None

    @property
    def reward(self) -> float | None:
        """The episode's total, or None when its outcome carries no reward (dropped, not scored 0)."""
        if self.breakdown is None or not carries_reward(self.outcome):
            return None
        return self.breakdown.total

    @property
    def components(self) -> dict[str, float]:
        """Each reward component's score (NaN where it could not judge); empty without a breakdown.

        A component that was not run (a scenario's judge without a judge model) has no score and is left out.
        """
        if self.breakdown is None:
            return {}
        return {name: c.score for name, c in self.breakdown.components.items() if c.ran}

    @property
    def success(self) -> bool:
        """Whether the outcome is ``success``."""
        return self.outcome == "success"


@dataclass
class _Live:
    """An episode in progress (its environment driven by :class:`~envsim.rollout.EpisodeDriver`)."""

    rollout: EpisodeRollout
    driver: EpisodeDriver
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    table: dict[str, str] = field(default_factory=dict)
    done: bool = False

    @property
    def env(self) -> ScenarioEnv:
        """The episode's environment."""
        return self.driver.env


class HFGenerator:
    """A :class:`TokenGenerator` over a ``transformers`` causal LM's ``generate`` (left padding, KV cache).

    Args:
        model: The causal LM (its device is used).
        tokenizer: Gives the pad and end-of-turn ids.
        temperature: 0 decodes greedily; above 0 samples.
        top_p: Nucleus sampling mass (1 keeps all).
        top_k: Keep the k likeliest tokens (0 keeps all).
        max_batch: Most contexts per ``generate`` call (longest first, to waste less padding).
        generation_config: A ``GenerationConfig`` to start from (e.g. the trainer's); the options above override it.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_batch: int = 32,
        generation_config: Any = None,
    ) -> None:
        from transformers import GenerationConfig

        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        eos = tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer))
        base = generation_config.to_dict() if generation_config is not None else {}
        base.pop("max_length", None)
        base.update(
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=top_p if temperature > 0 else None,
            top_k=top_k if temperature > 0 else None,
            eos_token_id=eos,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
            output_scores=True,
            return_dict_in_generate=True,
        )
        options = {k: v for k, v in base.items() if not k.startswith("_")}
        self.config = GenerationConfig(**options)  # type: ignore[no-untyped-call]
        self.eos_id = int(eos)

    def __call__(self, contexts: Sequence[list[int]], max_new_tokens: int) -> list[Generation]:
        """Generate one turn for every context (see :class:`TokenGenerator`)."""
        out: list[Generation | None] = [None] * len(contexts)
        order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            for i, generation in zip(chunk, self._batch([contexts[i] for i in chunk], max_new_tokens), strict=True):
                out[i] = generation
        return [g for g in out if g is not None]

    def _batch(self, contexts: list[list[int]], max_new_tokens: int) -> list[Generation]:
        import torch

        device = next(self.model.parameters()).device
        width = max(len(c) for c in contexts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts], dtype=torch.long, device=device)
        attention = torch.tensor(
            [[0] * (width - len(c)) + [1] * len(c) for c in contexts], dtype=torch.long, device=device
        )
        was_training = self.model.training
        self.model.eval()
        try:
            config = copy.copy(self.config)
            config.max_new_tokens = max_new_tokens
            with torch.no_grad():
                output = self.model.generate(input_ids=ids, attention_mask=attention, generation_config=config)
        finally:
            if was_training:
                self.model.train()
        new = output.sequences[:, width:]
        scores = torch.stack(output.scores, dim=1).float()  # (batch, steps, vocab): the processed logits
        chosen = torch.log_softmax(scores, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        result = []
        for row, logps in zip(new.tolist(), chosen.tolist(), strict=True):
            end = row.index(self.eos_id) + 1 if self.eos_id in row else len(row)
            kept = [lp if math.isfinite(lp) else 0.0 for lp in logps[:end]]
            result.append(Generation(row[:end], kept))
        return result


def run_sync(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, also when an event loop is already
    running in this thread (a notebook): then in a worker thread with its own loop. litellm's
    logging of the loop's model calls (an LLM user's) is finished before the loop closes."""

    async def main() -> _T:
        result = await make()
        await drain_logging()
        return result

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result()


class EpisodeRunner:
    """Plays batches of episodes with a :class:`TokenGenerator` (see the module docstring).

    Environments are made per scenario and reused across calls (``reset`` makes each episode
    independent of the last).

    Args:
        tokenizer: The policy's tokenizer, with a prefix-preserving tool-calling chat template.
        user_factory: Makes each environment's mock user (default: the scripted user).
        max_turn_tokens: Cap on the tokens of one assistant turn.
        max_episode_tokens: Cap on an episode's completion tokens (model and environment); None: no cap.
        max_context_tokens: Cap on prompt plus completion (e.g. the model's context length); None: no cap.
        values: The policy reads and writes values as placeholders (None: as they are).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        user_factory: Callable[[], UserSimulator] | None = None,
        max_turn_tokens: int = 96,
        max_episode_tokens: int | None = None,
        max_context_tokens: int | None = None,
        values: ValueCodec | None = None,
    ) -> None:
        if max_turn_tokens < 1:
            raise ValueError(f"max_turn_tokens must be >= 1, got {max_turn_tokens}")
        self.tokenizer = tokenizer
        self.user_factory = user_factory
        self.max_turn_tokens = max_turn_tokens
        self.max_episode_tokens = max_episode_tokens
        self.max_context_tokens = max_context_tokens
        self.values = values
        self.eos = end_of_turn(tokenizer)
        self.eos_id = int(tokenizer.convert_tokens_to_ids(self.eos))
        self.timings: defaultdict[str, float] = defaultdict(float)
        self._idle: defaultdict[str, list[ScenarioEnv]] = defaultdict(list)

    # -- public ---------------------------------------------------------------------------

    def run(self, keys: Sequence[EpisodeKey], generate: TokenGenerator) -> list[EpisodeRollout]:
        """Play one episode per key (all at once); the rollouts in the order of ``keys``."""
        return run_sync(lambda: self.arun(keys, generate))

    async def arun(self, keys: Sequence[EpisodeKey], generate: TokenGenerator) -> list[EpisodeRollout]:
        """:meth:`run` for callers with an event loop."""
        live = [self._start(EpisodeKey(*key)) for key in keys]
        try:
            while True:
                active = [ep for ep in live if not ep.done]
                if not active:
                    break
                started = time.perf_counter()
                contexts = [ep.rollout.prompt_ids + ep.rollout.completion_ids for ep in active]
                generations = generate(contexts, self.max_turn_tokens)
                self.timings["generate"] += time.perf_counter() - started
                await asyncio.gather(*(self._turn(ep, g) for ep, g in zip(active, generations, strict=True)))
        finally:
            for ep in live:
                self._idle[ep.rollout.key.scenario_id].append(ep.env)
        return [ep.rollout for ep in live]

    def view(self, messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The conversation as the policy reads it, and the placeholder table to read its answer with."""
        if self.values is None:
            return list(messages), {}
        view = self.values.delexicalise(messages)
        return view.messages, view.table

    def action(self, text: str, table: dict[str, str], *, id_prefix: str) -> dict[str, Any] | str:
        """The action in the policy's text, its placeholders replaced by the values of ``table``."""
        if self.values is not None:
            text = self.values.lexicalise(text, table)
        return parse_generation(text, id_prefix=id_prefix)

    # -- one episode ------------------------------------------------------------------------

    def _env(self, scenario_id: str) -> ScenarioEnv:
        idle = self._idle[scenario_id]
        if idle:
            return idle.pop()
        user = self.user_factory() if self.user_factory is not None else None
        return ScenarioEnv(scenario_id, user=user)

    def _start(self, key: EpisodeKey) -> _Live:
        started = time.perf_counter()
        driver = EpisodeDriver(self._env(key.scenario_id))  # the actions come from the generator
        _, info = driver.reset(seed=key.seed)
        self.timings["envsim"] += time.perf_counter() - started
        started = time.perf_counter()
        tools = list(info["tools"])
        messages = list(info["messages"])
        seen, table = self.view(messages)
        prompt = encode(self.tokenizer, render(self.tokenizer, seen, tools, add_generation_prompt=True))
        self.timings["tokenize"] += time.perf_counter() - started
        rollout = EpisodeRollout(key=key, prompt_ids=prompt, messages=messages)
        return _Live(rollout, driver, tools, messages, table)

    async def _turn(self, ep: _Live, generation: Generation) -> None:
        rollout = ep.rollout
        ids = list(generation.ids)
        rollout.completion_ids += ids
        rollout.env_mask += [1] * len(ids)
        rollout.logprobs += list(generation.logprobs)
        rollout.turns += 1
        ended = bool(ids) and ids[-1] == self.eos_id
        text = self.tokenizer.decode(ids[:-1] if ended else ids, skip_special_tokens=False)
        action = self.action(text, ep.table, id_prefix=f"call_{rollout.turns}_")
        before = len(ep.messages)
        started = time.perf_counter()
        try:
            _, _, _, _, info = await ep.driver.astep(action)
        except ModelCallError as error:
            self._fail(ep, "infra_error", f"{type(error).__name__}: {error}")
            return
        except Exception as error:  # a bug in the simulation: this episode only
            self._fail(ep, "sim_fault", "".join(traceback.format_exception_only(error)).strip())
            return
        finally:
            self.timings["envsim"] += time.perf_counter() - started
        ep.messages = list(info["messages"])
        rollout.messages = ep.messages
        if ep.driver.done:  # terminated or truncated (the scenario's turn limit)
            self._finish(ep)
            return
        started = time.perf_counter()
        seen, ep.table = self.view(ep.messages)
        following = encode(
            self.tokenizer,
            environment_text(self.tokenizer, seen, ep.tools, assistant_index=before, ended=ended),
        )
        self.timings["tokenize"] += time.perf_counter() - started
        total = len(rollout.completion_ids) + len(following)
        over_episode = self.max_episode_tokens is not None and total + self.max_turn_tokens > self.max_episode_tokens
        over_context = (
            self.max_context_tokens is not None
            and len(rollout.prompt_ids) + total + self.max_turn_tokens > self.max_context_tokens
        )
        if over_episode or over_context:
            self._finish(ep)  # scored as it stands: outcome "truncated"
            rollout.end_reason = "token_limit"
            return
        rollout.completion_ids += following
        rollout.env_mask += [0] * len(following)
        rollout.logprobs += [0.0] * len(following)

    def _finish(self, ep: _Live) -> None:
        started = time.perf_counter()
        trajectory, breakdown = ep.driver.result()
        self.timings["envsim"] += time.perf_counter() - started
        ep.rollout.breakdown = breakdown
        ep.rollout.outcome = breakdown.outcome
        ep.rollout.end_reason = trajectory.end_reason
        ep.done = True

    def _fail(self, ep: _Live, outcome: Outcome, error: str) -> None:
        _log.warning("episode %s seed %s dropped (%s): %s", *ep.rollout.key, outcome, error)
        ep.rollout.outcome = outcome
        ep.rollout.error = error
        ep.rollout.end_reason = "error"
        ep.done = True


def summarize(rollouts: Sequence[EpisodeRollout]) -> dict[str, Any]:
    """Success rate and mean reward over the episodes that carry a reward, and outcome counts.

    Example:
        >>> summarize([])
        {'episodes': 0, 'scored': 0, 'success_rate': 0.0, 'mean_reward': 0.0, 'outcomes': {}}
    """
    scored = [r for r in rollouts if r.reward is not None]
    outcomes: dict[str, int] = defaultdict(int)
    for r in rollouts:
        outcomes[r.outcome] += 1
    return {
        "episodes": len(rollouts),
        "scored": len(scored),
        "success_rate": sum(r.success for r in scored) / len(scored) if scored else 0.0,
        "mean_reward": sum(r.reward or 0.0 for r in scored) / len(scored) if scored else 0.0,
        "outcomes": dict(sorted(outcomes.items())),
    }
