"""Exceptions raised by envsim.

Configuration mistakes raise; what happens inside an episode never does. A failed tool
call, a malformed action or a rule violation becomes an observation for the agent, and
only :class:`ToolFailure` subclasses travel (inside a toolkit) to mark such a result.

The tree::

    EnvsimError
    ├── ScenarioError            a scenario file is invalid (carries located issues)
    ├── UnknownNameError         an unknown scenario id, toolkit, fixture or persona
    ├── TemplateError            scenario text that is not an allowed template, or renders too much
    └── ToolFailure              raised by a tool body; turned into an error observation
        ├── RecordNotFound       the record the agent named does not exist
        └── RuleViolation        a business rule forbids the operation
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
