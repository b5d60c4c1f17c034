"""The one place envsim calls language models: a model client, litellm imported lazily behind it.

Whatever calls a model (the LLM agent, the LLM user, the judge) takes a **model client**
(:class:`ModelClient`: ``complete`` and ``acomplete``), as httpx takes a transport:

- :class:`LiteLLMClient` (the default, :func:`default_client`) calls litellm. litellm takes
  seconds to import and, offline, tries to download a price table unless
  ``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set before the import; :func:`litellm` sets it and
  imports once, here and nowhere else. A registered litellm custom provider or ``mock_response``
  drives this real client path in tests.
- :class:`envsim.calls.ModelCalls` wraps another client with what a run needs: retries
  with backoff honouring ``Retry-After``, record/replay, and usage metering per episode and role.
- :class:`envsim.testing.fake_client.FakeClient` answers from a script, in process, for unit tests.

A failed call raises :class:`~envsim.errors.ModelCallError`, typed by what went wrong
(:func:`model_call_error`): :class:`~envsim.errors.RateLimited`, :class:`~envsim.errors.ModelTimeout`
and :class:`~envsim.errors.ProviderError` are worth retrying, the base class is not. Usage is
counted by one meter, :class:`UsageMeter`, whose :meth:`~UsageMeter.usage` is the trajectory's
:class:`~envsim.trajectory.Usage`. litellm logs every call in the background; :func:`drain_logging`
waits for that before a run's event loop closes.

A model litellm has no price for (a local server, a self-hosted model) costs 0; once a call has
shown that, the model is registered in litellm's price map at 0 (``litellm.register_model``), so
that litellm stops searching its price map for it on every later call (about a tenth of its CPU
per call); models litellm prices, and custom prices, are never touched.

Example (no network: litellm's own ``mock_response``):
    >>> reply = complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello")
    >>> reply.text
    'hello'
    >>> meter = UsageMeter()
    >>> meter.add(reply)
    >>> meter.usage().calls
    1
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import importlib
import os
import random
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from envsim.errors import ModelCallError, ModelTimeout, ProviderError, RateLimited, ReplayedFailure
from envsim.trajectory import Usage

__all__ = [
    "Completion",
    "LiteLLMClient",
    "ModelCallError",
    "ModelClient",
    "ModelTimeout",
    "ProviderError",
    "RateLimited",
    "RetryingClient",
    "UsageMeter",
    "acomplete",
    "backoff_delay",
    "check_settings",
    "complete",
    "default_client",
    "drain_logging",
    "litellm",
    "logging_backlog",
    "model_call_error",
    "retry_after",
]


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
        # grows for as long as the run lasts (and past a size litellm drops entries with errors; the
        # figures are in CHANGELOG.md, 2026-12-05). envsim bounds the calls in flight,
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
    attempts: int = 1
    """Tries the client made for this answer: more than 1 when it retried failed tries (a run's call layer)."""

    def tried(self, tries: int) -> Completion:
        """This answer after ``tries`` tries of a retrying client (its meter counts the retried ones)."""
        tries += self.attempts - 1  # a transport that retried too
        return self if tries == 1 else dataclasses.replace(self, attempts=tries)


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


RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
"""HTTP statuses below 500 worth another try (timeouts, conflicts, too early, rate limits); every 5xx is too."""

_RATE_LIMITED = frozenset({"RateLimitError"})
_TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "ReadTimeout"})
_PROVIDER_FAILURES = frozenset(
    {
        "APIConnectionError",
        "InternalServerError",
        "ServiceUnavailableError",
        "BadGatewayError",
        "ConnectError",
        "RemoteProtocolError",
    }
)


