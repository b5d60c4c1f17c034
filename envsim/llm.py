"""The one place envsim calls language models: litellm, imported lazily.

litellm takes seconds to import and, offline, tries to download a price table unless
``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set before the import; :func:`litellm` sets it and
imports once. Every model call of envsim (LLM user, LLM agent, judge) goes through
:func:`complete` / :func:`acomplete`, so a registered litellm custom provider or
``mock_response`` drives the real client path in tests, and :func:`set_call_cache` can put a
recorder, a replayer or a retry policy in front of every call (``envsim generate`` does).

Example (no network: litellm's own ``mock_response``):
    >>> reply = complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello")
    >>> reply.text
    'hello'
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

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
        # litellm's response types use ``ReadOnly`` TypedDict items; pydantic warns once when it first
        # builds them (lazily, on the first response). Build them here, where that warning is known.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*is using the `ReadOnly` qualifier", category=UserWarning)
            module.ModelResponse()
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


class CallCache(Protocol):
    """What :func:`set_call_cache` installs: it gets every call with the function that would make it.

    It may answer from a record, retry ``send`` or record its result; ``send(model, messages,
    **kwargs)`` is the plain call to the provider. :class:`envsim.batch.cache.ModelCalls` is the
    implementation (record/replay, retries with backoff, per-episode usage).
    """

    def call(
        self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any], send: Callable[..., Completion]
    ) -> Completion:
        """Answer a :func:`complete` call."""
        ...

    async def acall(
        self,
        model: str,
        messages: list[dict[str, Any]],
        kwargs: dict[str, Any],
        send: Callable[..., Awaitable[Completion]],
    ) -> Completion:
        """Answer an :func:`acomplete` call."""
        ...


_call_cache: CallCache | None = None


def set_call_cache(cache: CallCache | None) -> CallCache | None:
    """Route every :func:`complete`/:func:`acomplete` through ``cache`` (``None``: call directly).

    Process-wide; returns the previous one, so that a caller can restore it.
    """
    global _call_cache
    previous, _call_cache = _call_cache, cache
    return previous


def complete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """One chat completion (``kwargs`` go to ``litellm.completion``: temperature, seed, tools...)."""
    if _call_cache is not None:
        return _call_cache.call(model, messages, kwargs, _complete)
    return _complete(model, messages, **kwargs)


def _complete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    lib = litellm()
    try:
        response = lib.completion(model=model, messages=messages, **kwargs)
    except Exception as error:
        raise ModelCallError(model, error) from error
    return _to_completion(model, response)


async def acomplete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """The async form of :func:`complete` (``litellm.acompletion``)."""
    if _call_cache is not None:
        return await _call_cache.acall(model, messages, kwargs, _acomplete)
    return await _acomplete(model, messages, **kwargs)


async def _acomplete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    lib = litellm()
    try:
        response = await lib.acompletion(model=model, messages=messages, **kwargs)
    except Exception as error:
        raise ModelCallError(model, error) from error
    return _to_completion(model, response)
