"""The data flywheel end to end: generate → rejection-sample → SFT → evaluate → GRPO → evaluate.

1. **Model.** ``--model PATH`` loads a causal LM and its tokenizer (its chat template must be a
   prefix-preserving tool-calling one, e.g. Qwen2.5's). Without it, a tokenizer is trained on the
   training scenarios' own text and a tiny Llama-architecture model is initialised from a config
   (:mod:`envsim.train.tiny`): nothing is downloaded.
2. **Generate.** ``envsim generate`` (:mod:`envsim.batch`) plays the training scenarios with the
   scripted agent at a nonzero ``error_rate`` into ``OUT/generate`` (a run directory).
3. **Rejection-sample.** ``envsim dataset`` (:func:`envsim.datasets.build_dataset`) keeps the
   successful episodes as SFT rows (``OUT/sft.jsonl``) and writes the GRPO prompts of the run's
   (scenario, seed) groups (``OUT/grpo_prompts.jsonl``).
4. **Evaluate** the untrained model, **SFT** it (:mod:`envsim.train.sft`), evaluate, **GRPO** it
   for a fixed number of steps (:mod:`envsim.train.grpo`), evaluate again.

Evaluation plays greedy episodes with the same runner as the rollouts, on *held-out seeds* of the
training scenarios (seeds from :data:`EVAL_SEED_BASE`, never generated from) and on *held-out
scenarios* (never trained on). Success rate and mean reward are over the episodes whose outcome
carries a reward.

**On a suite** (``--suite DIR``, a folder ``envsim scenarios generate`` wrote; :func:`suite_sets`),
the training scenarios are the suite's ``train`` split, and the scenarios of its other splits are
evaluated as two sets: *held-out instances* (their family has instances in ``train``: the same task
with other records, names and amounts) and *held-out families* (no instance of their family is in
``train``: the ``holdout`` split of ``--holdout-families``, or a family whose few instances all
fell outside ``train``). ``held_out_scenarios`` is then both sets together. ``--eval-scenarios N``
caps each evaluated set (held-out seeds included) at ``N`` scenarios, taken in turn from each family
so that every family is represented; the report's ``evaluated`` names the scenarios of each set.

**Values** (``--values``): ``literal`` (the default) shows the policy the conversation as it is;
``placeholders`` shows it every value (email, order id, phone, amount, date) as a typed placeholder
(``<email1>``, ``<id2>``; :mod:`envsim.train.values`) and maps the placeholders the policy writes back
to the values before the environment sees its action. One codec serves the tokenizer's corpus, the
SFT rows, the GRPO rollouts and the evaluations; the environment, rewards and datasets keep the values.
The report records the choice (``values``).

The result is printed per stage, plotted to ``OUT/flywheel.svg``
(:mod:`envsim.train.plot`) and returned as a :class:`FlywheelReport`; the models are saved in
``OUT/sft-model`` and ``OUT/grpo-model`` (with the tokenizer, also in ``OUT/tokenizer``), loadable
with ``AutoModelForCausalLM``/``AutoTokenizer``.

The defaults (14 training scenarios × 16 episodes, 8 SFT epochs, 20 GRPO steps) run on a CPU.
The default tiny model learns the training scenarios' held-out seeds but not the held-out scenarios:
it memorises, it does not generalise. What a run reaches, on CPU and GPU, is in ``bench/README.md``
("The default flywheel").

On a GPU: ``--model PATH --device cuda`` trains in bf16 and, when vLLM is installed, generates
GRPO rollouts with TRL's colocated vLLM (see :func:`envsim.train.grpo.grpo_config`).
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsim.train.episodes import EpisodeKey, EpisodeRollout, EpisodeRunner, HFGenerator, summarize
from envsim.train.values import ValueCodec, ValuesMode, make_codec

EVAL_SEED_BASE = 100_000
"""Evaluation seeds start here; generation and GRPO use seeds below it."""

DEFAULT_HOLDOUT = ("BankingHotelHoldConfusedSenior", "RetailRefundDamagedMug")
"""Scenarios left out of training by default, to evaluate on."""

TRL_CHECKPOINTING_WARNING = r"`is_gradient_checkpointing` is deprecated"
"""TRL 1.16 reads a model property transformers 5.x deprecates (a FutureWarning per step): not ours to fix."""


class FlywheelConfig(BaseModel):
    """What a flywheel run does (the CLI's options)."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    suite: Path | None = Field(
        None, description="A generated suite: train on its train split, evaluate on its other splits (no scenarios)."
    )
    scenarios: list[str] | None = Field(None, description="Training scenarios (default: all but the held-out ones).")
    holdout: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HOLDOUT), description="Held-out scenarios (not used with a suite)."
    )
    eval_scenarios: int | None = Field(
        None, ge=1, description="Most scenarios per evaluated set, taken in turn from each family (None: all)."
    )
    episodes: int = Field(16, ge=1, description="Generated episodes per training scenario.")
    error_rate: float = Field(0.25, gt=0.0, le=1.0, description="The scripted agent's mistake rate.")
    eval_seeds: int = Field(2, ge=1, description="Held-out seeds per scenario in each evaluation.")
    sft_epochs: float = Field(8.0, gt=0, description="Passes over the SFT rows.")
    sft_lr: float = Field(3e-3, gt=0)
    sft_whole: bool = Field(False, description="SFT on every token of a conversation, not only the assistant's.")
    grpo_steps: int = Field(20, ge=0, description="GRPO optimizer steps (0 skips GRPO).")
    grpo_lr: float = Field(2e-4, gt=0)
    num_generations: int = Field(4, ge=2, description="Episodes per GRPO group (same scenario and seed).")
    groups_per_step: int = Field(2, ge=1, description="GRPO groups per step.")
    temperature: float = Field(1.0, gt=0, description="GRPO sampling temperature (evaluation is greedy).")
    max_turn_tokens: int = Field(96, ge=8, description="Cap on one assistant turn's tokens.")
    model: Path | None = Field(None, description="A pretrained model folder (default: a tiny model built here).")
    device: str = Field("cpu", description="cpu or cuda.")
    threads: int | None = Field(1, ge=1, description="torch CPU threads (None: torch's default).")
    seed: int = 0
    vocab_size: int = Field(8192, ge=512, description="Tiny tokenizer's vocabulary.")
    split_values: bool = Field(False, description="Tiny tokenizer: digits and value punctuation split off.")
    hidden_size: int = Field(128, ge=16, description="Tiny model's width.")
    layers: int = Field(2, ge=1, description="Tiny model's blocks.")
    values: ValuesMode = Field(
        "literal",
        description="How the policy reads and writes values (emails, ids, phones, amounts): as they are, or as "
        "typed placeholders mapped back to the values before the environment sees an action (envsim.train.values).",
    )


