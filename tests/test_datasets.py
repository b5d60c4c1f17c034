"""Datasets from stored runs: rejection sampling, SFT/DPO/GRPO rows, loading with ``datasets``, TRL's trainers."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, start_run
from envsim.batch.store import EpisodeRecord, RunStore
from envsim.datasets import (
    DatasetError,
    Selection,
    build_dataset,
    chat_messages,
    load_runs,
    select,
    shared_prompt_length,
)
from envsim.env import ScenarioEnv
from envsim.loader import load_scenario
from envsim.runtime import ScenarioRuntime
from tests.conftest import REPO, TINY_SCENARIO

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]
SCENARIOS = ["tiny.yaml", "MedicalSupplyPanicCaller"]
EPISODES = 8
LOOKUP_RENDERED = '<tool_call>\n{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}\n</tool_call>'


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs of the same scenarios and seeds with different agents (mistake rates), and a broken run."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    scenarios = [str(root / "tiny.yaml"), "MedicalSupplyPanicCaller"]
    made: dict[str, Path] = {}
    for name, rate in (("careful", 0.0), ("sloppy", 0.6)):
        made[name] = root / name
        store = start_run(made[name], scenarios, GenerateConfig(error_rate=rate), RunOptions(), episodes=EPISODES)
        execute(store)
    # a run whose episodes broke in every way that carries no reward, each with a tempting reward of 1
    good = next(r for r in RunStore.open(made["careful"], lock=False).scan().records.values() if r.reward == 1.0)
    broken = root / "broken"
    manifest = RunStore.open(made["careful"], lock=False).read_manifest()
    with RunStore.create(broken, manifest, []) as store:
        store.append(
            good.model_copy(update={"episode_id": f"broken-{outcome}", "outcome": outcome})
            for outcome in ("sim_fault", "judge_error", "infra_error")
        )
    made["broken"] = broken
    return made


def stored(run: Path) -> list[EpisodeRecord]:
    return list(RunStore.open(run, lock=False).scan().records.values())


def tools_of(scenario_id: str, root: Path) -> list[dict[str, Any]]:
    path = root / "tiny.yaml" if scenario_id == "TinyEmergency" else scenario_id
    from envsim.registration import load_registered

    scenario = load_scenario(path) if isinstance(path, Path) else load_registered(path)
    return ScenarioRuntime(scenario).session().tools.schemas()


def load(path: Path) -> Any:
    import datasets

    builder = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(builder, data_files=str(path), split="train")


# -- selection ------------------------------------------------------------------------------------


def test_faults_and_errors_never_reach_a_dataset(runs: dict[str, Path]) -> None:
    loaded = load_runs([runs["broken"], runs["careful"]])
    assert [e.record.outcome for e in loaded.episodes[:3]] == ["sim_fault", "judge_error", "infra_error"]
    for selection in (Selection(), Selection(min_reward=0.0), Selection(best_of_n=True), Selection(top_k=100)):
        result = select(loaded.episodes, selection)
        assert result.excluded == {"infra_error": 1, "judge_error": 1, "sim_fault": 1}
        assert all(e.record.carries_reward for e in result.episodes) and result.episodes
    summary = build_dataset([runs["broken"]], "sft", runs["broken"] / "x.parquet", Selection(min_reward=0.0))
    assert summary.rows == 0 and summary.carrying_reward == 0 and not (runs["broken"] / "x.parquet").exists()


def test_min_reward_top_k_and_best_of_n(runs: dict[str, Path]) -> None:
    loaded = load_runs([runs["careful"], runs["sloppy"]])
    records = stored(runs["careful"]) + stored(runs["sloppy"])
    assert len(loaded.episodes) == len(records) == 2 * 2 * EPISODES and loaded.duplicates == 0

    kept = select(loaded.episodes, Selection(min_reward=0.5)).episodes
    assert sorted(e.record.episode_id for e in kept) == sorted(r.episode_id for r in records if r.reward >= 0.5)

    by_scenario: dict[str, list[float]] = defaultdict(list)
    for r in records:
        by_scenario[r.scenario_id].append(r.reward or 0.0)
    top = select(loaded.episodes, Selection(top_k=3)).episodes
    for scenario_id, rewards in by_scenario.items():
        mine = sorted((e.reward for e in top if e.record.scenario_id == scenario_id), reverse=True)
        assert mine == sorted(rewards, reverse=True)[:3]

    best = select(loaded.episodes, Selection(best_of_n=True)).episodes
    groups: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in records:
        groups[(r.scenario_id, r.seed)].append(r.reward or 0.0)
    assert sorted(e.group for e in best) == sorted(groups)  # one per (scenario, seed) group
    assert all(e.reward == max(groups[e.group]) for e in best)
    assert {e.run.path for e in best} != {str(runs["sloppy"].resolve())}  # the careful agent wins some groups

    successes = select(loaded.episodes, Selection.parse(["outcome=success", "scenario=TinyEmergency"]))
    assert successes.episodes and all(
        e.record.outcome == "success" and e.record.scenario_id == "TinyEmergency" for e in successes.episodes
    )
    # reading a run twice: its episodes count once
    assert load_runs([runs["careful"], runs["careful"]]).duplicates == 2 * EPISODES


def test_sft_keeps_successes_unless_told_how_good(runs: dict[str, Path], tmp_path: Path) -> None:
    sources = [runs["careful"], runs["sloppy"]]
    ranked = build_dataset(sources, "sft", tmp_path / "a.jsonl", Selection.parse(["scenario=TinyEmergency"], top_k=2))
    assert ranked.selection == "outcome=success scenario=TinyEmergency --top-k 2"
    assert {row["outcome"] for row in load(tmp_path / "a.jsonl")} == {"success"}
    everything = build_dataset(sources, "sft", tmp_path / "b.jsonl", Selection(min_reward=0.0))
    assert everything.rows == everything.carrying_reward == 4 * EPISODES  # failures too, as asked


def test_selection_mistakes_are_errors() -> None:
    for bad in (["outcome=sim_fault"], ["colour=red"], ["outcome"], ["outcome="]):
        with pytest.raises(DatasetError):
            Selection.parse(bad)


def test_shared_prompt_stops_before_the_first_different_agent_turn() -> None:
    s, u = {"role": "system", "content": "S"}, {"role": "user", "content": "U"}
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]}
    tool = {"role": "tool", "tool_call_id": "1", "content": "r"}
    say = {"role": "assistant", "content": "done"}
    assert shared_prompt_length([s, u, call, tool, say], [s, u, call, tool, call]) == 4
    assert shared_prompt_length([s, u, say], [s, u, call]) == 2
    assert shared_prompt_length([s, u, say], [s, u, say]) == 0  # identical: nothing to prefer
    assert shared_prompt_length([s, u, say], [s, {"role": "user", "content": "V"}, say]) == 0


# -- the formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_sft_rows_load_with_datasets_exactly_as_stored(runs: dict[str, Path], tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"sft{suffix}"
    summary = build_dataset([runs["careful"], runs["sloppy"]], "sft", out)
    assert summary.selection == "outcome=success"  # SFT says nothing of quality: successes only
    successes = {r.episode_id: r for run in ("careful", "sloppy") for r in stored(runs[run]) if r.outcome == "success"}
    ds = load(out)
    assert len(ds) == summary.rows == len(successes) > 0
    root = runs["careful"].parent
    for row in ds:
        record = successes[row["episode_id"]]
        assert row["messages"] == chat_messages(record.trajectory)  # lossless: dicts, keys and values as written
        assert json.loads(row["tools"]) == tools_of(record.scenario_id, root)
        assert row["reward"] == record.reward and row["outcome"] == "success" and row["model"] == "scripted"
        assert row["run"] in {str(runs["careful"].resolve()), str(runs["sloppy"].resolve())}
        assert row["scenario_id"] == record.scenario_id and row["seed"] == record.seed
        calls = [c for m in row["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        assert calls and all(isinstance(c["function"]["arguments"], dict) for c in calls)
        assert all(m["name"] for m in row["messages"] if m["role"] == "tool")


def test_dpo_pairs_share_the_prompt_and_prefer_the_higher_reward(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "dpo.parquet"
    summary = build_dataset([runs["careful"], runs["sloppy"], runs["broken"]], "dpo", out)
    ds = load(out)
    assert summary.pairs is not None and len(ds) == summary.pairs.pairs > 0
    records = {r.episode_id: r for run in runs.values() for r in stored(run)}
    for row in ds:
        chosen, rejected = records[row["chosen_episode_id"]], records[row["rejected_episode_id"]]
        assert (
            (chosen.scenario_id, chosen.seed)
            == (rejected.scenario_id, rejected.seed)
            == (
                row["scenario_id"],
                row["seed"],
            )
        )
        assert chosen.reward is not None and rejected.reward is not None and chosen.reward > rejected.reward
        assert rejected.carries_reward and not rejected.episode_id.startswith("broken")
        assert row["prompt"] + row["chosen"] == chat_messages(chosen.trajectory)
        assert row["prompt"] + row["rejected"] == chat_messages(rejected.trajectory)
        assert [m["role"] for m in row["prompt"][:2]] == ["system", "user"]
        assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
        assert row["chosen_reward"] == chosen.reward and row["rejected_model"] == "scripted"


def test_dpo_without_pairs_says_why_and_how_to_get_them(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "dpo.jsonl"
    alone = envsim("dataset", str(runs["careful"]), "--format", "dpo", "--out", str(out), "--json")
    assert alone.returncode == 1 and not out.exists()  # nothing to write, as for an empty selection
    summary = json.loads(alone.stdout.splitlines()[-1])
    assert summary["rows"] == 0 and summary["pairs"]["single"] == summary["pairs"]["groups"] == 2 * EPISODES
    message = " ".join(alone.stderr.split())  # the console wraps long lines
    assert "two reward-carrying episodes of one scenario and environment seed" in message  # why
    assert "--error-rate 0.3 --out RUN_B; envsim dataset RUN_A RUN_B --format dpo" in message  # how
    assert "kept no rows" not in message and summary["empty_reason"] in message
    strict = build_dataset([runs["careful"], runs["sloppy"]], "dpo", out, min_margin=1.0)
    assert strict.rows == 0 and strict.pairs is not None and strict.pairs.no_worse == strict.pairs.groups > 0
    assert "lower --min-margin" in (strict.empty_reason or "") and not out.exists()


def test_grpo_prompts_rebuild_the_environment(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "grpo.jsonl"
    summary = build_dataset([runs["careful"], runs["sloppy"]], "grpo", out)
    ds = load(out)
    assert len(ds) == summary.rows == 2 * EPISODES  # one prompt per (scenario, seed): both runs share them
    root = runs["careful"].parent
    for row in ds:
        assert row["group_size"] == 2 and not math.isnan(row["group_mean_reward"])
        scenario = load_scenario(root / "tiny.yaml") if row["scenario_id"] == "TinyEmergency" else row["scenario_id"]
        _, info = ScenarioEnv(scenario).reset(seed=row["seed"])
        tag = row["prompt"][0].pop("envsim")
        assert tag == {"scenario_id": row["scenario_id"], "seed": row["seed"]}
        assert row["prompt"] == info["messages"]  # system prompt and the user's opening, as the env starts
        assert json.loads(row["tools"]) == info["tools"]


# -- TRL ------------------------------------------------------------------------------------------


def tiny_tokenizer(texts: list[str]) -> Any:
    """A byte-level BPE trained here, with TRL's shipped Qwen2.5 chat template (byte-identical) and tokens."""
    import trl
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text(encoding="utf-8")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=template
    )
    assert fast.chat_template == template
    return fast


