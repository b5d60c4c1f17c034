"""An in-process model client that answers from a script: for unit tests of whatever calls models.

:class:`FakeClient` is a real :class:`envsim.llm.ModelClient`: pass it where an LLM agent, an LLM
user or a judge takes ``client=``, and it answers each call with the next scripted reply (a text,
a :class:`~envsim.llm.Completion`, or an exception to raise: a
:class:`~envsim.errors.ModelCallError` as it is, anything else typed as the litellm client types
it), recording every request. No litellm, no network, no server. End-to-end tests keep going
through litellm (``mock_response``, or the local server of :mod:`envsim.testing.server`).

Example:
    >>> from envsim.errors import RateLimited
    >>> client = FakeClient(["hello", TimeoutError("slow")])
    >>> client.complete("m", [{"role": "user", "content": "hi"}], temperature=0).text
    'hello'
    >>> try:
    ...     client.complete("m", [{"role": "user", "content": "again"}])
    ... except ModelTimeout as error:
    ...     print(type(error).__name__, error.model)
    ModelTimeout m
    >>> [r.messages[-1]["content"] for r in client.requests], client.requests[0].kwargs
    (['hi', 'again'], {'temperature': 0})
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from envsim.errors import ModelCallError, ModelTimeout
from envsim.llm import Completion, model_call_error

Reply = str | Completion | BaseException | Callable[[str, list[dict[str, Any]], dict[str, Any]], "str | Completion"]
"""A scripted reply: a text, a completion, an exception to raise, or a function of (model, messages, kwargs)."""

__all__ = ["FakeClient", "FakeRequest", "ModelTimeout", "Reply"]


@dataclass(frozen=True)
class FakeRequest:
    """One call a :class:`FakeClient` received."""

    model: str
    messages: list[dict[str, Any]]
    kwargs: dict[str, Any] = field(default_factory=dict)


class FakeClient:
    """A model client answering from ``replies`` in order (see the module docstring).

    Args:
        replies: The scripted replies, one per call.
        default: The reply once the script is spent (``None``: a call then raises :class:`IndexError`).
    """

    def __init__(self, replies: Iterable[Reply] = (), *, default: Reply | None = None) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.default = default
        self.requests: list[FakeRequest] = []

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """The next scripted reply to this call."""
        self.requests.append(FakeRequest(model, [dict(m) for m in messages], dict(kwargs)))
        if self.replies:
            reply = self.replies.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise IndexError(f"FakeClient: no scripted reply left for call {len(self.requests)} to {model}")
        if isinstance(reply, ModelCallError):
            raise reply
        if isinstance(reply, BaseException):
            raise model_call_error(model, reply)
        if callable(reply):
            reply = reply(model, messages, kwargs)
        if isinstance(reply, str):
            return Completion(text=reply, model=model, raw_message={"role": "assistant", "content": reply})
        return reply

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """The async form of :meth:`complete`."""
        return self.complete(model, messages, **kwargs)
