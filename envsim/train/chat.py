"""Chat-template tokenization shared by supervised fine-tuning and RL rollouts: the same tokens in both.

A conversation becomes one token sequence made of segments, each tokenized on its own:

- the **prompt**: the messages up to the first assistant turn, rendered with the tool schemas and
  the generation prompt (``<|im_start|>assistant\\n`` for Qwen-style templates);
- per assistant turn, the **assistant segment**: what the model writes, up to and including its
  end-of-turn token (``tokenizer.eos_token``, ``<|im_end|>``); this is trained (mask 1);
- after it, the **environment segment**: whatever the template puts between that end-of-turn
  token and the next generation prompt (the tool results, the mock user's reply, an error), not
  trained (mask 0). It is the difference between two renderings of the conversation, so the
  template must be prefix-preserving (appending messages must not change earlier text), which
  the templates TRL ships (``trl/chat_templates/qwen2_5.jinja`` among them) are.

During a rollout the assistant segments are the tokens the model sampled, kept as they are (no
re-tokenization drift); :func:`encode_conversation` builds the same layout from a stored
trajectory for SFT, so a model fine-tuned on it sees at RL time exactly the context it learned.

The functions take any Hugging Face tokenizer with a chat template; nothing here imports torch.

Example (any tokenizer whose template renders tools; here a stand-in with a tiny template):
    >>> class Tok:
    ...     eos_token = "<E>"
    ...     def apply_chat_template(self, messages, tools=None, add_generation_prompt=False, tokenize=False):
    ...         text = "".join(f"<{m['role']}>{m['content']}<E>\\n" for m in messages)
    ...         return text + ("<assistant>" if add_generation_prompt else "")
    >>> msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ask"},
    ...         {"role": "user", "content": "555"}]
    >>> environment_text(Tok(), msgs, None, assistant_index=1, ended=True)
    '\\n<user>555<E>\\n<assistant>'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from envsim.agents.hf import template_messages
from envsim.errors import ChatTemplateError as TemplateError


class ChatTokenizer(Protocol):
    """What this module needs of a tokenizer: its end-of-turn token and its chat template."""

    eos_token: Any

    def apply_chat_template(self, *args: Any, **kwargs: Any) -> Any:
        """Render messages (and tools) with the chat template."""


def render(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    add_generation_prompt: bool,
) -> str:
    """The conversation as the chat template writes it (envsim's messages made template-ready)."""
    text = tokenizer.apply_chat_template(
        template_messages(messages),
        tools=list(tools) if tools else None,
        add_generation_prompt=add_generation_prompt,
        tokenize=False,
    )
    return str(text)


def encode(tokenizer: Any, text: str) -> list[int]:
    """``text`` as token ids, with no special tokens added."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def end_of_turn(tokenizer: ChatTokenizer) -> str:
    """The token that ends an assistant turn (the tokenizer's EOS, ``<|im_end|>`` for Qwen templates)."""
    eos = tokenizer.eos_token
    if not isinstance(eos, str) or not eos:
        raise TemplateError("the tokenizer has no eos_token: set it to the chat template's end-of-turn token")
    return eos


def environment_text(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    assistant_index: int,
    ended: bool,
) -> str:
    """The text between the end of the assistant turn ``messages[assistant_index]`` and the next
    generation prompt (included): the rendering of ``messages[assistant_index + 1:]``.

    Args:
        tokenizer: Its chat template renders the conversation.
        messages: The conversation up to the next assistant turn (exclusive).
        tools: The tool schemas the prompt was rendered with.
        assistant_index: Index of the assistant message just answered.
        ended: Whether the assistant's tokens already end with the end-of-turn token; if not (the
            turn hit its token cap), the end-of-turn token is part of the environment's text.
    """
    eos = end_of_turn(tokenizer)
    previous = render(tokenizer, messages[: assistant_index + 1], tools, add_generation_prompt=False)
    full = render(tokenizer, messages, tools, add_generation_prompt=True)
    if not full.startswith(previous):
        raise TemplateError(
            "the chat template is not prefix-preserving: rendering later messages changed earlier text; "
            "use a template TRL ships in trl/chat_templates/ (e.g. qwen2_5.jinja)"
        )
    cut = previous.rfind(eos)
    if cut < 0:
        raise TemplateError(f"the chat template does not end an assistant turn with the eos token {eos!r}")
    return ("" if ended else eos) + previous[cut + len(eos) :] + full[len(previous) :]


def assistant_text(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
    *,
    assistant_index: int,
) -> str:
    """What the model writes for ``messages[assistant_index]``: its rendering after the generation
    prompt, up to and including the end-of-turn token."""
    eos = end_of_turn(tokenizer)
    before = render(tokenizer, messages[:assistant_index], tools, add_generation_prompt=True)
    through = render(tokenizer, messages[: assistant_index + 1], tools, add_generation_prompt=False)
    if not through.startswith(before):
        raise TemplateError(
            "the chat template's generation prompt is not a prefix of the rendered assistant turn; "
            "use a template TRL ships in trl/chat_templates/ (e.g. qwen2_5.jinja)"
        )
    body = through[len(before) :]
    cut = body.rfind(eos)
    if cut < 0:
        raise TemplateError(f"the chat template does not end an assistant turn with the eos token {eos!r}")
    return body[: cut + len(eos)]


def encode_conversation(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
) -> tuple[list[int], list[int]]:
    """Token ids of a whole conversation and its assistant mask (1 on the assistant's own tokens).

    The layout is the rollout's (see the module docstring): what follows the last assistant turn
    (a final tool result or user reply) is left out, as a rollout ends with the model's last turn.

    Raises:
        ValueError: The conversation has no assistant turn.
    """
    turns = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    if not turns:
        raise ValueError("the conversation has no assistant turn to learn from")
    ids = encode(tokenizer, render(tokenizer, messages[: turns[0]], tools, add_generation_prompt=True))
    mask = [0] * len(ids)
    for n, index in enumerate(turns):
        own = encode(tokenizer, assistant_text(tokenizer, messages, tools, assistant_index=index))
        ids += own
        mask += [1] * len(own)
        if n + 1 < len(turns):
            following = messages[: turns[n + 1]]
            env = encode(tokenizer, environment_text(tokenizer, following, tools, assistant_index=index, ended=True))
            ids += env
            mask += [0] * len(env)
    return ids, mask
