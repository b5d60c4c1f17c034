"""Which provider failures are retried, and how long the runner waits (litellm's real exception classes)."""

from __future__ import annotations

import email.utils
import random
import time

import httpx
import pytest

from envsim.batch.retry import backoff_delay, describe, is_retryable, retry_after, status_code
from envsim.llm import ModelCallError, litellm


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://local/v1/chat/completions"))


def test_litellm_errors_are_classified() -> None:
    lib = litellm()
    retryable = [
        lib.RateLimitError("slow down", "openai", "m", response=_response(429)),
        lib.InternalServerError("oops", "openai", "m", response=_response(500)),
        lib.ServiceUnavailableError("down", "openai", "m", response=_response(503)),
        lib.Timeout("too slow", "m", "openai"),
        lib.APIConnectionError("refused", "openai", "m"),
    ]
    final = [
        lib.BadRequestError("bad", "m", "openai", response=_response(400)),
        lib.AuthenticationError("who are you", "openai", "m", response=_response(401)),
        lib.NotFoundError("no such model", "m", "openai", response=_response(404)),
    ]
    for error in retryable:
        assert is_retryable(ModelCallError("m", error)), type(error).__name__
    for error in final:
        assert not is_retryable(ModelCallError("m", error)), type(error).__name__
    assert is_retryable(TimeoutError()) and not is_retryable(ValueError("x"))
    assert status_code(ModelCallError("m", retryable[0])) == 429


def test_retry_after_from_the_response_headers() -> None:
    lib = litellm()
    limited = lib.RateLimitError("slow down", "openai", "m", response=_response(429, {"Retry-After": "7"}))
    assert retry_after(ModelCallError("m", limited)) == 7.0
    millis = lib.RateLimitError("slow down", "openai", "m", response=_response(429, {"retry-after-ms": "250"}))
    assert retry_after(millis) == 0.25
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    dated = lib.RateLimitError("slow down", "openai", "m", response=_response(429, {"retry-after": when}))
    assert 25 <= (retry_after(dated) or 0) <= 31
    assert retry_after(lib.RateLimitError("slow down", "openai", "m", response=_response(429))) is None
    assert "RateLimitError" in describe(ModelCallError("m", limited))


def test_backoff_is_jittered_exponential_capped_and_honours_retry_after() -> None:
    rng = random.Random(1)
    for attempt in range(8):
        delays = [backoff_delay(attempt, base=0.5, cap=4.0, rng=rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= min(4.0, 0.5 * 2**attempt)
        assert max(delays) > 0.5 * min(4.0, 0.5 * 2**attempt)  # spread over the window, not constant
    told = [backoff_delay(0, base=0.5, cap=4.0, retry_after_s=10.0, rng=rng) for _ in range(100)]
    assert all(10.0 <= d <= 10.5 for d in told)


@pytest.mark.parametrize("value", ["soon", ""])
def test_unreadable_retry_after_is_ignored(value: str) -> None:
    class Limited(Exception):
        status_code = 429

        def __init__(self) -> None:
            super().__init__("rate limited")
            self.headers = {"retry-after": value}

    assert retry_after(Limited()) is None and is_retryable(Limited())
