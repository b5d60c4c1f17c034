"""A tiny tool-calling model built locally: no hub, no download.

- :func:`build_tokenizer` trains a byte-level BPE tokenizer (no word pre-split; optionally digits and the
  punctuation of values split off: :func:`value_pre_tokenizer`) (the ``tokenizers`` library) on the
  project's own scenario text (scenario files and rendered scripted conversations) and gives it
  TRL's Qwen2.5 tool-calling chat template, byte-identical to ``trl/chat_templates/qwen2_5.jinja``,
  with that template's special tokens (``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>``, and
  ``<tool_call>``/``<tool_response>`` as plain added tokens, as in Qwen's own tokenizer);
- :func:`build_model` makes a randomly initialised Llama-architecture causal LM of a given size
  from a config. (Not Qwen2: transformers 5 loads the tokenizer of a ``qwen2`` checkpoint as
  ``Qwen2Tokenizer`` whatever its ``tokenizer_config.json`` says, re-adding Qwen's regex word split
  and NFC normalization, so a model saved with this tokenizer would be read back with another.)

Both are for tests, benchmarks and the CPU flywheel demo; a real run loads a pretrained model
(``envsim train flywheel --model PATH``).

Example:
    >>> corpus = ["<|im_start|>user\\nhi<|im_end|>\\n", "lookup_patient 555-0142"]
    >>> tokenizer = build_tokenizer(corpus, vocab_size=300)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from envsim.train.values import ValueCodec

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""The Qwen2.5 template's special tokens: padding, start and end of a turn."""

TOOL_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
"""Markers the template writes around tool calls and results (plain added tokens: decoded as text)."""

TEMPLATE_NAME = "qwen2_5.jinja"
"""The TRL chat template the tiny tokenizer uses (TRL recognises it by its exact bytes)."""


def trl_chat_template(name: str = TEMPLATE_NAME) -> str:
    """The text of a chat template TRL ships (``trl/chat_templates/<name>``), read from the installed TRL."""
    import trl

    path = Path(trl.__file__).resolve().parent / "chat_templates" / name
    return path.read_text(encoding="utf-8")