def status_code(error: BaseException) -> int | None:
    """The HTTP status of a provider error (or of the one a :class:`ModelCallError` wraps), when it has one."""
    cause = error.error if isinstance(error, ModelCallError) else error
    code = getattr(cause, "status_code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def describe(error: BaseException) -> str:
    """A one-line description of a failure: the provider's exception class and message."""
    cause = error.error if isinstance(error, ModelCallError) else error
    if isinstance(cause, ReplayedFailure):
        return str(cause)  # as it was described when recorded
    text = " ".join(str(cause).split())
    model = f"{error.model}: " if isinstance(error, ModelCallError) else ""
    return f"{model}{type(cause).__name__}: {text[:300]}"


def error_type(error: BaseException) -> type[ModelCallError]:
    """Which :class:`ModelCallError` a failure is (litellm's, openai's and httpx's exceptions, by class and status).

    Example:
        >>> error_type(TimeoutError()).__name__, error_type(ValueError("bad request")).__name__
        ('ModelTimeout', 'ModelCallError')
    """
    if isinstance(error, ModelCallError):
        if type(error) is not ModelCallError:
            return type(error)
        error = error.error
    name = type(error).__name__
    code = status_code(error)
    if name in _RATE_LIMITED or code == 429:
        return RateLimited
    if isinstance(error, TimeoutError) or name in _TIMEOUTS or code == 408:
        return ModelTimeout
    if isinstance(error, ConnectionError) or name in _PROVIDER_FAILURES:
        return ProviderError
    if code is not None and (code in RETRYABLE_STATUS or code >= 500):
        return ProviderError
    return ModelCallError


def model_call_error(model: str, error: BaseException) -> ModelCallError:
    """``error``, a failed call to ``model``, as the :class:`ModelCallError` subclass it is (:func:`error_type`)."""
    return error_type(error)(model, error)


def _headers(error: BaseException) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for candidate in (
        getattr(error, "headers", None),
        getattr(getattr(error, "response", None), "headers", None),
        getattr(error, "litellm_response_headers", None),
    ):
        if candidate is not None and hasattr(candidate, "get"):
            found.append(candidate)
    return found


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_after(error: BaseException) -> float | None:
    """Seconds the provider asked to wait (``retry-after-ms`` or ``Retry-After``: seconds or an HTTP date)."""
    for headers in _headers(error.error if isinstance(error, ModelCallError) else error):
        millis = headers.get("retry-after-ms") or headers.get("Retry-After-Ms")
        if millis is not None:
            try:
                return max(0.0, float(millis) / 1000.0)
            except (TypeError, ValueError):
                pass
        value = headers.get("retry-after") or headers.get("Retry-After")
        if value is not None:
            parsed = _parse_retry_after(str(value))
            if parsed is not None:
                return parsed
    return None


def backoff_delay(
    attempt: int, *, base: float, cap: float, retry_after_s: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry ``attempt + 1`` (0-based ``attempt``): full jitter, at least Retry-After.

    With a ``Retry-After`` the wait is that plus up to ``base`` of jitter (so that many clients told
    the same time do not come back at once); otherwise ``uniform(0, min(cap, base * 2**attempt))``.
    """
    draw = (rng or random).random()
    if retry_after_s is not None:
        return retry_after_s + draw * base
    return draw * min(cap, base * 2.0**attempt)


@dataclass(slots=True)
class UsageMeter:
    """Counts model calls, tokens and cost as they happen; :meth:`usage` is the record of them.

    The one meter of every model caller (agent, user, judge, a run's call layer): answered calls,
    failed ones, and what the answers asked for (tool calls) or were (checks, regenerations).
    A plain slotted dataclass: it is added to on every call.

    Attributes:
        calls: Model calls that returned a reply.
        failed_calls: Model calls that failed (not counted in calls).
        tool_calls: Tool calls the model requested over all replies.
        checker_calls: Of the calls, checks of another reply (an LLM checker).
        retries: Of the calls, regenerations of a reply that had faults.
        client_retries: Failed tries the client retried before answering.
        prompt_tokens: Prompt tokens over all calls.
        completion_tokens: Completion tokens over all calls.
        cost: Cost in USD over all calls, as litellm prices them (0 if unknown).

    Example:
        >>> meter = UsageMeter()
        >>> meter.add(Completion(text="hi", prompt_tokens=12, completion_tokens=3, cost=0.5))
        >>> meter.fail()
        >>> meter.calls, meter.failed_calls, meter.usage().model_dump()
        (1, 1, {'prompt_tokens': 12, 'completion_tokens': 3, 'cost': 0.5, 'calls': 2})
    """

    calls: int = 0
    failed_calls: int = 0
    tool_calls: int = 0
    checker_calls: int = 0
    retries: int = 0
    client_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def add(self, completion: Completion, *, checker: bool = False, retry: bool = False) -> None:
        """Count one answered call."""
        self.calls += 1
        self.tool_calls += len(completion.tool_calls)
        self.checker_calls += int(checker)
        self.retries += int(retry)
        self.client_retries += completion.attempts - 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cost += completion.cost

    def include(self, usage: Usage) -> None:
        """Count a usage record made elsewhere (its calls as answered ones)."""
        self.calls += usage.calls
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost += usage.cost

    def fail(self, calls: int = 1) -> None:
        """Count ``calls`` failed calls."""
        self.failed_calls += calls

    @property
    def attempts(self) -> int:
        """Every try made: answered, failed, and retried by the client."""
        return self.calls + self.failed_calls + self.client_retries

    def usage(self) -> Usage:
        """What was counted, as the trajectory's usage record (calls: every try, failed and retried ones included)."""
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=self.cost,
            calls=self.attempts,
        )


def check_settings(
    model: str, *, temperature: float = 0.0, timeout: float | None = None, max_tokens: int | None = None
) -> None:
    """Raise :class:`ValueError` naming the first model-call setting out of range (every model caller checks here).

    Example:
        >>> check_settings("openai/gpt-4o-mini", temperature=2.5)
        Traceback (most recent call last):
        ...
        ValueError: temperature must be within [0, 2], got 2.5
    """
    if not model:
        raise ValueError("model must be a litellm model string such as 'openai/gpt-4o-mini'")
    if not 0.0 <= temperature <= 2.0:
        raise ValueError(f"temperature must be within [0, 2], got {temperature}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")


@runtime_checkable
class ModelClient(Protocol):
    """What calls a model: :class:`LiteLLMClient`, a run's :class:`envsim.calls.ModelCalls`, a fake.

    ``kwargs`` are litellm's (``temperature``, ``seed``, ``tools``, ``api_base``, ``mock_response``...).
    A failure raises :class:`ModelCallError` (typed: :func:`model_call_error`).
    """

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """One chat completion."""
        ...

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """One chat completion, awaited."""
        ...


class LiteLLMClient:
    """The model client that calls litellm (``litellm.completion`` / ``acompletion``), with no retries of its own."""

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """One chat completion (``kwargs`` go to ``litellm.completion``)."""
        lib = litellm()
        try:
            response = lib.completion(model=model, messages=messages, **kwargs)
        except Exception as error:
            raise model_call_error(model, error) from error
        return _to_completion(model, response)

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """The async form of :meth:`complete` (``litellm.acompletion``)."""
        lib = litellm()
        try:
            response = await lib.acompletion(model=model, messages=messages, **kwargs)
        except Exception as error:
            raise model_call_error(model, error) from error
        return _to_completion(model, response)


class RetryingClient:
    """A model client that retries another's retryable failures: the one retry policy of envsim.

    A :class:`~envsim.errors.RateLimited`, :class:`~envsim.errors.ModelTimeout` or
    :class:`~envsim.errors.ProviderError` (:func:`error_type`) is tried again, up to
    ``max_retries`` times, after :func:`backoff_delay` (exponential with full jitter, at least the
    provider's ``Retry-After``); anything else raises at once. An answer says how many tries it
    took (:attr:`Completion.attempts`); the failure that ends the retries carries them too
    (``attempts``). An awaited try is bounded by the call's ``timeout`` argument plus a second.

    Args:
        transport: The client that makes each try (default: :func:`default_client`).
        max_retries: Retries after the first try.
        backoff: Base of the exponential backoff, in seconds.
        max_backoff: Ceiling of one backoff (a ``Retry-After`` may exceed it).
        seed: Seed of the jitter.
        delay: Seconds to wait before the next try after ``error`` on try ``tries``
            (default: :meth:`delay`); ``on_retry`` is called before each wait.

    Example:
        >>> from envsim.testing.fake_client import FakeClient
        >>> client = RetryingClient(FakeClient([TimeoutError("slow"), "hello"]), backoff=0.0)
        >>> answer = client.complete("m", [])
        >>> answer.text, answer.attempts
        ('hello', 2)
    """

    def __init__(
        self,
        transport: ModelClient | None = None,
        *,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        seed: int | None = None,
        delay: Callable[[ModelCallError, int], float] | None = None,
        on_retry: Callable[[ModelCallError, int], None] | None = None,
    ) -> None:
        self.transport = transport if transport is not None else default_client()
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._delay = delay or self.delay
        self._on_retry = on_retry
        self._rng = random.Random(seed)

    def delay(self, error: ModelCallError, tries: int) -> float:
        """Seconds before the try after try ``tries`` failed with ``error`` (:func:`backoff_delay`)."""
        return backoff_delay(
            tries - 1, base=self.backoff, cap=self.max_backoff, retry_after_s=retry_after(error), rng=self._rng
        )

    def _retry(self, error: ModelCallError, tries: int) -> float | None:
        """The wait before another try, or None: give up (``error`` then carries the tries)."""
        if not error_type(error).retryable or tries > self.max_retries:
            error.attempts = tries
            return None
        if self._on_retry is not None:
            self._on_retry(error, tries)
        return self._delay(error, tries)

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """A call, retried (blocking sleeps between tries)."""
        tries = 0
        while True:
            tries += 1
            try:
                completion = self.transport.complete(model, messages, **kwargs)
            except ModelCallError as error:
                wait = self._retry(error, tries)
                if wait is None:
                    raise
                time.sleep(wait)
                continue
            return completion.tried(tries)

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """A call, retried: each try bounded by the call's ``timeout`` (plus a grace second), sleeps awaited."""
        timeout = kwargs.get("timeout")
        limit = float(timeout) + 1.0 if timeout is not None else None
        tries = 0
        while True:
            tries += 1
            try:
                async with asyncio.timeout(limit):  # in this task: no task of its own per try, as wait_for makes
                    completion = await self.transport.acomplete(model, messages, **kwargs)
            except (ModelCallError, TimeoutError) as raised:
                if isinstance(raised, ModelCallError):
                    error = raised
                else:
                    error = ModelTimeout(model, TimeoutError(f"no answer within {limit:g}s"))
                wait = self._retry(error, tries)
                if wait is None:
                    if error is raised:
                        raise
                    raise error from raised
                await asyncio.sleep(wait)
                continue
            return completion.tried(tries)


_DEFAULT = LiteLLMClient()


def default_client() -> ModelClient:
    """The client of a model caller given none: litellm, called directly."""
    return _DEFAULT


def complete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """One chat completion through :func:`default_client` (``kwargs`` go to ``litellm.completion``)."""
    return _DEFAULT.complete(model, messages, **kwargs)


async def acomplete(model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
    """The async form of :func:`complete` (``litellm.acompletion``)."""
    return await _DEFAULT.acomplete(model, messages, **kwargs)