class StageResult(BaseModel):
    """One evaluation: held-out seeds of the training scenarios, and the held-out scenarios."""

    model_config = ConfigDict(extra="forbid")

    success_rate: float
    mean_reward: float
    episodes: int
    outcomes: dict[str, int]
    held_out_scenarios: dict[str, Any] = Field(description="The same figures on scenarios never trained on.")
    held_out_instances: dict[str, Any] | None = Field(
        None, description="On a suite: held-out instances of the families trained on."
    )
    held_out_families: dict[str, Any] | None = Field(
        None, description="On a suite: instances of families with no instance trained on."
    )
    seconds: float = Field(description="Seconds of the stage (training, then its evaluation).")


class FlywheelReport(BaseModel):
    """The run's figures; :meth:`summary` is what ``--json`` prints."""

    model_config = ConfigDict(extra="forbid")

    untrained: StageResult
    sft: StageResult
    grpo: StageResult | None
    data: dict[str, Any] = Field(description="Generation and rejection-sampling counts.")
    model: dict[str, Any] = Field(description="The model: parameters, vocabulary, where it came from.")
    grpo_rewards: list[float] = Field(description="GRPO mean episode reward per step.")
    plot: str
    wall_seconds: float
    values: ValuesMode = Field(
        "literal", description="How the policy saw values: literal, or placeholders (envsim.train.values)."
    )
    evaluated: dict[str, list[str]] = Field(
        default_factory=dict, description="Evaluated set → its scenario ids (held_out_seeds: training scenarios)."
    )
    suite: dict[str, Any] | None = Field(None, description="On a suite: its folder and the sizes of its sets.")

    def summary(self) -> dict[str, Any]:
        """``{"untrained": {...}, "sft": {...}, "grpo": {...}}`` first, then the details."""
        stages = {name: getattr(self, name) for name in ("untrained", "sft", "grpo")}
        head = {name: s.model_dump() if s is not None else None for name, s in stages.items()}
        rest = self.model_dump(exclude={"untrained", "sft", "grpo"})
        return {**head, **rest}


