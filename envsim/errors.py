"""Exceptions raised by envsim, all in this module.

Configuration mistakes raise; what happens inside an episode never does. A failed tool
call, a malformed action or a rule violation becomes an observation for the agent, and
only :class:`ToolFailure` subclasses travel (inside a toolkit) to mark such a result.

Every exception is an :class:`EnvsimError`; one that is also a builtin exception (so that
``except KeyError`` or ``except ValueError`` still catches it) names that builtin in brackets.
The modules that raise them import them from here (and can be imported from there too). The tree::

    EnvsimError
    ├── ScenarioError                  a scenario file is invalid (carries located issues)
    ├── UnknownNameError [KeyError]    an unknown scenario id, toolkit, fixture or persona
    │   └── ToolkitLoadError           a registered toolkit that cannot be used (import fails, not a Toolkit, clash)
    ├── OverrideError [ValueError]     a world override or inline record that does not fit its table
    ├── TemplateError                  scenario text that is not an allowed template, or renders too much
    │   └── RenderError                a template of a scenario family's body failed to render
    ├── NoMatch                        a scenario family draw whose required binding matched nothing
    ├── SuiteError                     not a suite folder, an unknown or empty split, an unreadable suite.json
    ├── TranscriptFormatError          an input transcript file is malformed (file, line, field)
    ├── RewardModuleError              a custom reward function reference that cannot be used
    ├── RewardFunctionError            a custom reward function raised or returned no valid score
    ├── CheckerError                   the LLM fault checker's answer was not a valid verdict
    ├── JudgeError                     an LLM judge gave no valid verdict after its attempts (its reason)
    ├── ModelCallError                 a model call failed (bad request, authentication, unknown model...)
    │   ├── RateLimited                the provider said slow down (429): retried, honouring Retry-After
    │   ├── ModelTimeout               no answer in time (the client's timeout, 408): retried
    │   └── ProviderError              the provider failed (5xx, a refused or dropped connection): retried
    ├── ToolFailure                    raised by a tool body; turned into an error observation
    │   ├── RecordNotFound             the record the agent named does not exist
    │   └── RuleViolation              a business rule forbids the operation
    ├── ReplayedFailure                a recorded model-call failure raised again by a replay (inside a ModelCallError)
    ├── CallCacheMiss                  --replay met a model call that was never recorded
    ├── RunStoreError                  a run directory that cannot be used (not a run, already one, in use, unreadable)
    ├── RayBackendError                the Ray backend cannot run this job (Ray missing, an option, a failed worker)
    ├── DatasetError                   a dataset cannot be made from stored runs
    ├── ReportError                    a report cannot be made (an unreadable run, an unwritable output)
    ├── ServeError                     a served session was asked something it cannot do
    ├── ServerError                    the local test model server did not start
    ├── SplitLeakError                 a scenario template is on both sides of a fidelity split
    ├── EnvironmentFactoryError        a scenario cannot become a TRL environment
    └── ChatTemplateError              a chat template that cannot be split into per-turn segments

Warnings (the work goes on; silence them like any warning)::

    UserWarning
    └── ScenarioWarning                a scenario file was left out of the registry
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal


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


class ToolkitLoadError(UnknownNameError):
    """A registered toolkit name that cannot be used: its class does not import, is not a
    :class:`~envsim.tools.Toolkit`, or several installed packages declare the name."""


class OverrideError(EnvsimError, ValueError):
    """An override or inline record that does not fit its table; ``loc`` points at it."""

    def __init__(self, loc: tuple[str | int, ...], message: str, *, at_key: bool = False) -> None:
        self.loc = loc
        self.at_key = at_key
        super().__init__(message)


class RenderError(TemplateError):
    """A template of a scenario family's body that failed to render; ``loc`` is its path inside the body."""

    def __init__(self, loc: tuple[str | int, ...], message: str, *, line: int = 1, column: int = 1) -> None:
        super().__init__(message, line=line, column=column)
        self.loc = loc