def scenario_corpus(
    scenario_ids: Sequence[str] | None = None,
    *,
    seeds: Iterable[int] = (0, 1),
    error_rate: float = 0.3,
    values: ValueCodec | None = None,
) -> list[str]:
    """Text to train a tokenizer on: every scenario file, and scripted conversations (with and
    without mistakes) rendered in the Qwen2.5 template with the scenario's tool schemas.

    Args:
        scenario_ids: Scenarios to draw from (default: every registered one).
        seeds: Episode seeds per scenario and agent.
        error_rate: The mistaken scripted agent's error rate (a second agent plays it perfectly).
        values: Render the conversations as the policy will read them, values as placeholders
            (:class:`~envsim.train.values.ValueCodec`).
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    from envsim.agents.hf import template_messages
    from envsim.agents.scripted import ScriptedAgent
    from envsim.env import ScenarioEnv
    from envsim.registration import discover
    from envsim.rollout import run_episode

    found = discover()
    ids = list(scenario_ids) if scenario_ids is not None else sorted(found)
    template = trl_chat_template()
    texts: list[str] = []
    for scenario_id in ids:
        if scenario_id in found:
            texts.append(found[scenario_id][0].read_text(encoding="utf-8"))
        env = ScenarioEnv(scenario_id)
        for seed in seeds:
            for agent in (ScriptedAgent(0.0), ScriptedAgent(error_rate)):
                trajectory, _ = run_episode(env, agent, seed=seed)
                messages = trajectory.messages if values is None else values.delexicalise(trajectory.messages).messages
                tools: list[Any] = env.session.tools.schemas()
                result: Any = render_jinja_template(  # returns (texts, generation indices), whatever its hint says
                    conversations=[template_messages(messages)], tools=tools, chat_template=template
                )
                texts.append(result[0][0])
    return texts


VALUE_DELIMITERS = r"[@.#\-]"
"""Characters split off as tokens of their own: the punctuation inside and around values (emails, ids, dates)."""


def value_pre_tokenizer() -> Any:
    """The tiny tokenizer's pre-split: every digit alone, the :data:`VALUE_DELIMITERS` alone, then bytes.

    A value (an email, an order id, a phone number) then splits into the same tokens wherever it
    appears, in the caller's sentence, in a tool call's JSON or in a tool result, and no token holds a
    whole value seen in training (``yusuf.smith224`` was one token without it): putting a value in a
    tool call is a token-by-token copy from the conversation, which a small model can learn, rather
    than a recall of tokens that only training instances had. Letters, spaces and quotes still merge
    freely, so the tool schemas every prompt repeats stay a few tokens.

    Example:
        >>> pieces = value_pre_tokenizer().pre_tokenize_str("#W0301 at ana.li7@x.io")
        >>> [p for p, _ in pieces]
        ['#', 'W', '0', '3', '0', '1', 'ĠatĠana', '.', 'li', '7', '@', 'x', '.', 'io']
    """
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Split(Regex(VALUE_DELIMITERS), "isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def build_tokenizer(
    corpus: Iterable[str], *, vocab_size: int = 8192, split_values: bool = False, extra_tokens: Sequence[str] = ()
) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus``, with TRL's Qwen2.5 chat template.

    Bytes are not pre-split into words, so frequent phrases (the tool schemas, JSON keys) become
    single tokens: a scenario's prompt is about 100–500 tokens instead of 2,000–3,000. Values seen
    in training can then become tokens of their own (``yusuf.smith224`` after "My email is "), which
    a model can recall but not copy into a new conversation.

    Args:
        corpus: The text to learn the merges from.
        vocab_size: Most tokens (the special and tool tokens come on top).
        split_values: Split every digit and the punctuation of values off first
            (:func:`value_pre_tokenizer`): a value is then the same tokens wherever it appears, and
            a retail conversation about 780 tokens instead of 185 (with ``vocab_size`` 4096, which a
            few hundred conversations fill, so that the rarest merges, inside one instance's values,
            are left out). Its effect on training is in ``bench/README.md`` ("Flywheel on a suite").
        extra_tokens: Tokens of their own, added after training (the value placeholders
            :meth:`envsim.train.values.ValueCodec.tokens`: each one token wherever it appears).

    Returns a ``transformers.PreTrainedTokenizerFast`` (eos ``<|im_end|>``, pad ``<|endoftext|>``,
    left padding, as GRPOTrainer wants).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    # No regex pre-split: merges may cross word boundaries, so the long tool schemas every prompt repeats
    # become a few hundred tokens instead of a few thousand (attention on CPU is the tiny model's main cost).
    backend.pre_tokenizer = (
        value_pre_tokenizer() if split_values else pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(list(corpus), trainer)
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in (*TOOL_TOKENS, *extra_tokens)])
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        padding_side="left",
        model_max_length=32768,
    )
    tokenizer.chat_template = trl_chat_template()
    return tokenizer


def build_model(
    tokenizer: Any,
    *,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int = 384,
    max_positions: int = 8192,
    seed: int = 0,
) -> Any:
    """A randomly initialised Llama-architecture causal LM sized for ``tokenizer`` (float32).

    Args:
        tokenizer: Gives the vocabulary size and the eos/pad ids.
        hidden_size: Width of the residual stream.
        layers: Transformer blocks.
        heads: Attention heads (key/value heads: half of them, at least 1).
        intermediate_size: Width of the MLP.
        max_positions: Longest context (RoPE: costs no parameters).
        seed: Seed of the initialisation.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    return model


def parameter_count(model: Any) -> int:
    """Number of parameters of a torch module."""
    return int(sum(p.numel() for p in model.parameters()))


def describe(model: Any, tokenizer: Any) -> str:
    """One line: parameters, vocabulary, layers and width."""
    config = model.config
    return json.dumps(
        {
            "parameters": parameter_count(model),
            "vocab": len(tokenizer),
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
        }
    )
