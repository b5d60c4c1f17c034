"""A thin adapter for TRL's ``GRPOTrainer``: whole envsim episodes as rollouts, through ``rollout_func``.

Usage::

    from envsim.train.grpo import EnvsimRollout, episode_reward, grpo_config, make_trainer
    from envsim.train.prompts import prompt_dataset

    dataset = prompt_dataset(["RetailCancelPendingOrder", "BankingLostCardReplacement"], seeds=range(64))
    args = grpo_config("out/grpo", num_generations=4, per_device_train_batch_size=8, max_steps=100)
    trainer = make_trainer(model, tokenizer, dataset, args=args, rollout=EnvsimRollout(max_turn_tokens=128))
    trainer.train()

What one generation batch does (:class:`EnvsimRollout`, called by the trainer with the batch's
prompts, each repeated ``num_generations`` times):

1. every prompt names its episode (scenario, seed; :mod:`envsim.train.prompts`), so the episodes
   of a GRPO group share scenario and seed and differ only by what the policy samples;
2. :class:`~envsim.train.episodes.EpisodeRunner` plays them all at once: per turn, one batched
   generation with the trainer's model (``transformers`` ``generate``, or TRL's vLLM when the
   trainer uses it) writes every running episode's next assistant turn, and the environments'
   steps (tools, the mock user) run concurrently on an event loop, so a mock user's model calls
   never stall the batch;
3. it returns ``prompt_ids``, ``completion_ids`` (the model's turns with the tool results and user
   replies between them, as chat turns), ``logprobs`` (the sampler's, 0 on environment tokens)
   and ``env_mask`` (1 on the model's tokens, 0 on the environment's, so those are not trained),
   plus per-sample fields that reach reward functions as keyword arguments: ``envsim_reward``
   (the episode's total, or ``None``), ``envsim_components`` (component → score),
   ``envsim_outcome``, ``envsim_end_reason``, ``envsim_turns``.

**Seeding.** On the ``transformers`` path the sampler does not draw from torch's global random
stream (which training, and any code between building the trainer and ``train()``, also draws
from): each call samples from a forked stream seeded from the trainer's ``seed``, the process
index, the global step and the call's number (:func:`generation_seed`), so a run's rollouts are
fixed by its seed whatever ran before it in the process.

The reward is :func:`episode_reward`: the episode's total. It logs each component's mean, the
outcome shares and the dropped count as trainer metrics (``envsim/<component>``,
``envsim/outcome/<outcome>``, ``envsim/dropped``); :func:`component_reward` makes one reward
function per component, for runs that weight components in the trainer (``reward_weights``).

**Dropped episodes.** An episode whose outcome carries no reward (``sim_fault``, ``infra_error``,
``judge_error``, ``reward_error``: the simulation, not the agent, failed) gets reward ``None``. In TRL 1.16
``GRPOTrainer._calculate_rewards`` turns ``None`` into NaN; a completion for which every reward
function returned ``None`` is *unscorable*: its reward stays NaN, the group mean and standard
deviation are ``nanmean``/``nanstd`` over the others, and its advantage is forced to 0. So it is
dropped from its group, not scored 0. The adapter also sets its ``env_mask`` to all zeros, so its
tokens count in no loss term (not even the KL term, when ``beta > 0``). A group left with one
scored episode gets advantage 0 for it (its standard deviation is 0).

**Why ``rollout_func`` and not ``environment_factory``.** TRL 1.16 offers both for multi-turn
training. ``environment_factory`` runs TRL's own tool loop: every public method of the
environment becomes a tool, and an episode ends at the first assistant turn without a tool call.
In envsim an assistant message *to the user* is an ordinary action, answered by the mock user,
and most episodes need several of them (ask for the facts, confirm, close); there the mock user
would have to become a tool (``reply_to_customer(text)``), which changes the action space the
policy learns from the one it is evaluated and deployed with (plain messages, as in
``envsim generate`` and every LLM agent). It would also lose what envsim's environment owns: malformed
actions answered with an error instead of ending the episode, the scenario's turn limit, the
user ending the call, and a reward that is more than one float (components, and outcomes that must drop an episode;
``get_reward`` returns a float). With ``rollout_func`` the adapter owns the loop, so the
environment's protocol is kept exactly, the token layout and ``env_mask`` are exact (the model's
sampled tokens are trained as sampled, never re-tokenized), the whole batch is stepped
concurrently, and components and outcomes travel as per-sample fields. The price: the API is
marked experimental in TRL (the warning is silenced in :func:`make_trainer`, as envsim pins and
tests the TRL it supports), and the adapter does its own generation (``transformers`` on one
process; TRL's vLLM in colocate mode; multi-process vLLM server mode is untested). For stacks built
on TRL's own tool loop, :mod:`envsim.train.environment_factory` offers the other form, with the
tools' signatures generated from their schemas and the user behind ``reply_to_customer``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from envsim.train.config import checkpointing_field
from envsim.train.episodes import EpisodeRollout, EpisodeRunner, Generation, HFGenerator, TokenGenerator
from envsim.train.prompts import episode_key
from envsim.train.values import ValueCodec
from envsim.user.base import UserSimulator

METRIC_PREFIX = "envsim"
"""Prefix of the metrics the reward function logs."""


class VLLMGenerator:
    """A :class:`~envsim.train.episodes.TokenGenerator` over the trainer's vLLM (``trainer.vllm_generation``).

    One ``generate`` call per turn with ``num_generations=1``; the per-turn token cap is set on
    the vLLM wrapper for the call. The trainer keeps vLLM's weights in sync before ``rollout_func``.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        tokenizer = trainer.processing_class
        self.eos_id = int(tokenizer.convert_tokens_to_ids(tokenizer.eos_token))

    def __call__(self, contexts: Sequence[list[int]], max_new_tokens: int) -> list[Generation]:
        """Generate one turn for every context with vLLM."""
        vllm = self.trainer.vllm_generation
        cap = vllm.max_completion_length
        vllm.max_completion_length = max_new_tokens
        try:
            _, completions, logprobs, _ = vllm.generate(prompts=list(contexts), images=None, num_generations=1)
        finally:
            vllm.max_completion_length = cap
        out = []
        for ids, logps in zip(completions, logprobs, strict=True):
            ids = list(ids)
            end = ids.index(self.eos_id) + 1 if self.eos_id in ids else len(ids)
            values = [lp[0] if lp and lp[0] is not None else 0.0 for lp in logps[:end]]
            out.append(Generation(ids[:end], values))
        return out


