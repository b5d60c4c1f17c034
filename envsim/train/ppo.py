"""PPO on envsim scenarios with TRL 1.12's ``trl.experimental.ppo.PPOTrainer``: single response per episode.

**Scope.** PPO supports: single response per episode; multi-turn training uses GRPO
(:mod:`envsim.train.grpo`). The policy reads a scenario's opening (system prompt with the tool
schemas, the user's first message) and writes **one assistant turn**: a message to the user,
one or more tool calls (``<tool_call>`` blocks, with optional text), or both. The environment
runs that turn as the agent's only action and the episode ends there: it is played in a copy of
the scenario whose turn limit is 1, so a message still gets the mock user's reply and a tool call
still runs against the mocked systems, and the reward is the rubric's total for that one-turn
episode, the reward ``step`` returns on the last step. A task is solved in one turn only if the
response makes every expected call with the right arguments and says the required statements;
each of the 16 bundled scenarios can be (checked by playing all expected calls and statements as
one turn: total 1.0), but facts the user would give in later turns are not in the prompt, so
the policy has to know them. Optionally (``continuation``) the episode goes on after the
response with a reference policy (e.g. :class:`~envsim.agents.scripted.ScriptedAgent`); that
scores the first action by how the episode ends when an expert finishes it, which punishes a
harmful first action (a forbidden call fails a gate: 0) but not a useless one (the expert
recovers: 1.0), so it is not the default.

**Why a reward *model*.** TRL 1.12's ``PPOTrainer`` is single-turn: it generates a response to
each pre-tokenised prompt (``input_ids``) and scores ``prompt + response`` with a reward model
through ``trl.experimental.utils.get_reward``, which calls
``getattr(model, model.base_model_prefix)(input_ids=..., attention_mask=..., position_ids=...,
return_dict=True, output_hidden_states=True, use_cache=False)`` and reads
``model.score(output.hidden_states[-1])`` at the response's last token. It takes no reward
function. :class:`EnvRewardModel` is a stand-in with that interface: its backbone
(:class:`EnvBackbone`) finds each row's prompt in a :class:`PromptTable` (prompt token ids →
scenario and seed, built with the dataset), decodes the response tokens that follow it, plays
them in the environment (:class:`EnvScorer`) and returns the episode's reward at every position,
so ``score`` (the identity) yields it at whichever token TRL reads. It has no parameters and
nothing in it is trained. The prompt is rendered and tokenised exactly as
:class:`~envsim.train.episodes.EpisodeRunner` does for GRPO (:mod:`envsim.train.chat`), and the
response is decoded and parsed the same way (up to the end-of-turn token,
:func:`~envsim.agents.hf.parse_generation`).

**Rewards that PPO cannot drop.** An episode whose outcome carries no reward (``sim_fault``,
``infra_error``, ``judge_error``, ``reward_error``; e.g. an LLM mock user's call failed) would be dropped by GRPO.
``PPOTrainer`` has no way to mask a sample, so such an episode scores ``dropped_reward`` (0 by
default) and is counted in :attr:`EnvScorer.history`.

**Versions.** ``PPOTrainer`` left TRL in 1.13; in 1.12 it lives in ``trl.experimental.ppo``.
envsim's main environment tracks the latest TRL, so PPO runs in its own virtual environment:
``bash .ci/ppo_env.sh`` makes ``.venv-ppo`` (torch 2.13.0, ``trl==1.12.*``, envsim) and runs
``tests_ppo/``. With the latest TRL, :func:`require_ppo` raises an ``ImportError`` that says so.
The closest path in the latest TRL is ``GRPOTrainer``: its loss is PPO's clipped surrogate
(``epsilon``; several optimisation passes per batch with ``num_iterations > 1``) with the group's
mean reward as the baseline instead of a learned value model, and it trains whole multi-turn
episodes (:mod:`envsim.train.grpo`).

Importing this module imports torch (the reward model is a torch module); transformers and TRL
are imported inside the functions that need them.

Usage (in the PPO environment)::

    from envsim.train.ppo import run_ppo
    from envsim.train.tiny import build_model, build_tokenizer, scenario_corpus

    tokenizer = build_tokenizer(scenario_corpus(["MedicalSupplyPanicCaller"]), vocab_size=1024)
    policy = build_model(tokenizer, hidden_size=64, layers=2, heads=4, intermediate_size=128)
    run = run_ppo(policy, tokenizer, ["MedicalSupplyPanicCaller"], seeds=range(8), output_dir="out/ppo",
                  max_steps=2, per_device_train_batch_size=4, response_length=64)
    print(run.seconds_per_step, run.scorer.mean_reward())

Example (scoring responses the way the reward model does; no TRL needed):
    >>> scorer = EnvScorer()
    >>> key = EpisodeKey("MedicalSupplyPanicCaller", 0)
    >>> call = ('<tool_call>{"name": "dispatch_emergency_services", "arguments": {"patient_id": "PT-9001", '
    ...         '"emergency": "breathing_difficulty", "address_confirmed": true, "details": "Collapsed."}}</tool_call>')
    >>> scorer(key, "Emergency services are dispatched: help is on the way. " + call).reward
    1.0
    >>> scorer(key, "Could you give me your phone number?").reward
    0.0
"""