class NoMatch(EnvsimError):
    """A scenario family draw in which a required binding matched nothing (``binding`` names it)."""

    def __init__(self, binding: str) -> None:
        super().__init__(binding)
        self.binding = binding


class SuiteError(EnvsimError):
    """A folder is not a suite, a split is unknown or empty, or ``suite.json`` is unreadable."""


class TranscriptFormatError(EnvsimError):
    """An input transcript file is malformed; the message names the file and, when known, the line
    (and column), and the field: ``file:line:col: field: message``.

    Example:
        >>> str(TranscriptFormatError("a.jsonl", 4, "unknown role 'bot'", column=9, field="role"))
        "a.jsonl:4:9: role: unknown role 'bot'"
    """

    def __init__(
        self, path: Path | str, line: int | None, message: str, *, column: int | None = None, field: str = ""
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        if line is not None and column is not None:
            where += f":{column}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class RewardModuleError(EnvsimError):
    """A reward function reference that cannot be used (malformed, not allowed, missing, wrong signature)."""


class RewardFunctionError(EnvsimError):
    """A custom reward function failed on a trajectory: it raised, or returned no valid ``ComponentScore``.

    The rubric catches it: the component's explanation says why, and the outcome is ``reward_error``.
    """


class CheckerError(EnvsimError):
    """The LLM checker's answer was not a valid :class:`~envsim.user.faults.CheckerVerdict`."""


JudgeErrorReason = Literal["malformed", "refusal", "timeout", "provider_error"]
"""Why a judge gave no verdict."""


class JudgeError(EnvsimError):
    """The judge gave no valid verdict after its attempts; ``reason`` says why.

    Carries what the failed attempts cost, so that judge KPIs count them too
    (:func:`envsim.reward.judge.verdicts.could_not_judge` makes it a component's score).
    """

    def __init__(
        self,
        reason: JudgeErrorReason,
        message: str,
        *,
        model: str,
        attempts: int,
        cost: float = 0.0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        self.reason: JudgeErrorReason = reason
        self.message = message
        self.model = model
        self.attempts = attempts
        self.cost = cost
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        super().__init__(f"judge_error ({reason}) from {model} after {attempts} attempt(s): {message}")


class ReplayedFailure(EnvsimError):
    """A recorded call failure raised again by a replay (as the ``error`` of a :class:`ModelCallError`); its
    message is the recorded :func:`~envsim.batch.retry.describe` text."""


class CallCacheMiss(EnvsimError):
    """``--replay`` met a model call that was never recorded (the run cannot be reproduced from records)."""


class RunStoreError(EnvsimError):
    """A run directory that cannot be used: not a run, already a run, in use, unreadable."""


class RayBackendError(EnvsimError):
    """The Ray backend cannot run this job (Ray missing, an unsupported option, a failed worker)."""


class DatasetError(EnvsimError):
    """A dataset cannot be made: bad selection, unknown format, nothing to export, unreadable run."""


class ReportError(EnvsimError):
    """A report cannot be made (an unreadable run, an unwritable output)."""


class ServeError(EnvsimError):
    """A session was asked something it cannot do (a step before reset, an unknown reset key, ...)."""


class ServerError(EnvsimError):
    """The test server (:mod:`envsim.testing.server`) did not start (its stderr is in the message)."""


class SplitLeakError(EnvsimError):
    """A scenario template is on both sides of a fidelity split."""


class EnvironmentFactoryError(EnvsimError):
    """A scenario cannot become a TRL environment (a tool name clashes), or a row names another scenario."""


class ChatTemplateError(EnvsimError):
    """The chat template cannot be split into per-turn segments (it is not prefix-preserving)."""


# -- warnings ------------------------------------------------------------------------------------


class ScenarioWarning(UserWarning):
    """A scenario file was left out of the registry; the message says which file and why.

    Its message starts with the file's ``path:line:col``. Silence it like any warning, e.g.
    ``warnings.filterwarnings("ignore", category=envsim.ScenarioWarning)``.
    """
