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

from envsim.errors import ReplayedFailure
from envsim.llm import backoff_delay, describe, error_type, retry_after, status_code

__all__ = ["ReplayedFailure", "backoff_delay", "describe", "is_retryable", "retry_after", "status_code"]


def is_retryable(error: BaseException) -> bool:
    """Whether a failed call may succeed if tried again: a :class:`~envsim.errors.RateLimited`,
    :class:`~envsim.errors.ModelTimeout` or :class:`~envsim.errors.ProviderError` (:func:`envsim.llm.error_type`)."""
    return error_type(error).retryable
