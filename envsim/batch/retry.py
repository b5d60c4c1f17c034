"""Which model-call failures are worth retrying, and how long to wait before the next try.

A failure is **retryable** when it is a rate limit (429), a server error (5xx), a timeout
(408, or the client's own) or a failed connection: the typed subclasses of
:class:`~envsim.errors.ModelCallError` the model client raises (:func:`envsim.llm.error_type`);
anything else (a bad request, an authentication error, an unknown model) would fail the same way
again.

The wait is exponential backoff with full jitter (``uniform(0, min(cap, base * 2**attempt))``),
except that a ``Retry-After`` (or ``retry-after-ms``) header the provider sent is honoured:
the wait is then at least what it asks for.

Example:
    >>> import random
    >>> class RateLimited(Exception):
    ...     status_code = 429
    ...     headers = {"retry-after": "2"}
    >>> is_retryable(RateLimited()), retry_after(RateLimited())
    (True, 2.0)
    >>> 2.0 <= backoff_delay(0, base=0.5, cap=30.0, retry_after_s=2.0, rng=random.Random(0)) <= 2.5
    True
    >>> is_retryable(ValueError("bad request"))
    False
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from typing import Any

from envsim.llm import ModelCallError, error_type, status_code

__all__ = ["ReplayedFailure", "backoff_delay", "describe", "is_retryable", "retry_after", "status_code"]


class ReplayedFailure(Exception):
    """A recorded call failure raised again by a replay; its message is the recorded :func:`describe` text."""


def _cause(error: BaseException) -> BaseException:
    return error.error if isinstance(error, ModelCallError) else error


def is_retryable(error: BaseException) -> bool:
    """Whether a failed call may succeed if tried again: a :class:`~envsim.errors.RateLimited`,
    :class:`~envsim.errors.ModelTimeout` or :class:`~envsim.errors.ProviderError` (:func:`envsim.llm.error_type`)."""
    return error_type(error).retryable


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
    for headers in _headers(_cause(error)):
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


def describe(error: BaseException) -> str:
    """A one-line description of a failure: the provider's exception class and message."""
    cause = _cause(error)
    if isinstance(cause, ReplayedFailure):
        return str(cause)  # as it was described when recorded
    text = " ".join(str(cause).split())
    model = f"{error.model}: " if isinstance(error, ModelCallError) else ""
    return f"{model}{type(cause).__name__}: {text[:300]}"