def table(report: FlywheelReport) -> list[str]:
    """The per-stage table as text lines."""
    if report.suite is not None:
        return _suite_table(report)
    lines = [
        f"{'stage':<10} {'success':>8} {'reward':>8} {'held-out scen. success':>23} {'reward':>8} {'seconds':>8}",
    ]
    for name in ("untrained", "sft", "grpo"):
        stage: StageResult | None = getattr(report, name)
        if stage is None:
            continue
        other = stage.held_out_scenarios
        lines.append(
            f"{name:<10} {stage.success_rate:>8.3f} {stage.mean_reward:>8.3f} "
            f"{other.get('success_rate', 0.0):>23.3f} {other.get('mean_reward', 0.0):>8.3f} {stage.seconds:>8.1f}"
        )
    return lines


def _suite_table(report: FlywheelReport) -> list[str]:
    """The per-stage table of a run on a suite: success and mean reward on each of the three held-out sets."""
    sets = ("held-out seeds", "held-out instances", "held-out families")
    head = f"{'stage':<10}" + "".join(f" {name + ' success':>26} {'reward':>7}" for name in sets)
    lines = [f"{head} {'seconds':>8}"]
    for name in ("untrained", "sft", "grpo"):
        stage: StageResult | None = getattr(report, name)
        if stage is None:
            continue
        figures = [
            {"success_rate": stage.success_rate, "mean_reward": stage.mean_reward},
            stage.held_out_instances or {},
            stage.held_out_families or {},
        ]
        cells = "".join(f" {f.get('success_rate', 0.0):>26.3f} {f.get('mean_reward', 0.0):>7.3f}" for f in figures)
        lines.append(f"{name:<10}{cells} {stage.seconds:>8.1f}")
    return lines


class SuiteSets(BaseModel):
    """The scenario sets of a flywheel run on a suite (:func:`suite_sets`), each a list of ids in file order."""

    model_config = ConfigDict(extra="forbid")

    path: str
    train: list[str] = Field(description="The train split.")
    held_out_instances: list[str] = Field(description="Other splits' scenarios of families that train has.")
    held_out_families: list[str] = Field(description="Other splits' scenarios of families that train lacks.")
    family: dict[str, str] = Field(description="Scenario id → its family.")

    def info(self) -> dict[str, Any]:
        """The report's ``suite`` entry: the folder, the set sizes and the families of each side."""
        seen = sorted({self.family[i] for i in self.train})
        unseen = sorted({self.family[i] for i in self.held_out_families})
        return {
            "path": self.path,
            "train": len(self.train),
            "held_out_instances": len(self.held_out_instances),
            "held_out_families": len(self.held_out_families),
            "train_families": seen,
            "held_out_family_names": unseen,
        }


def family_of(scenario_id: str, families: Sequence[str]) -> str:
    """The family of a generated scenario id (``<Family>X<hash>``): the longest of ``families`` it extends.

    An id that extends none (a hand-written scenario in a suite) is a family of its own.

    Example:
        >>> family_of("RetailRefundX4KQ2M7ZP1A", ["Retail", "RetailRefund"])
        'RetailRefund'
        >>> family_of("RetailCancelPendingOrder", ["RetailRefund"])
        'RetailCancelPendingOrder'
    """
    matches = [f for f in families if scenario_id.startswith(f + "X")]
    return max(matches, key=len) if matches else scenario_id


