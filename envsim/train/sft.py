"""Supervised fine-tuning on envsim trajectories with TRL's ``SFTTrainer``, in the rollout's token layout.

Each conversation (OpenAI-format messages and the tool schemas it was played with) is tokenized
by :func:`envsim.train.chat.encode_conversation`: the prompt, then the assistant turns (trained)
with the tool results and user replies between them (not trained), each segment tokenized the
way :class:`~envsim.train.episodes.EpisodeRunner` tokenizes a rollout. The rows go to
``SFTTrainer`` pre-tokenized (``input_ids`` and ``assistant_masks``), so its loss is on the
assistant's tokens only and a model fine-tuned here sees at RL time exactly the context it learned.

The trajectories come from a generation run, rejection-sampled by
:mod:`envsim.datasets` (``envsim generate`` then its SFT export); see :mod:`envsim.train.flywheel`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envsim.train.chat import encode_conversation
from envsim.train.config import checkpointing_field
from envsim.train.values import ValueCodec

Conversation = tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]] | None]
"""One training conversation: its messages and the tool schemas."""


def sft_rows(
    tokenizer: Any, conversations: Iterable[Conversation], *, whole: bool = False, values: ValueCodec | None = None
) -> list[dict[str, list[int]]]:
    """Pre-tokenized SFT rows (``input_ids``, ``assistant_masks``), one per conversation with an assistant turn.

    Args:
        tokenizer: Tokenizes the conversations (its chat template renders them).
        conversations: Messages and tool schemas.
        whole: Learn every token of the conversation (the user's and the tools' too), not only the
            assistant's: for a model trained from scratch, whose only text these conversations are. A
            tool result repeats the values of the call before it and of the caller's words (the
            order id, the email), so the whole conversation gives the model many more copies to learn
            copying from than the assistant's tool calls alone.
        values: The policy reads and writes values as placeholders: each conversation is delexicalised
            by this codec first (the one the rollouts and evaluations use).
    """
    rows = []
    for messages, tools in conversations:
        if not any(m.get("role") == "assistant" for m in messages):
            continue
        if values is not None:
            messages = values.delexicalise(messages).messages
        ids, mask = encode_conversation(tokenizer, messages, tools)
        if whole:
            mask = [1] * len(ids)
        rows.append({"input_ids": ids, "assistant_masks": mask})
    return rows


def sft_config(output_dir: str, *, device: str = "cpu", **overrides: Any) -> Any:
    """An ``SFTConfig`` for pre-tokenized envsim rows on ``device`` (``overrides`` win).

    No truncation (``max_length=None``: episodes are a few thousand tokens), no checkpoints, no
    reporting; on ``cpu`` ``bf16=False`` and ``use_cpu=True``, on ``cuda`` ``bf16=True``.
    """
    from trl import SFTConfig  # type: ignore[attr-defined]  # TRL's lazy module exports it at runtime

    options: dict[str, Any] = {
        "output_dir": output_dir,
        "max_length": None,
        checkpointing_field(SFTConfig): False,
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10,
        "disable_tqdm": True,
    }
    options.update(bf16=False, use_cpu=True) if device == "cpu" else options.update(bf16=True)
    options.update(overrides)
    return SFTConfig(**options)


def sft_train(
    model: Any, tokenizer: Any, rows: list[dict[str, list[int]]], *, args: Any, quiet: bool = False, **kwargs: Any
) -> Any:
    """Fine-tune ``model`` in place on pre-tokenized ``rows``; returns the finished ``SFTTrainer``.

    ``quiet`` drops the trainer's printed logs (they stay in ``trainer.state.log_history``);
    ``kwargs`` go to ``SFTTrainer``.
    """
    from datasets import Dataset  # type: ignore[import-untyped]
    from transformers import PrinterCallback
    from trl import SFTTrainer  # type: ignore[attr-defined]

    if not rows:
        raise ValueError("no SFT rows: nothing to fine-tune on")
    dataset = Dataset.from_list(rows)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, **kwargs)
    if quiet:
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer
