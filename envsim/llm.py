"""The one place envsim calls language models: litellm, imported lazily.

litellm takes seconds to import and, offline, tries to download a price table unless
``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set before the import; :func:`litellm` sets it and
imports once. Every model call of envsim (LLM user, LLM agent, judge) goes through
:func:`complete` / :func:`acomplete`, so a registered litellm custom provider or
``mock_response`` drives the real client path in tests.

Example (no network: litellm's own ``mock_response``):
    >>> reply = complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello")
    >>> reply.text
    'hello'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from envsim.errors import EnvsimError


class ModelCallError(EnvsimError):
    """A model call failed after litellm's retries (provider error, timeout, bad request)."""

    def __init__(self, model: str, error: BaseException) -> None:
        self.model = model
        self.error = error
        super().__init__(f"{model}: {type(error).__name__}: {error}")


_litellm: ModuleType | None = None


def litellm() -> ModuleType:
    """The litellm module, imported once with the offline price map."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm as module

        module.suppress_debug_info = True
        _litellm = module
    return _litellm


@dataclass(frozen=True)
class Completion:
    """What a model returned, with its usage."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    model: str = ""
    raw_message: dict[str, Any] = field(default_factory=dict)


def _to_completion(model: str, response: Any) -> Completion:
    lib = litellm()
    message = response.choices[0].message
    tool_calls = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in (message.tool_calls or [])
    ]
    usage = getattr(response, "usage", None)
    try:
        cost = float(lib.completion_cost(completion_response=response) or 0.0)
    except Exception:  # unknown price for a local or mock model
        cost = 0.0
    raw: dict[str, Any] = {"role": "assistant", "content": message.content}
    if tool_calls:
        raw["tool_calls"] = tool_calls
    return Completion(
        text=message.content or "",
        tool_calls=tool_calls,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost=cost,
        model=model,
        raw_message=raw,
    )


def complete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """One chat completion (``kwargs`` go to ``litellm.completion``: temperature, seed, tools...)."""
    lib = litellm()
    try:
        response = lib.completion(model=model, messages=messages, **kwargs)
    except Exception as error:
        raise ModelCallError(model, error) from error
    return _to_completion(model, response)


async def acomplete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """The async form of :func:`complete` (``litellm.acompletion``)."""
    lib = litellm()
    try:
        response = await lib.acompletion(model=model, messages=messages, **kwargs)
    except Exception as error:
        raise ModelCallError(model, error) from error
    return _to_completion(model, response)