def suite_sets(suite: Path) -> SuiteSets:
    """Split a suite's scenarios into training, held-out instances and held-out families (registers nothing).

    The training scenarios are the ``train`` split; every scenario of another split is a held-out
    instance when its family (``suite.json``'s ``families``, by id prefix: :func:`family_of`) has an
    instance in ``train``, and a held-out family's otherwise.

    Raises:
        SuiteError: ``suite`` is no suite, has no ``train`` split, or no split besides it.
        ScenarioError: A scenario file has no valid id, or two share one.
    """
    from envsim.errors import SuiteError
    from envsim.suite import Suite

    opened = Suite.open(suite)
    splits = opened.splits()
    if "train" not in splits:
        raise SuiteError(
            f"suite {str(suite)!r} has no train split (splits: {', '.join(splits)}); "
            "write one with envsim scenarios generate ... --split train=0.8,test=0.2"
        )
    others = [s for s in splits if s != "train"]
    if not others:
        raise SuiteError(
            f"suite {str(suite)!r} has only a train split: nothing to evaluate on "
            "(generate with --split train=0.8,test=0.2 and --holdout-families)"
        )
    declared = opened.manifest.get("families")
    names = list(declared) if isinstance(declared, dict) else []
    train = list(opened.scenarios("train"))
    held_out = [i for split in others for i in opened.scenarios(split)]
    family = {i: family_of(i, names) for i in [*train, *held_out]}
    seen = {family[i] for i in train}
    return SuiteSets(
        path=str(suite),
        train=train,
        held_out_instances=[i for i in held_out if family[i] in seen],
        held_out_families=[i for i in held_out if family[i] not in seen],
        family=family,
    )


def spread(ids: Sequence[str], family: dict[str, str], limit: int | None) -> list[str]:
    """At most ``limit`` of ``ids``, taken in turn from each family, each family's in the given order.

    The families take turns in a fixed shuffled order (not alphabetical: with fewer places than
    families, the alphabet would keep whole toolkits out), the same on every call.

    Example:
        >>> chosen = spread(["A1", "A2", "A3", "B1"], {"A1": "A", "A2": "A", "A3": "A", "B1": "B"}, 3)
        >>> sorted(chosen), chosen == spread(["A1", "A2", "A3", "B1"], {"A1": "A", "A2": "A", "A3": "A", "B1": "B"}, 3)
        (['A1', 'A2', 'B1'], True)
    """
    if limit is None or len(ids) <= limit:
        return list(ids)
    by_family: dict[str, list[str]] = {}
    for i in ids:
        by_family.setdefault(family.get(i, i), []).append(i)
    order = sorted(by_family)
    random.Random(EVAL_SEED_BASE).shuffle(order)
    queues = [by_family[f] for f in order]
    chosen: list[str] = []
    for depth in range(max(len(q) for q in queues)):
        chosen += [q[depth] for q in queues if depth < len(q)]
    return chosen[:limit]


def scenario_sets(config: FlywheelConfig) -> tuple[list[str], list[str], SuiteSets | None]:
    """The training and held-out scenario ids, and on a suite its sets (:func:`suite_sets`).

    Raises:
        EnvsimError: Training scenarios are named beside a suite, or as :func:`split_scenarios`
            and :func:`suite_sets` raise.
    """
    from envsim.errors import EnvsimError

    if config.suite is None:
        return (*split_scenarios(config), None)
    if config.scenarios:
        raise EnvsimError("a run on a suite trains on the suite's train split: name no training scenarios beside it")
    sets = suite_sets(config.suite)
    return sets.train, [*sets.held_out_instances, *sets.held_out_families], sets


