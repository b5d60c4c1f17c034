"""Exceptions raised by envsim.

Configuration mistakes raise; what happens inside an episode never does. A failed tool
call, a malformed action or a rule violation becomes an observation for the agent, and
only :class:`ToolFailure` subclasses travel (inside a toolkit) to mark such a result.

The tree::

    EnvsimError
    ├── ScenarioError            a scenario file is invalid (carries located issues)
    ├── UnknownNameError         an unknown scenario id, toolkit, fixture or persona
    ├── TemplateError            scenario text that is not an allowed template, or renders too much
    ├── ModelCallError           a model call failed (bad request, authentication, unknown model...)
    │   ├── RateLimited          the provider said slow down (429): retried, honouring Retry-After
    │   ├── ModelTimeout         no answer in time (the client's timeout, 408): retried
    │   └── ProviderError        the provider failed (5xx, a refused or dropped connection): retried
    └── ToolFailure              raised by a tool body; turned into an error observation
        ├── RecordNotFound       the record the agent named does not exist
        └── RuleViolation        a business rule forbids the operation
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


class EnvsimError(Exception):
    """Base class of every exception envsim raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a scenario file.

    Example:
        >>> str(Problem(Path("a.yaml"), 3, 5, "user.goal", "field required"))
        'a.yaml:3:5: user.goal: field required'
    """

    path: Path | None
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}" if self.path else f"<string>:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioError(EnvsimError):
    """A scenario (or persona) file is invalid; ``problems`` lists every located issue."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UnknownNameError(EnvsimError, KeyError):
    """A name (scenario id, toolkit, fixture, persona) that is not registered.

    The message carries a "did you mean" suggestion when one is close.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TemplateError(EnvsimError):
    """Scenario text (a template from a scenario file) that may not be rendered.

    A construct outside the allowed subset, a syntax error, an undefined name or blocked
    attribute, or a rendering over its size or time bound (see :mod:`envsim.prompts`).
    ``line`` and ``column`` are 1-based, within the template.

    Example:
        >>> str(TemplateError("calls are not allowed", line=2, column=7))
        'template line 2, column 7: calls are not allowed'
    """

    def __init__(self, message: str, *, line: int = 1, column: int = 1) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(f"template line {line}, column {column}: {message}")


class ModelCallError(EnvsimError):
    """A model call failed: ``error`` is the provider's (or the client's) exception.

    The base class is a failure that would happen again (a bad request, an authentication error,
    an unknown model); its subclasses are those worth another try (:attr:`retryable`), which the
    retry policy of :class:`envsim.batch.cache.ModelCalls` branches on.

    Example:
        >>> str(RateLimited("openai/m", RuntimeError("slow down"))), RateLimited.retryable
        ('openai/m: RuntimeError: slow down', True)
    """

    retryable: ClassVar[bool] = False

    def __init__(self, model: str, error: BaseException) -> None:
        self.model = model
        self.error = error
        self.attempts = 1
        """Tries made before giving up (more than 1 when a client retried)."""
        super().__init__(f"{model}: {type(error).__name__}: {error}")


class RateLimited(ModelCallError):
    """The provider refused the call for now (rate limit, 429); it may name a wait (``Retry-After``)."""

    retryable = True


class ModelTimeout(ModelCallError):
    """No answer within the call's timeout (the client's own, or a 408)."""

    retryable = True


class ProviderError(ModelCallError):
    """The provider failed on its side (5xx, overloaded, a refused or dropped connection)."""

    retryable = True


class ToolFailure(EnvsimError):
    """Raised inside a tool body to return an error observation to the agent.

    ``kind`` becomes the ``error.type`` field the agent sees.
    """

    kind = "tool_error"


class RecordNotFound(ToolFailure):
    """The record the agent asked for does not exist."""

    kind = "not_found"


class RuleViolation(ToolFailure):
    """The operation breaks a business rule (refunding a refund, cancelling a shipped order)."""

    kind = "rule_violation"