from __future__ import annotations

import copy
import importlib
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from envsim.agents.base import Policy
from envsim.agents.hf import parse_generation
from envsim.env import ScenarioEnv
from envsim.llm import ModelCallError
from envsim.reward.outcome import carries_reward
from envsim.rollout import EpisodeDriver
from envsim.scenario import Scenario
from envsim.train.chat import encode, end_of_turn, render
from envsim.train.config import checkpointing_field
from envsim.train.episodes import EpisodeKey
from envsim.user.base import UserSimulator

SCOPE = "PPO supports: single response per episode; multi-turn training uses GRPO."
"""What the PPO path trains (see the module docstring)."""

PPO_MODULE = "trl.experimental.ppo"
"""Where TRL 1.12 keeps ``PPOTrainer`` and ``PPOConfig`` (removed from TRL in 1.13)."""


def require_ppo() -> Any:
    """TRL's PPO module (``trl.experimental.ppo``).

    Raises:
        ImportError: The installed TRL has no ``PPOTrainer`` (1.13 and later), or TRL is missing.
    """
    try:
        with warnings.catch_warnings():  # "experimental" notices: envsim pins the TRL this path runs on
            warnings.simplefilter("ignore")
            return importlib.import_module(PPO_MODULE)
    except ImportError as error:
        try:
            import trl

            version = str(trl.__version__)
        except ImportError:
            version = "not installed"
        raise ImportError(
            f"PPOTrainer needs TRL 1.12 ({PPO_MODULE}); it was removed in TRL 1.13 and TRL here is {version}. "
            "Use a separate virtual environment with trl==1.12.* (bash .ci/ppo_env.sh makes .venv-ppo), "
            "or train with GRPO (envsim.train.grpo), which also covers multi-turn episodes."
        ) from error


def one_response_scenario(scenario: Scenario) -> Scenario:
    """A copy of ``scenario`` whose episode ends after the agent's first turn (``max_turns`` 1)."""
    return scenario.model_copy(update={"max_turns": 1})