def split_scenarios(config: FlywheelConfig) -> tuple[list[str], list[str]]:
    """The training and held-out scenario ids (training: all registered but the held-out ones by default).

    Raises:
        UnknownNameError: A scenario id is not registered.
        EnvsimError: A scenario is both trained on and held out, or none is left to train on.
    """
    from envsim.errors import EnvsimError, UnknownNameError
    from envsim.registration import discover

    known = sorted(discover())
    missing = [s for s in [*(config.scenarios or []), *config.holdout] if s not in known]
    if missing:
        raise UnknownNameError(f"unknown scenario ids: {', '.join(missing)} (see envsim list)")
    holdout = list(dict.fromkeys(config.holdout))
    train = list(dict.fromkeys(config.scenarios)) if config.scenarios else [s for s in known if s not in holdout]
    both = sorted(set(train) & set(holdout))
    if both:
        raise EnvsimError(f"scenarios both trained on and held out: {', '.join(both)}")
    if not train:
        raise EnvsimError("no training scenario left")
    return train, holdout


def _log_noop(message: str) -> None:
    """Print nothing."""


def run_flywheel(config: FlywheelConfig, log: Callable[[str], None] = _log_noop) -> FlywheelReport:
    """Run the whole flywheel (see the module docstring); ``log`` gets one line per step."""
    import torch
    import transformers

    started = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    transformers.set_seed(config.seed)
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        import datasets  # type: ignore[import-untyped]

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover - datasets is part of the train extra
        pass
    out = config.out
    train_ids, holdout, sets = scenario_sets(config)
    if sets is not None:
        from envsim.suite import Suite

        Suite.open(sets.path).register()  # every split: ScenarioEnv(id) finds them (rollouts, evaluations)
    out.mkdir(parents=True, exist_ok=True)

    clock = time.perf_counter()
    codec = make_codec(config.values)  # the one codec of the run: tokenizer corpus, SFT rows, rollouts, evaluations
    model, tokenizer, model_info = _model(config, train_ids, codec)
    log(f"model: {json.dumps(model_info)} ({time.perf_counter() - clock:.1f} s)")

    clock = time.perf_counter()
    data = _generate_and_select(config, [f"{config.suite}:train"] if config.suite is not None else train_ids)
    log(
        f"generated {data['generated']} episodes ({data['outcomes']}); kept {data['sft_rows']} successes "
        f"for SFT, {data['grpo_prompts']} GRPO prompts ({time.perf_counter() - clock:.1f} s)"
    )

    evaluated = _evaluated_sets(config, train_ids, holdout, sets)
    keys = {
        name: [EpisodeKey(s, EVAL_SEED_BASE + i) for s in ids for i in range(config.eval_seeds)]
        for name, ids in evaluated.items()
    }

    def evaluate(name: str, since: float) -> StageResult:
        result = _evaluate(model, tokenizer, keys, config, since, codec)
        held_out = [
            f"{label}: success {figures['success_rate']:.3f}"
            for label, figures in (
                ("held-out instances", result.held_out_instances),
                ("held-out families", result.held_out_families),
            )
            if figures is not None
        ] or [f"held-out scenarios: success {result.held_out_scenarios['success_rate']:.3f}"]
        log(
            f"{name}: success {result.success_rate:.3f}, mean reward {result.mean_reward:.3f} on held-out seeds; "
            f"{'; '.join(held_out)} ({result.seconds:.1f} s)"
        )
        return result

    untrained = evaluate("untrained", time.perf_counter())

    clock = time.perf_counter()
    _sft(model, tokenizer, config, out, codec)
    _save(model, tokenizer, out / "sft-model")
    sft = evaluate("sft", clock)

    grpo: StageResult | None = None
    curve: list[float] = []
    if config.grpo_steps > 0:
        clock = time.perf_counter()
        curve = _grpo(model, tokenizer, config, out, codec)
        _save(model, tokenizer, out / "grpo-model")
        grpo = evaluate("grpo", clock)

    stages = {"untrained": untrained, "sft": sft, **({"grpo": grpo} if grpo is not None else {})}
    from envsim.train.plot import flywheel_svg

    plot = out / "flywheel.svg"
    plot.write_text(
        flywheel_svg(
            {k: (v.success_rate, v.mean_reward) for k, v in stages.items()},
            {
                k: (v.held_out_scenarios["success_rate"], v.held_out_scenarios["mean_reward"])
                for k, v in stages.items()
                if v.held_out_scenarios["episodes"]
            },
            curve,
            title=f"envsim flywheel: {len(train_ids)} training scenarios, {len(holdout)} held out"
            + (f" (suite {Path(sets.path).name})" if sets is not None else ""),
        ),
        encoding="utf-8",
    )
    return FlywheelReport(
        untrained=untrained,
        sft=sft,
        grpo=grpo,
        data=data,
        model=model_info,
        grpo_rewards=curve,
        plot=str(plot),
        wall_seconds=round(time.perf_counter() - started, 1),
        values=config.values,
        evaluated=evaluated,
        suite=sets.info() if sets is not None else None,
    )