def tiny_model(tokenizer: Any) -> Any:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


TRAIN_ARGS: dict[str, Any] = {
    "bf16": False,
    "use_cpu": True,
    "report_to": "none",
    "max_steps": 1,
    "per_device_train_batch_size": 1,
    "save_strategy": "no",
    "max_length": 8192,
    "activation_checkpointing": False,
}


# TRL's DPO step reads the deprecated ``model.is_gradient_checkpointing`` itself (trl/models/utils.py)
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_trl_sft_and_dpo_trainers_take_the_exports(runs: dict[str, Path], tmp_path: Path) -> None:
    import torch
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    torch.manual_seed(0)
    sources = [runs["careful"], runs["sloppy"]]
    build_dataset(sources, "sft", tmp_path / "sft.parquet", Selection.parse(["scenario=TinyEmergency"]))
    build_dataset(sources, "dpo", tmp_path / "dpo.jsonl", Selection.parse(["scenario=TinyEmergency"]))
    sft, dpo = load(tmp_path / "sft.parquet"), load(tmp_path / "dpo.jsonl")
    tokenizer = tiny_tokenizer([json.dumps(row["messages"]) + row["tools"] for row in sft])
    model = tiny_model(tokenizer)

    args = SFTConfig(output_dir=str(tmp_path / "sft"), **TRAIN_ARGS)
    trainer = SFTTrainer(model=model, args=args, train_dataset=sft, processing_class=tokenizer)
    prepared = trainer.train_dataset
    assert len(prepared) == len(sft) and "input_ids" in prepared.column_names
    text = tokenizer.decode(prepared[0]["input_ids"])
    assert LOOKUP_RENDERED in text  # the tool call rendered with its arguments as a JSON object, once
    assert '"name": "lookup_patient", "description"' in text  # the tools went into the system prompt
    assert math.isfinite(trainer.train().training_loss)

    args = DPOConfig(output_dir=str(tmp_path / "dpo"), **TRAIN_ARGS)
    trainer = DPOTrainer(
        model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=dpo, processing_class=tokenizer
    )
    prepared = trainer.train_dataset
    assert len(prepared) == len(dpo) > 0 and {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(prepared.column_names)
    prompt = tokenizer.decode(prepared[0]["prompt_ids"])
    assert prompt.endswith("<|im_start|>assistant\n") and "# Tools" in prompt
    assert prepared[0]["chosen_ids"] != prepared[0]["rejected_ids"]
    assert math.isfinite(trainer.train().training_loss)


# -- the command ----------------------------------------------------------------------------------


def test_cli_writes_the_dataset_and_ends_with_json(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "best.parquet"
    result = envsim(
        "dataset",
        str(runs["careful"]),
        str(runs["sloppy"]),
        str(runs["broken"]),
        "--best-of-n",
        "--select",
        "outcome=success",
        "--format",
        "sft",
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["excluded"] == {"infra_error": 1, "judge_error": 1, "sim_fault": 1}
    assert summary["rows"] == len(load(out)) == summary["selected"] > 0
    assert summary["selection"] == "outcome=success --best-of-n"

    empty = envsim("dataset", str(runs["broken"]), "--out", str(tmp_path / "none.jsonl"), "--json")
    assert empty.returncode == 1 and json.loads(empty.stdout.splitlines()[-1])["rows"] == 0
    assert "kept no rows" in empty.stderr and not (tmp_path / "none.jsonl").exists()

    cases = [
        (["--select", "outcome=sim_fault"], "only outcomes that carry a reward"),
        (["--format", "ppo"], "expected one of sft, dpo, grpo"),
        (["--out", str(tmp_path / "x.csv")], "must end in .parquet or .jsonl"),
    ]
    for extra, message in cases:
        args = ["dataset", str(runs["careful"]), "--out", str(tmp_path / "x.jsonl"), *extra]
        result = envsim(*args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
    missing = envsim("dataset", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.jsonl"))
    assert missing.returncode == 2 and "not a run directory" in missing.stderr