# -- prompts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptTable:
    """The PPO dataset's prompts as token ids, each mapped to the episode it opens.

    PPOTrainer passes the reward model token ids only, so the episode (scenario and seed) travels
    in this side table, keyed by the prompt's ids, not in the text the policy reads. Seeds whose
    opening is identical (the same prompt) share one row: the first seed that produced it.

    Attributes:
        episodes: Prompt token ids → the episode.

    Example:
        >>> table = PromptTable({(5, 6, 7): EpisodeKey("S", 0), (5, 6): EpisodeKey("T", 1)})
        >>> table.find([5, 6, 7, 42, 43])
        (EpisodeKey(scenario_id='S', seed=0), 3)
        >>> table.find([9, 9]) is None
        True
    """

    episodes: Mapping[tuple[int, ...], EpisodeKey]

    @property
    def lengths(self) -> list[int]:
        """The prompts' lengths, longest first."""
        return sorted({len(ids) for ids in self.episodes}, reverse=True)

    def find(self, ids: Sequence[int]) -> tuple[EpisodeKey, int] | None:
        """The episode whose prompt starts ``ids`` (the longest such prompt) and that prompt's length."""
        for length in self.lengths:
            if length <= len(ids):
                key = self.episodes.get(tuple(ids[:length]))
                if key is not None:
                    return key, length
        return None

    def rows(self) -> list[dict[str, Any]]:
        """The dataset rows: ``input_ids`` (what PPOTrainer reads), ``scenario_id`` and ``seed``."""
        return [
            {"input_ids": list(ids), "scenario_id": key.scenario_id, "seed": key.seed}
            for ids, key in self.episodes.items()
        ]

    def dataset(self, min_rows: int = 1) -> Any:
        """:meth:`rows` as a ``datasets.Dataset`` with the ``input_ids`` column only (PPOTrainer pads every column).

        Args:
            min_rows: Repeat the rows (in order) until there are at least this many. PPOTrainer's
                data loader drops an incomplete last batch and then loops forever over an empty
                one, so a table with fewer prompts than one batch has to be repeated.
        """
        datasets = importlib.import_module("datasets")  # the train extra (untyped)
        ids = [row["input_ids"] for row in self.rows()]
        if not ids:
            raise ValueError("the prompt table is empty")
        repeats = -(-max(min_rows, 1) // len(ids))
        return datasets.Dataset.from_list([{"input_ids": row} for row in ids * repeats])


def build_prompt_table(tokenizer: Any, scenario_ids: Sequence[str], seeds: Iterable[int]) -> PromptTable:
    """Render and tokenise each scenario's opening per seed (as GRPO rollouts do) into a :class:`PromptTable`.

    ``scenario_ids`` may name suites (``DIR`` or ``DIR:split``), as the GRPO adapter's prompts do: each
    stands for the ids of its scenarios, registered in this process (:func:`envsim.suite.resolve_ids`).

    Raises:
        ValueError: Two scenarios open with the same tokens (the reward model could not tell them apart).
    """
    from envsim.suite import resolve_ids

    seed_list = [int(s) for s in seeds]
    episodes: dict[tuple[int, ...], EpisodeKey] = {}
    for scenario_id in resolve_ids(scenario_ids):
        env = ScenarioEnv(scenario_id)
        for seed in seed_list:
            _, info = env.reset(seed=seed)
            ids = tuple(
                encode(tokenizer, render(tokenizer, info["messages"], info["tools"], add_generation_prompt=True))
            )
            known = episodes.get(ids)
            if known is None:
                episodes[ids] = EpisodeKey(scenario_id, seed)
            elif known.scenario_id != scenario_id:
                raise ValueError(f"scenarios {known.scenario_id} and {scenario_id} open with the same prompt")
    return PromptTable(episodes)


# -- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredResponse:
    """One response played as an episode.

    Attributes:
        key: The episode (scenario, seed).
        text: The response as the policy wrote it (up to its end-of-turn token).
        reward: What the reward model returns: the episode's total, or ``dropped_reward``.
        outcome: The episode's outcome (``success``, ``failure``, ``truncated``, or a dropped one).
        end_reason: How the episode ended (``max_turns`` after one turn, ``agent_ended``, ``user_done``, ``error``).
        components: Each reward component's score (empty when the episode failed to play).
        dropped: Whether the outcome carries no reward (the score is ``dropped_reward``, not the agent's).
        error: The exception, when the simulation or a model call failed.
    """

    key: EpisodeKey
    text: str
    reward: float
    outcome: str
    end_reason: str
    components: dict[str, float] = field(default_factory=dict)
    dropped: bool = False
    error: str | None = None


class EnvScorer:
    """Plays a response as a single-response episode and returns its reward (see the module docstring).

    Args:
        continuation: Makes a policy that plays on after the response until the episode ends (None,
            the default: the episode ends with the response, a one-turn episode). The policy is reset
            at the episode's start and acts from the second turn on (a scripted agent replays its
            whole plan after the response).
        user_factory: Makes each environment's mock user (default: the scripted user).
        dropped_reward: The score of an episode whose outcome carries no reward.

    Attributes:
        history: Every scored response, in order.
    """

    def __init__(
        self,
        *,
        continuation: Callable[[], Policy] | None = None,
        user_factory: Callable[[], UserSimulator] | None = None,
        dropped_reward: float = 0.0,
    ) -> None:
        self.continuation = continuation
        self.user_factory = user_factory
        self.dropped_reward = dropped_reward
        self.history: list[ScoredResponse] = []
        self._envs: dict[str, ScenarioEnv] = {}

    def env(self, scenario_id: str) -> ScenarioEnv:
        """The (reused) environment of a scenario: its one-turn copy unless a continuation plays on."""
        env = self._envs.get(scenario_id)
        if env is None:
            from envsim.registration import load_registered

            scenario = load_registered(scenario_id)
            if self.continuation is None:
                scenario = one_response_scenario(scenario)
            user = self.user_factory() if self.user_factory is not None else None
            env = self._envs[scenario_id] = ScenarioEnv(scenario, user=user)
        return env

    def __call__(self, key: EpisodeKey, text: str) -> ScoredResponse:
        """Play ``text`` as the agent's first turn of episode ``key``; record and return the result."""
        env = self.env(key.scenario_id)
        try:
            policy = self.continuation() if self.continuation is not None else None
            episode = EpisodeDriver(env, policy)
            episode.reset(seed=key.seed)
            episode.step(parse_generation(text, id_prefix="call_1_"))
            while policy is not None and not episode.done:
                episode.turn()
            breakdown = env.score()
        except ModelCallError as error:
            scored = self._failed(key, text, "infra_error", error)
        except Exception as error:  # a bug in the simulation: this response only
            scored = self._failed(key, text, "sim_fault", error)
        else:
            dropped = not carries_reward(breakdown.outcome)
            scored = ScoredResponse(
                key=key,
                text=text,
                reward=self.dropped_reward if dropped else float(breakdown.total),
                outcome=breakdown.outcome,
                end_reason=str(episode.info.get("end_reason", env.trajectory().end_reason)),
                components={name: c.score for name, c in breakdown.components.items() if c.ran},
                dropped=dropped,
            )
        self.history.append(scored)
        return scored

    def _failed(self, key: EpisodeKey, text: str, outcome: str, error: Exception) -> ScoredResponse:
        reason = "".join(traceback.format_exception_only(error)).strip()
        return ScoredResponse(key, text, self.dropped_reward, outcome, "error", dropped=True, error=reason)

    def mean_reward(self, last: int | None = None) -> float:
        """Mean reward of the scored responses (the ``last`` ones only, when given); 0 when there are none."""
        scored = self.history if last is None else self.history[-last:]
        return sum(s.reward for s in scored) / len(scored) if scored else 0.0


# -- the reward model ---------------------------------------------------------------------------


@dataclass
class EnvBackboneOutput:
    """What :class:`EnvBackbone` returns: ``hidden_states[-1]`` holds each row's reward at every position."""

    hidden_states: tuple[torch.Tensor, ...]


class EnvBackbone(nn.Module):
    """The reward model's "backbone": token ids in, each row's episode reward out (no parameters).

    Each row is ``[left padding] prompt response [right padding]`` as PPOTrainer builds it; padding
    is where ``attention_mask`` is 0. The prompt is the longest :class:`PromptTable` entry the
    row's first attended tokens start with; the response is the attended tokens after it, up to
    the first padding (where TRL's ``get_reward`` ends it too), cut before the end-of-turn token.

    Args:
        tokenizer: The policy's tokenizer (decodes the response; its eos ends an assistant turn).
        table: The dataset's prompts and their episodes.
        scorer: Plays the responses.

    Raises (from ``forward``):
        KeyError: A row starts with no prompt of the table (the dataset was not made from it).
    """

    def __init__(self, tokenizer: Any, table: PromptTable, scorer: EnvScorer) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.table = table
        self.scorer = scorer
        self.eos_id = int(tokenizer.convert_tokens_to_ids(end_of_turn(tokenizer)))

    def response(self, ids: Sequence[int], mask: Sequence[int]) -> tuple[EpisodeKey, str]:
        """The episode and the decoded response of one row."""
        start = next((i for i, m in enumerate(mask) if m), len(mask))
        found = self.table.find(ids[start:])
        if found is None:
            raise KeyError("a row starts with no prompt of the PromptTable: build the dataset with table.dataset()")
        key, length = found
        end = start + length
        while end < len(ids) and mask[end]:
            end += 1
        response = list(ids[start + length : end])
        if self.eos_id in response:
            response = response[: response.index(self.eos_id)]
        return key, str(self.tokenizer.decode(response, skip_special_tokens=False))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> EnvBackboneOutput:
        """Score every row in the environment; ``hidden_states[-1]`` is ``(batch, length, 1)``."""
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        rewards = []
        for ids, row_mask in zip(input_ids.tolist(), mask.tolist(), strict=True):
            key, text = self.response(ids, row_mask)
            rewards.append(self.scorer(key, text).reward)
        values = torch.tensor(rewards, dtype=torch.float32, device=input_ids.device)
        hidden = values.view(-1, 1, 1).expand(input_ids.shape[0], input_ids.shape[1], 1)
        return EnvBackboneOutput(hidden_states=(hidden,))


class EnvRewardModel(nn.Module):
    """A reward model for TRL 1.12's PPOTrainer whose reward is the environment's (see the module docstring).

    ``base_model_prefix`` names the backbone (:class:`EnvBackbone`) and ``score`` is the identity,
    the two attributes ``trl.experimental.utils.get_reward`` uses. Calling the model directly
    returns each row's reward.

    Args:
        tokenizer: The policy's tokenizer.
        table: The dataset's prompts and their episodes (:func:`build_prompt_table`).
        scorer: Plays the responses (default: a new :class:`EnvScorer`, one-turn episodes, scripted user).
    """

    base_model_prefix = "backbone"

    def __init__(self, tokenizer: Any, table: PromptTable, scorer: EnvScorer | None = None) -> None:
        super().__init__()
        self.scorer = scorer if scorer is not None else EnvScorer()
        self.backbone = EnvBackbone(tokenizer, table, self.scorer)
        self.score = nn.Identity()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Each row's reward, ``(batch,)``."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).hidden_states[-1]
        scores: torch.Tensor = self.score(hidden)[:, -1, 0]
        return scores


# -- the trainer --------------------------------------------------------------------------------


def build_value_model(policy: Any, *, from_policy: bool = True, seed: int = 0) -> Any:
    """A value model for PPOTrainer: the policy's architecture with a one-output ``score`` head.

    Args:
        policy: A transformers causal LM (its config gives the architecture).
        from_policy: Start the value backbone from the policy's weights (the head stays random).
        seed: Seed of the initialisation.
    """
    auto: Any = importlib.import_module("transformers").AutoModelForSequenceClassification
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        value = auto.from_config(config)
    if from_policy:
        source = getattr(policy, policy.base_model_prefix)
        getattr(value, value.base_model_prefix).load_state_dict(source.state_dict())
    return value.to(policy.device)


def reference_model(policy: Any) -> Any:
    """A frozen copy of ``policy`` (eval mode, no gradients) for PPO's KL term, safe after TRL 1.12's SFT.

    TRL 1.12's ``SFTTrainer`` (its default ``loss_type="chunked_nll"``) replaces ``model.forward``
    on the instance with a closure over the *original* model's forward. A plain ``deepcopy`` (what
    PPOTrainer's default reference does) copies that closure, so the "reference" runs the live
    policy's weights and the KL penalty is always 0. This copy drops instance-level ``forward``
    overrides on every submodule, so the copy's class ``forward`` runs its own (frozen) weights.
    """
    reference = copy.deepcopy(policy)
    for module in reference.modules():
        module.__dict__.pop("forward", None)
    for parameter in reference.parameters():
        parameter.requires_grad = False
    return reference.eval()


def ppo_config(output_dir: str, *, device: str = "cpu", **overrides: Any) -> Any:
    """A TRL 1.12 ``PPOConfig`` for envsim responses on ``device`` (``overrides`` win).

    Responses end at the tokenizer's eos (``stop_token="eos"``, the end of the assistant turn);
    no missing-eos penalty (the reward is the environment's alone); no checkpoints, no reporting,
    no sample generations; activation checkpointing off. On ``cpu``: ``bf16=False``, ``use_cpu=True``.
    ``max_steps`` (envsim's name) sets ``total_episodes`` to ``max_steps`` batches.
    """
    ppo = require_ppo()
    options: dict[str, Any] = {
        "output_dir": output_dir,
        checkpointing_field(ppo.PPOConfig): False,
        "stop_token": "eos",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "num_sample_generations": 0,
        "disable_tqdm": True,
    }
    options.update(bf16=False, use_cpu=True) if device == "cpu" else options.update(bf16=True)
    steps = overrides.pop("max_steps", None)
    options.update(overrides)
    if steps is not None:
        batch = int(options.get("per_device_train_batch_size", 8)) * int(options.get("gradient_accumulation_steps", 1))
        options["total_episodes"] = int(steps) * batch
    return ppo.PPOConfig(**options)


def make_ppo_trainer(
    model: Any,
    tokenizer: Any,
    table: PromptTable,
    *,
    args: Any,
    scorer: EnvScorer | None = None,
    value_model: Any | None = None,
    ref_model: Any | None = None,
    **kwargs: Any,
) -> Any:
    """A TRL 1.12 ``PPOTrainer`` on ``table``'s prompts whose reward model is :class:`EnvRewardModel`.

    Args:
        model: The policy (a causal LM).
        tokenizer: Its tokenizer (left padding; eos the end-of-turn token).
        table: The prompts (:func:`build_prompt_table`); repeated to fill at least one batch.
        args: A ``PPOConfig`` (:func:`ppo_config`).
        scorer: Plays the responses (default: one-turn episodes with the scripted user).
        value_model: Default :func:`build_value_model` of the policy.
        ref_model: Default: :func:`reference_model` of the policy.
        kwargs: Passed to ``PPOTrainer``.
    """
    ppo = require_ppo()
    reward_model = EnvRewardModel(tokenizer, table, scorer)
    batch = int(args.per_device_train_batch_size) * int(args.gradient_accumulation_steps)
    return ppo.PPOTrainer(
        args=args,
        processing_class=tokenizer,
        model=model,
        ref_model=ref_model if ref_model is not None else reference_model(model),
        reward_model=reward_model,
        train_dataset=table.dataset(min_rows=batch),
        value_model=value_model if value_model is not None else build_value_model(model),
        **kwargs,
    )


@dataclass
class PPORun:
    """A finished :func:`run_ppo`.

    Attributes:
        trainer: The ``PPOTrainer`` (its ``state.log_history`` holds TRL's metrics per step).
        scorer: The environment scorer (``history``: every response the trainer generated, with its reward).
        steps: PPO updates done.
        seconds: Wall time of ``trainer.train()``.
    """

    trainer: Any
    scorer: EnvScorer
    steps: int
    seconds: float

    @property
    def seconds_per_step(self) -> float:
        """Mean wall time of one PPO update (generation, scoring, the optimisation passes)."""
        return self.seconds / self.steps if self.steps else 0.0


def run_ppo(
    model: Any,
    tokenizer: Any,
    scenario_ids: Sequence[str],
    seeds: Iterable[int],
    *,
    output_dir: str,
    scorer: EnvScorer | None = None,
    device: str = "cpu",
    **config: Any,
) -> PPORun:
    """Train ``model`` in place with PPO on single-response episodes of the scenarios × seeds (``scenario_ids``
    may name suites: :func:`build_prompt_table`).

    ``config`` goes to :func:`ppo_config` (e.g. ``max_steps``, ``per_device_train_batch_size``,
    ``response_length``, ``learning_rate``).
    """
    table = build_prompt_table(tokenizer, scenario_ids, seeds)
    scorer = scorer if scorer is not None else EnvScorer()
    trainer = make_ppo_trainer(
        model, tokenizer, table, args=ppo_config(output_dir, device=device, **config), scorer=scorer
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return PPORun(trainer, scorer, int(trainer.state.global_step), seconds)