class EnvsimRollout:
    """The ``rollout_func`` for ``GRPOTrainer`` (see the module docstring).

    Args:
        user_factory: Makes each environment's mock user (default: the scripted user).
        max_turn_tokens: Cap on one assistant turn's tokens.
        max_episode_tokens: Cap on an episode's completion tokens (None: the scenario's turn limit only).
        max_context_tokens: Cap on prompt plus completion (None: the model's ``max_position_embeddings``).
        generation_batch: Most episodes per ``generate`` call on the transformers path.
        values: The policy reads and writes values as placeholders (:class:`~envsim.train.values.ValueCodec`;
            None: as they are); the codec its SFT rows and evaluations use.

    Attributes:
        last: The rollouts of the last call (for inspection and tests).
        calls: Calls so far (part of the transformers path's sampling seed: :func:`generation_seed`).
        runner: The episode runner (its ``timings`` say where the time went), made on the first call.
    """

    def __init__(
        self,
        *,
        user_factory: Callable[[], UserSimulator] | None = None,
        max_turn_tokens: int = 96,
        max_episode_tokens: int | None = None,
        max_context_tokens: int | None = None,
        generation_batch: int = 32,
        values: ValueCodec | None = None,
    ) -> None:
        self.user_factory = user_factory
        self.values = values
        self.max_turn_tokens = max_turn_tokens
        self.max_episode_tokens = max_episode_tokens
        self.max_context_tokens = max_context_tokens
        self.generation_batch = generation_batch
        self.runner: EpisodeRunner | None = None
        self.last: list[EpisodeRollout] = []
        self.calls = 0

    def _runner(self, trainer: Any) -> EpisodeRunner:
        if self.runner is None:
            limit = self.max_context_tokens
            if limit is None:
                config = getattr(trainer.model, "config", None)
                limit = getattr(config, "max_position_embeddings", None)
            self.runner = EpisodeRunner(
                trainer.processing_class,
                user_factory=self.user_factory,
                max_turn_tokens=self.max_turn_tokens,
                max_episode_tokens=self.max_episode_tokens,
                max_context_tokens=limit,
                values=self.values,
            )
        return self.runner

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one episode per prompt with the trainer's model; TRL's rollout output (module docstring)."""
        runner = self._runner(trainer)
        keys = [episode_key(p) for p in prompts]
        if getattr(trainer, "use_vllm", False):
            rollouts = runner.run(keys, VLLMGenerator(trainer))
        else:
            rollouts = self._run_transformers(runner, keys, trainer)
        self.last = rollouts
        return rollout_output(rollouts)

    def _run_transformers(self, runner: EpisodeRunner, keys: list[Any], trainer: Any) -> list[EpisodeRollout]:
        seed = generation_seed(trainer, self.calls)
        self.calls += 1
        with _generation_model(trainer) as model, _seeded_rng(model, seed):
            generator: TokenGenerator = HFGenerator(
                model,
                trainer.processing_class,
                temperature=trainer.temperature,
                top_p=trainer.top_p,
                top_k=trainer.top_k or 0,
                max_batch=self.generation_batch,
                generation_config=getattr(trainer, "generation_config", None),
            )
            return runner.run(keys, generator)


def generation_seed(trainer: Any, call: int) -> int:
    """The sampling seed of a rollout call: a mix of the trainer's ``args.seed``, its process index,
    its global step and ``call`` (distinct per process, per step and per call; fixed by the seed).

    Example:
        >>> from types import SimpleNamespace as NS
        >>> trainer = NS(args=NS(seed=0), accelerator=NS(process_index=0), state=NS(global_step=3))
        >>> generation_seed(trainer, 1) == generation_seed(trainer, 1) != generation_seed(trainer, 2)
        True
    """
    import numpy as np

    process = getattr(getattr(trainer, "accelerator", None), "process_index", 0)
    step = getattr(getattr(trainer, "state", None), "global_step", 0)
    entropy = [int(trainer.args.seed), int(process), int(step), int(call)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


@contextlib.contextmanager
def _seeded_rng(model: Any, seed: int) -> Iterator[None]:
    """Torch's random streams (CPU, and the model's accelerator) forked and seeded with ``seed``;
    restored on exit, so sampling neither reads nor advances the global stream."""
    import torch

    device = next(model.parameters()).device
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _generation_model(trainer: Any) -> Iterator[Any]:
    """The trainer's model, ready to generate: TRL's unwrapping (gathering sharded weights) under
    DeepSpeed or FSDP, else Accelerate's plain unwrap (TRL's helper reads a property that
    transformers 5.x deprecates, a warning per call)."""
    if getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False):
        from trl.models import unwrap_model_for_generation  # type: ignore[attr-defined]

        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as model:
            yield model
    else:
        yield trainer.accelerator.unwrap_model(trainer.model_wrapped)


def rollout_output(rollouts: Sequence[EpisodeRollout]) -> dict[str, list[Any]]:
    """What ``rollout_func`` returns for these rollouts: token fields, ``env_mask`` (all zeros for a
    dropped episode) and the per-sample ``envsim_*`` fields."""
    dropped = [r.reward is None for r in rollouts]
    return {
        "prompt_ids": [r.prompt_ids for r in rollouts],
        "completion_ids": [r.completion_ids for r in rollouts],
        "logprobs": [r.logprobs for r in rollouts],
        "env_mask": [[0] * len(r.env_mask) if d else list(r.env_mask) for r, d in zip(rollouts, dropped, strict=True)],
        "envsim_reward": [r.reward for r in rollouts],
        "envsim_components": [r.components for r in rollouts],
        "envsim_outcome": [r.outcome for r in rollouts],
        "envsim_end_reason": [r.end_reason for r in rollouts],
        "envsim_turns": [r.turns for r in rollouts],
    }


def episode_reward(
    completions: list[Any],
    envsim_reward: list[float | None],
    envsim_components: list[dict[str, float]] | None = None,
    envsim_outcome: list[str] | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    **kwargs: Any,
) -> list[float | None]:
    """The GRPO reward: each episode's total (``None`` for a dropped one), logging the components.

    Logs (when the trainer passes ``log_metric``) each component's mean over the scored episodes
    as ``envsim/<component>``, each outcome's share as ``envsim/outcome/<outcome>`` and the share
    of dropped episodes as ``envsim/dropped``.

    Example:
        >>> logged = {}
        >>> episode_reward([None, None], [1.0, None], [{"final_state": 1.0}, {}], ["success", "sim_fault"],
        ...                log_metric=logged.__setitem__)
        [1.0, None]
        >>> logged["envsim/final_state"], logged["envsim/outcome/sim_fault"], logged["envsim/dropped"]
        (1.0, 0.5, 0.5)
    """
    rewards = list(envsim_reward)
    if log_metric is not None and rewards:
        scored = [i for i, r in enumerate(rewards) if r is not None]
        sums: defaultdict[str, float] = defaultdict(float)
        counts: Counter[str] = Counter()
        for i in scored:
            for name, score in (envsim_components[i] if envsim_components else {}).items():
                if not math.isnan(score):
                    sums[name] += score
                    counts[name] += 1
        for name in sorted(counts):
            log_metric(f"{METRIC_PREFIX}/{name}", sums[name] / counts[name])
        outcomes = Counter(envsim_outcome or [])
        for outcome in sorted(outcomes):
            log_metric(f"{METRIC_PREFIX}/outcome/{outcome}", outcomes[outcome] / len(rewards))
        log_metric(f"{METRIC_PREFIX}/dropped", (len(rewards) - len(scored)) / len(rewards))
    return rewards


def component_reward(name: str) -> Callable[..., list[float | None]]:
    """A reward function giving one component's score (``None`` for dropped episodes and where the
    component could not judge), named ``envsim_<name>`` in the trainer's logs.

    Example:
        >>> fn = component_reward("final_state")
        >>> fn.__name__, fn([None, None], [0.5, None], [{"final_state": 1.0}, {"final_state": 0.0}])
        ('envsim_final_state', [1.0, None])
    """

    def reward(
        completions: list[Any],
        envsim_reward: list[float | None],
        envsim_components: list[dict[str, float]],
        **kwargs: Any,
    ) -> list[float | None]:
        out: list[float | None] = []
        for total, components in zip(envsim_reward, envsim_components, strict=True):
            score = components.get(name)
            out.append(None if total is None or score is None or math.isnan(score) else score)
        return out

    reward.__name__ = f"{METRIC_PREFIX}_{name}"
    reward.__qualname__ = reward.__name__
    reward.__doc__ = f"The {name!r} component's score of each episode (None where dropped or unjudged)."
    return reward


def grpo_config(output_dir: str, *, device: str = "cpu", **overrides: Any) -> Any:
    """A ``GRPOConfig`` that works for envsim rollouts on ``device``.

    On ``cpu``: ``bf16=False``, ``use_cpu=True`` (TRL's default bf16 raises without a GPU). On
    ``cuda``: ``bf16=True`` and, when vLLM is installed, ``use_vllm=True`` in colocate mode.
    Always: activation (gradient) checkpointing off, ``report_to="none"``, ``remove_unused_columns=False``
    (the ``scenario_id``/``seed`` columns reach reward functions), ``logging_steps=1``.
    ``overrides`` win.
    """
    import importlib.util

    from trl import GRPOConfig  # type: ignore[attr-defined]  # TRL's lazy module exports it at runtime

    options: dict[str, Any] = {
        "output_dir": output_dir,
        checkpointing_field(GRPOConfig): False,
        "report_to": "none",
        "remove_unused_columns": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    if device == "cpu":
        options.update(bf16=False, use_cpu=True)
    else:
        options.update(bf16=True)
        if importlib.util.find_spec("vllm") is not None:
            options.update(use_vllm=True, vllm_mode="colocate")
    options.update(overrides)
    return GRPOConfig(**options)


def make_trainer(
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    *,
    args: Any,
    rollout: Callable[[list[Any], Any], dict[str, list[Any]]] | None = None,
    reward_funcs: Sequence[Callable[..., list[float | None]]] | None = None,
    **kwargs: Any,
) -> Any:
    """A ``GRPOTrainer`` whose rollouts are envsim episodes and whose reward is the episode's.

    Args:
        model: The policy (a ``PreTrainedModel`` or a path).
        tokenizer: Its tokenizer, with a prefix-preserving tool-calling chat template.
        train_dataset: Prompts naming their episodes (:func:`envsim.train.prompts.prompt_dataset`).
        args: A ``GRPOConfig`` (:func:`grpo_config`).
        rollout: The ``rollout_func`` (default: a fresh :class:`EnvsimRollout`).
        reward_funcs: Default ``[episode_reward]``; add :func:`component_reward` functions to log or weight components.
        **kwargs: Passed to ``GRPOTrainer`` (callbacks, eval_dataset...).
    """
    from trl import GRPOTrainer  # type: ignore[attr-defined]

    with warnings.catch_warnings():  # envsim pins and tests the TRL it supports: not news to its users
        warnings.filterwarnings("ignore", message=r"You are using 'rollout_func'", category=UserWarning)
        return GRPOTrainer(
            model=model,
            reward_funcs=list(reward_funcs) if reward_funcs else [episode_reward],
            args=args,
            train_dataset=train_dataset,
            processing_class=tokenizer,
            rollout_func=rollout or EnvsimRollout(),
            **kwargs,
        )
