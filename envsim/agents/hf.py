"""The Hugging Face agent: a local causal language model on disk, with transformers ``generate``.

Each turn renders the environment's conversation and tool schemas with the model's chat
template (``tokenizer.apply_chat_template(messages, tools=..., add_generation_prompt=True)``),
generates up to ``max_new_tokens`` and reads the action out of the generated text with
:func:`parse_generation`:

- Qwen/Hermes-style blocks ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (one or
  more; an unterminated last block is accepted) become native ``tool_calls``, with the text
  around them as ``content``;
- a reply that is one bare JSON object with a ``name`` (``arguments`` or Llama's
  ``parameters``), optionally in a code fence, becomes one tool call;
- a tool-call block that is not valid JSON is returned as its raw text, which the environment
  reports to the agent as a malformed action;
- anything else is a message to the user (``<think>`` blocks removed).

transformers and torch are the ``train`` extra and are imported only when an agent is made.

Example (no model needed to read a generation):
    >>> parse_generation('<tool_call>\\n{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}\\n</tool_call>')
    {'role': 'assistant', 'content': None, 'tool_calls': [{'id': 'call_0', 'type': 'function', \
'function': {'name': 'lookup_patient', 'arguments': '{"phone": "555-0142"}'}}]}
    >>> parse_generation("Could you give me your phone number?")
    {'role': 'assistant', 'content': 'Could you give me your phone number?'}
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envsim.agents.base import Policy
from envsim.agents.llm import AgentUsage
from envsim.llm import Completion
from envsim.scenario import Scenario

_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SEED_RANGE = 2**31 - 1


def _call(data: Any, index: int, prefix: str) -> dict[str, Any] | None:
    """One OpenAI tool call from a decoded ``{"name": ..., "arguments": ...}`` object, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": f"{prefix}{index}", "type": "function", "function": {"name": data["name"], "arguments": text}}


def parse_generation(text: str, *, id_prefix: str = "call_") -> dict[str, Any] | str:
    """The action in a model's generated text: an assistant message dict, or the raw text when a
    tool-call block is not valid JSON (see the module docstring).

    Example:
        >>> parse_generation('{"name": "get_order", "parameters": {"order_id": "#W1"}}')["tool_calls"][0]["function"]
        {'name': 'get_order', 'arguments': '{"order_id": "#W1"}'}
        >>> parse_generation('<tool_call>{"name": "get_order", "arguments": {</tool_call>')
        '{"name": "get_order", "arguments": {'
    """
    text = _THINK.sub("", text).strip()
    blocks = _BLOCK.findall(text)
    if blocks:
        calls = []
        for i, block in enumerate(blocks):
            raw = str(block).strip()
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                return raw
            call = _call(data, i, id_prefix)
            if call is None:
                return raw
            calls.append(call)
        content = _BLOCK.sub("", text).strip()
        return {"role": "assistant", "content": content or None, "tool_calls": calls}
    fenced = _FENCE.match(text)
    candidate = fenced.group(1) if fenced else text
    if candidate.startswith("{") and candidate.endswith("}"):
        try:
            call = _call(json.loads(candidate), 0, id_prefix)
        except json.JSONDecodeError:
            call = None
        if call is not None:
            return {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"role": "assistant", "content": text}