def _evaluated_sets(
    config: FlywheelConfig, train_ids: list[str], holdout: list[str], sets: SuiteSets | None
) -> dict[str, list[str]]:
    """Evaluated set → scenario ids: held-out seeds, then held-out scenarios or (on a suite) instances and families."""
    if sets is None:
        family = {i: i for i in [*train_ids, *holdout]}
        return {
            "held_out_seeds": spread(train_ids, family, config.eval_scenarios),
            "held_out_scenarios": spread(holdout, family, config.eval_scenarios),
        }
    return {
        "held_out_seeds": spread(sets.train, sets.family, config.eval_scenarios),
        "held_out_instances": spread(sets.held_out_instances, sets.family, config.eval_scenarios),
        "held_out_families": spread(sets.held_out_families, sets.family, config.eval_scenarios),
    }


# -- stages ---------------------------------------------------------------------------------------


def _model(
    config: FlywheelConfig, train_ids: Sequence[str], codec: ValueCodec | None
) -> tuple[Any, Any, dict[str, Any]]:
    from envsim.train.tiny import build_model, build_tokenizer, parameter_count, scenario_corpus

    if config.model is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(config.model)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        loaded: Any = AutoModelForCausalLM.from_pretrained(config.model)
        if codec is not None:  # the placeholders become tokens of their own, with new embeddings
            tokenizer.add_tokens(codec.tokens())
            loaded.resize_token_embeddings(len(tokenizer))
        model = loaded.to(config.device)
        source = str(config.model)
    else:
        tokenizer = build_tokenizer(
            scenario_corpus(train_ids, seeds=[0], values=codec),
            vocab_size=config.vocab_size,
            split_values=config.split_values,
            extra_tokens=codec.tokens() if codec is not None else (),
        )
        model = build_model(
            tokenizer,
            hidden_size=config.hidden_size,
            layers=config.layers,
            heads=max(1, config.hidden_size // 32),
            intermediate_size=config.hidden_size * 3,
            seed=config.seed,
        ).to(config.device)
        tokenizer.save_pretrained(config.out / "tokenizer")
        source = "tiny Llama-architecture model from a config; tokenizer trained on the training scenarios' text"
    info = {
        "source": source,
        "parameters": parameter_count(model),
        "vocab": len(tokenizer),
        **(codec.describe() if codec is not None else {"values": "literal"}),
    }
    return model, tokenizer, info


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _generate_and_select(config: FlywheelConfig, train_ids: Sequence[str]) -> dict[str, Any]:
    from envsim.batch.plan import GenerateConfig, RunOptions
    from envsim.batch.session import execute, start_run
    from envsim.datasets import Selection, build_dataset

    run_dir = config.out / "generate"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    store = start_run(
        run_dir,
        list(train_ids),
        GenerateConfig(agent="scripted", error_rate=config.error_rate),
        RunOptions(concurrency=32),
        episodes=config.episodes,
        seeds=[config.seed * 1000],
    )
    summary = execute(store)
    sft = build_dataset([run_dir], "sft", config.out / "sft.jsonl", Selection(outcomes=("success",)))
    prompts = build_dataset([run_dir], "grpo", config.out / "grpo_prompts.jsonl", Selection())
    return {
        "run": str(run_dir),
        "generated": summary.stored,
        "outcomes": dict(sorted(summary.outcomes.items())),
        "generation_success_rate": summary.success_rate,
        "sft_rows": sft.rows,
        "sft_scenarios": len(sft.scenarios),
        "grpo_prompts": prompts.rows,
    }


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _sft(model: Any, tokenizer: Any, config: FlywheelConfig, out: Path, codec: ValueCodec | None) -> None:
    from envsim.train.sft import sft_config, sft_rows, sft_train

    rows = _read_jsonl(out / "sft.jsonl")
    examples = sft_rows(
        tokenizer, ((row["messages"], json.loads(row["tools"])) for row in rows), whole=config.sft_whole, values=codec
    )
    args = sft_config(
        str(out / "sft"),
        device=config.device,
        num_train_epochs=config.sft_epochs,
        learning_rate=config.sft_lr,
        per_device_train_batch_size=1,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        logging_steps=25,
        seed=config.seed,
    )
    sft_train(model, tokenizer, examples, args=args, quiet=True)


def _grpo(model: Any, tokenizer: Any, config: FlywheelConfig, out: Path, codec: ValueCodec | None) -> list[float]:
    from datasets import Dataset
    from transformers import PrinterCallback

    from envsim.train.grpo import EnvsimRollout, grpo_config, make_trainer

    rows = _read_jsonl(out / "grpo_prompts.jsonl")
    dataset = Dataset.from_list(
        [{"prompt": r["prompt"], "scenario_id": r["scenario_id"], "seed": r["seed"]} for r in rows]
    )
    args = grpo_config(
        str(out / "grpo"),
        device=config.device,
        num_generations=config.num_generations,
        per_device_train_batch_size=config.num_generations * config.groups_per_step,
        max_steps=config.grpo_steps,
        learning_rate=config.grpo_lr,
        temperature=config.temperature,
        beta=0.0,
        seed=config.seed,
    )
    rollout = EnvsimRollout(max_turn_tokens=config.max_turn_tokens, values=codec)
    trainer = make_trainer(model, tokenizer, dataset, args=args, rollout=rollout)
    trainer.remove_callback(PrinterCallback)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=TRL_CHECKPOINTING_WARNING, category=FutureWarning)
        trainer.train()
    return [float(e["reward"]) for e in trainer.state.log_history if "reward" in e and not math.isnan(e["reward"])]


