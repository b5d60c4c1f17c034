"""The one place envsim calls language models: litellm, imported lazily.

litellm takes seconds to import and, offline, tries to download a price table unless
``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set before the import; :func:`litellm` sets it and
imports once. Every model call of envsim (LLM user, LLM agent, judge) goes through
:func:`complete` / :func:`acomplete`, so a registered litellm custom provider or
``mock_response`` drives the real client path in tests, and :func:`set_call_cache` can put a
recorder, a replayer or a retry policy in front of every call (``envsim generate`` does).
litellm logs every call in the background; :func:`drain_logging` waits for that before a run's
event loop closes.

A model litellm has no price for (a local server, a self-hosted model) costs 0; once a call has
shown that, the model is registered in litellm's price map at 0 (``litellm.register_model``), so
that litellm stops searching its price map for it on every later call (about a tenth of its CPU
per call); models litellm prices, and custom prices, are never touched.

Example (no network: litellm's own ``mock_response``):
    >>> reply = complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello")
    >>> reply.text
    'hello'
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
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


LOGGING_DRAIN_SECONDS = 10.0
"""The longest :func:`drain_logging` waits for litellm's logging (each of its callbacks has its own 20 s bound)."""


def litellm() -> ModuleType:
    """The litellm module, imported once with the offline price map."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        # litellm's aiohttp pool holds 500 connections per host (1,000 in all) and warns of every call
        # that waits for one; envsim's --concurrency already bounds the calls in flight, so the pool
        # does not (per host: 0 is no bound; in all: litellm passes no 0 on, so a bound no run reaches).
        # A user's own settings win.
        os.environ.setdefault("AIOHTTP_CONNECTOR_LIMIT", "1000000")
        os.environ.setdefault("AIOHTTP_CONNECTOR_LIMIT_PER_HOST", "0")
        # litellm logs each call's success on a background queue that at most 100 tasks work at once
        # (LOGGING_WORKER_CONCURRENCY); with hundreds of calls in flight it falls behind and the queue
        # grows for as long as the run lasts (measured at 256 in flight: ~50 entries a second, ~28 KB
        # each, and past 50,000 litellm drops entries with errors). envsim bounds the calls in flight,
        # so the logging does not need its own bound: it keeps pace, memory stays flat.
        os.environ.setdefault("LOGGING_WORKER_CONCURRENCY", "1000000")
        import litellm as module

        module.suppress_debug_info = True
        # litellm's response types use ``ReadOnly`` TypedDict items; pydantic warns once when it first
        # builds them (lazily, on the first response). Build them here, where that warning is known.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*(is|are) using the `ReadOnly` qualifier", category=UserWarning
            )
            module.ModelResponse()
            # and those of the GitHub Copilot modules, built when imported: litellm imports them lazily,
            # on the first call (whatever the provider)
            for name in ("authenticator", "per_user_auth"):
                with contextlib.suppress(ImportError):
                    importlib.import_module(f"litellm.llms.github_copilot.{name}")
        _litellm = module
    return _litellm


async def drain_logging(timeout: float = LOGGING_DRAIN_SECONDS) -> None:
    """Wait (at most ``timeout`` seconds) until litellm has logged every call made so far.

    litellm logs each call in the background, on the event loop that made it. A run awaits this
    before its loop closes, so that nothing is left for another loop (litellm moves it there with
    a warning) or for the interpreter's exit (where litellm drops what it cannot log in 5 s).
    Nothing to do where litellm was never imported.

    Example:
        >>> import asyncio
        >>> asyncio.run(drain_logging())
    """
    worker = _logging_worker()
    if worker is None:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await worker.flush()


def logging_backlog() -> int:
    """Calls whose success litellm has not logged yet (0 where litellm was never imported).

    Example:
        >>> logging_backlog() >= 0
        True
    """
    worker = _logging_worker()
    return 0 if worker is None else int(worker.pending_count)


def _logging_worker() -> Any:
    """litellm's background logging worker; None where litellm was never imported, or has none there."""
    if _litellm is None:
        return None
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # another litellm layout: its own exit handling applies
        return None
    return GLOBAL_LOGGING_WORKER


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


_unpriced: set[tuple[Any, ...]] = set()
"""Models litellm has no price for, by (model, response model, provider, price map): cost 0, not looked up again."""


def _register_free(lib: ModuleType, model: str, provider: Any) -> None:
    """Register ``model`` in litellm's price map at 0, unless the map already has an entry for it.

    litellm then prices the model's responses itself (at 0) instead of searching its map for a
    price on every call and failing. It still prefers the price of the model a response names, so
    an alias in front of a priced model keeps that price.
    """
    if not isinstance(provider, str) or not provider:
        provider = model.split("/", 1)[0] if "/" in model else None
    if provider is None or model in lib.model_cost:
        return
    free = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
    cache = {"cache_creation_input_token_cost": 0.0, "cache_read_input_token_cost": 0.0}
    with contextlib.suppress(Exception):  # an entry litellm rejects: cost stays 0 through the slow path
        lib.register_model({model: {**free, **cache, "litellm_provider": provider, "mode": "chat"}})


def _cost(lib: ModuleType, model: str, response: Any) -> float:
    """The call's cost in USD, from litellm's price map (0 for a model it has no price for).

    litellm prices every response it returns (``_hidden_params["response_cost"]``, from its
    logging path); that is taken as is. Where it is missing, ``completion_cost`` is asked; a model
    that has no price (a local or mock model) raises there, which takes milliseconds, so that
    answer is remembered per model and price map (``litellm.register_model`` changes the map), and
    the model is registered at 0 (:func:`_register_free`): litellm prices its later calls itself.
    """
    hidden = getattr(response, "_hidden_params", None) or {}
    known = hidden.get("response_cost")
    if isinstance(known, (int, float)):
        return float(known)

    def key() -> tuple[Any, ...]:
        prices = lib.model_cost
        return (model, getattr(response, "model", None), hidden.get("custom_llm_provider"), id(prices), len(prices))

    if key() in _unpriced:
        return 0.0
    try:
        return float(lib.completion_cost(completion_response=response) or 0.0)
    except Exception:  # unknown price for a local or mock model
        _register_free(lib, model, hidden.get("custom_llm_provider"))
        _unpriced.add(key())
        return 0.0


def _to_completion(model: str, response: Any) -> Completion:
    lib = litellm()
    message = response.choices[0].message
    tool_calls = [
        {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
        for c in (message.tool_calls or [])
    ]
    usage = getattr(response, "usage", None)
    cost = _cost(lib, model, response)
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