def template_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The environment's OpenAI-format messages as chat templates expect them.

    Tool-call ``arguments`` become objects (templates write them with ``tojson``) and a missing
    ``content`` becomes ``""``.

    Example:
        >>> template_messages([{"role": "assistant", "content": None, "tool_calls": [
        ...     {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}])
        [{'role': 'assistant', 'content': '', 'tool_calls': [{'id': 'c', 'type': 'function', \
'function': {'name': 'f', 'arguments': {'a': 1}}}]}]
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        item = dict(message)
        if item.get("content") is None:
            item["content"] = ""
        calls = []
        for call in item.get("tool_calls") or []:
            fn = dict(call.get("function", {}))
            if isinstance(fn.get("arguments"), str):
                with contextlib.suppress(json.JSONDecodeError):  # unreadable: leave what the model wrote
                    fn["arguments"] = json.loads(fn["arguments"]) if fn["arguments"].strip() else {}
            calls.append({**call, "function": fn})
        if calls:
            item["tool_calls"] = calls
        out.append(item)
    return out


class HFAgent(Policy):
    """An agent played by a local Hugging Face causal LM (see the module docstring).

    Args:
        model_path: Folder with the model and its tokenizer (``save_pretrained`` output or a hub snapshot).
        device: Torch device, e.g. ``cpu`` or ``cuda:0``.
        max_new_tokens: Cap on each reply's tokens.
        temperature: 0 decodes greedily; above 0 samples, seeded from the episode's generator.

    Attributes:
        usage: The current episode's calls and tokens (:class:`~envsim.agents.llm.AgentUsage`; cost stays 0).
        last_text: The last generated text, special tokens included (for debugging templates).
    """

    def __init__(
        self, model_path: str | Path, device: str = "cpu", max_new_tokens: int = 256, temperature: float = 0.0
    ) -> None:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        torch = importlib.import_module("torch")  # the `train` extra: imported only here
        transformers = importlib.import_module("transformers")

        self.model_path = Path(model_path)
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(self.model_path)
        self.model: Any = transformers.AutoModelForCausalLM.from_pretrained(self.model_path).to(device)
        self.model.eval()
        self._torch = torch
        self._lock = threading.Lock()
        self._episode_seed = 0
        self._counts = (0, 0)
        self.usage = AgentUsage()
        self.last_text = ""

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Start an episode: fresh usage; a sampling seed drawn from a child of ``rng`` (its stream is untouched)."""
        self.usage = AgentUsage()
        self.last_text = ""
        self._episode_seed = int(rng.spawn(1)[0].integers(_SEED_RANGE))

    def prompt(self, info: Mapping[str, Any]) -> str:
        """The chat-templated prompt of the next turn (tools included), ending with the generation prompt."""
        messages = info.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("info['messages'] must be the environment's message list (from reset() or step())")
        tools = list(info.get("tools") or []) or None
        text = self.tokenizer.apply_chat_template(
            template_messages(messages), tools=tools, add_generation_prompt=True, tokenize=False
        )
        return str(text)

    def generate(self, prompt: str) -> str:
        """The model's continuation of ``prompt``, special tokens other than end markers kept."""
        torch = self._torch
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        if self.temperature > 0:
            options["temperature"] = self.temperature
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed((self._episode_seed + self.usage.calls) % _SEED_RANGE)
            output = self.model.generate(**encoded, pad_token_id=pad, **options)
        new = output[0, encoded["input_ids"].shape[1] :]
        text = str(self.tokenizer.decode(new, skip_special_tokens=False))
        for marker in {self.tokenizer.eos_token, self.tokenizer.pad_token, "<|im_end|>", "<|endoftext|>", "<|eot_id|>"}:
            if marker:
                text = text.split(marker)[0] if marker in text else text
        self._counts = (int(encoded["input_ids"].shape[1]), len(new))
        return text

    def act(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        """Generate one reply and parse it into an action (see :func:`parse_generation`)."""
        turn = self.usage.calls
        self.last_text = self.generate(self.prompt(info))
        action = parse_generation(self.last_text, id_prefix=f"call_{turn}_")
        calls = action.get("tool_calls", []) if isinstance(action, dict) else []
        prompt_tokens, completion_tokens = self._counts
        self.usage.add(
            Completion(
                text=self.last_text, tool_calls=calls, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        )
        return action

    async def aact(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        """:meth:`act` in a worker thread, so that an asyncio runner's loop keeps going."""
        return await asyncio.to_thread(self.act, observation, info)