def _evaluate(
    model: Any,
    tokenizer: Any,
    keys: dict[str, list[EpisodeKey]],
    config: FlywheelConfig,
    since: float,
    codec: ValueCodec | None,
) -> StageResult:
    """Play every set's episodes in one batch; held-out seeds first, then the held-out sets."""
    runner = EpisodeRunner(
        tokenizer,
        max_turn_tokens=config.max_turn_tokens,
        max_context_tokens=getattr(model.config, "max_position_embeddings", None),
        values=codec,
    )
    generator = HFGenerator(model, tokenizer, temperature=0.0)
    rollouts: list[EpisodeRollout] = runner.run([k for ks in keys.values() for k in ks], generator)
    by_set: dict[str, list[EpisodeRollout]] = {}
    start = 0
    for name, ks in keys.items():
        by_set[name] = rollouts[start : start + len(ks)]
        start += len(ks)
    first = summarize(by_set["held_out_seeds"])
    on_suite = "held_out_instances" in by_set
    held_out = (
        [*by_set["held_out_instances"], *by_set["held_out_families"]] if on_suite else by_set["held_out_scenarios"]
    )
    return StageResult(
        success_rate=first["success_rate"],
        mean_reward=first["mean_reward"],
        episodes=first["episodes"],
        outcomes=first["outcomes"],
        held_out_scenarios=summarize(held_out),
        held_out_instances=summarize(by_set["held_out_instances"]) if on_suite else None,
        held_out_families=summarize(by_set["held_out_families"]) if on_suite else None,
        seconds=round(time.perf_counter() - since, 1),
    )
