"""Seconds per GRPO step through whole envsim episodes, and the share of it spent in envsim.

A tiny Llama-architecture model (tokenizer trained on the scenarios' own text, no download) is warmed up by
a short SFT on scripted episodes of three scenarios (one per domain), so that its rollouts call
tools and talk to the user, then ``GRPOTrainer`` runs ``--steps`` steps of ``--groups`` groups of
``--generations`` episodes through :class:`envsim.train.grpo.EnvsimRollout`. Per step: the
trainer's ``step_time`` (rollouts, scoring, loss and optimizer) and the time inside envsim
(``reset``, ``step``/``astep`` with the mock user, scoring: the runner's ``timings["envsim"]``);
the adapter's own templating/tokenization and the generation are reported beside it. The first
step (warm-up) is left out of the means. The last line is one JSON object.

Run: ``python bench/train_step.py [--steps 6] [--threads 1]``
Target: envsim's share of a GRPO step under 5%.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from typing import Any

SCENARIOS = ("MedicalSupplyPanicCaller", "RetailCancelPendingOrder", "BankingLostCardReplacement")
TARGET_SHARE = 0.05


def main() -> None:
    """Run the benchmark and print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="GRPO steps (the first is warm-up).")
    parser.add_argument("--groups", type=int, default=2, help="GRPO groups per step.")
    parser.add_argument("--generations", type=int, default=4, help="Episodes per group.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    parser.add_argument("--json", action="store_true", help="The last line is one JSON object (always).")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import PrinterCallback, TrainerCallback

    from envsim.agents.scripted import ScriptedAgent
    from envsim.env import ScenarioEnv
    from envsim.rollout import run_episode
    from envsim.train.grpo import EnvsimRollout, grpo_config, make_trainer
    from envsim.train.prompts import prompt_dataset
    from envsim.train.sft import sft_config, sft_rows, sft_train
    from envsim.train.tiny import build_model, build_tokenizer, parameter_count, scenario_corpus

    torch.set_num_threads(args.threads)
    transformers.set_seed(0)
    transformers.logging.set_verbosity_error()
    tokenizer = build_tokenizer(scenario_corpus(SCENARIOS, seeds=[0]), vocab_size=4096)
    model = build_model(tokenizer, hidden_size=128, layers=2, heads=4, intermediate_size=384)
    conversations = []
    for scenario_id in SCENARIOS:
        env = ScenarioEnv(scenario_id)
        for seed in (0, 1):
            trajectory, _ = run_episode(env, ScriptedAgent(), seed=seed)
            conversations.append((trajectory.messages, env.session.tools.schemas()))
    with tempfile.TemporaryDirectory() as tmp:
        warm = sft_config(
            f"{tmp}/sft", max_steps=90, learning_rate=3e-3, per_device_train_batch_size=1, lr_scheduler_type="constant"
        )
        sft_train(model, tokenizer, sft_rows(tokenizer, conversations), args=warm, quiet=True)

        rollout = EnvsimRollout(max_turn_tokens=96)
        marks: list[dict[str, float]] = []

        class Mark(TrainerCallback):  # type: ignore[misc]
            """Snapshot the runner's timings at the end of each step."""

            def on_step_end(self, *_: Any, **__: Any) -> None:
                assert rollout.runner is not None
                marks.append(dict(rollout.runner.timings))

        config = grpo_config(
            f"{tmp}/grpo",
            num_generations=args.generations,
            per_device_train_batch_size=args.generations * args.groups,
            max_steps=args.steps,
            learning_rate=1e-4,
            temperature=1.0,
            seed=0,
        )
        dataset = prompt_dataset(SCENARIOS, seeds=range(16))
        trainer = make_trainer(model, tokenizer, dataset, args=config, rollout=rollout, callbacks=[Mark()])
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        with warnings.catch_warnings():
            # TRL 1.16 reads a model property transformers 5.x deprecates (a FutureWarning per step).
            warnings.filterwarnings("ignore", message="`is_gradient_checkpointing`", category=FutureWarning)
            trainer.train()
        wall = time.perf_counter() - started

    logs = [e for e in trainer.state.log_history if "step_time" in e]
    previous: dict[str, float] = {}
    rows = []
    for entry, mark in zip(logs, marks, strict=True):
        delta = {k: mark.get(k, 0.0) - previous.get(k, 0.0) for k in ("envsim", "generate", "tokenize")}
        previous = mark
        rows.append({"step_s": float(entry["step_time"]), **{f"{k}_s": v for k, v in delta.items()}})
    measured = rows[1:] if len(rows) > 1 else rows
    step_s = statistics.mean(r["step_s"] for r in measured)
    envsim_s = statistics.mean(r["envsim_s"] for r in measured)
    generate_s = statistics.mean(r["generate_s"] for r in measured)
    tokenize_s = statistics.mean(r["tokenize_s"] for r in measured)
    episodes = args.groups * args.generations
    print(f"tiny model, {parameter_count(model):,} parameters; {episodes} episodes per step; threads {args.threads}")
    print(f"{'step':>4} {'seconds':>8} {'envsim':>8} {'generate':>9} {'tokenize':>9}")
    for i, r in enumerate(rows, 1):
        print(f"{i:>4} {r['step_s']:>8.2f} {r['envsim_s']:>8.3f} {r['generate_s']:>9.2f} {r['tokenize_s']:>9.3f}")
    share = envsim_s / step_s
    print(f"mean over steps 2-{len(rows)}: {step_s:.2f} s/step, envsim {envsim_s:.3f} s = {share:.1%} (target < 5%)")
    print(
        json.dumps(
            {
                "s_per_step": round(step_s, 3),
                "envsim_s_per_step": round(envsim_s, 4),
                "envsim_share": round(share, 4),
                "generate_share": round(generate_s / step_s, 4),
                "tokenize_share": round(tokenize_s / step_s, 4),
                "target_envsim_share": TARGET_SHARE,
                "meets_target": share < TARGET_SHARE,
                "steps_measured": len(measured),
                "episodes_per_step": episodes,
                "parameters": parameter_count(model),
                "threads": args.threads,
                "wall_s": round(wall, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
