"""User-defined reward functions, named in scenario files as ``"module:function"``.

Scenario files are untrusted input, and importing a module runs its code, so a reference is
loaded only when its module is **allowed**: it equals, or lies inside, a prefix given by

- the environment variable ``ENVSIM_REWARD_MODULES`` (comma-separated prefixes), or
- :func:`allow_reward_module` (in the process that loads the scenario).

The module is imported only after that check. The function must have the one reward
signature, ``(trajectory, context) -> ComponentScore``: exactly two positional parameters,
no defaults, no ``*args``/``**kwargs`` (nothing is injected by name). A scenario names each
custom component in ``reward.gates``, ``reward.components`` or ``reward.metrics`` (one that
it names nowhere would never be called, and is a validation error).

A custom function is user code, and runs **guarded** (:class:`GuardedReward`): if it raises or
returns anything but a :class:`~envsim.reward.ComponentScore` whose score is in [0, 1] (a bare
number, NaN, a string...), the rubric records why in the component's explanation and the
episode's outcome is ``reward_error``; nothing escapes ``env.step``. A custom judge that could
not judge returns :meth:`ComponentScore.could_not_judge <envsim.reward.ComponentScore.could_not_judge>`
(outcome ``judge_error``), like the built-in judge.

Example:
    >>> allow_reward_module("mycompany.rewards")
    >>> is_allowed("mycompany.rewards.retail"), is_allowed("mycompany.rewardsx"), is_allowed("os")
    (True, False, False)
    >>> revoke_reward_module("mycompany.rewards")
    >>> load_reward_function("os:system")
    Traceback (most recent call last):
    ...
    envsim.errors.RewardModuleError: module 'os' is not allowed to provide reward functions; allow it with \
ENVSIM_REWARD_MODULES=os or envsim.reward.allow_reward_module('os')
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import os
import re
from dataclasses import dataclass
from typing import Any, cast

from envsim.errors import RewardFunctionError, RewardModuleError
from envsim.reward.base import ComponentScore, RewardContext, RewardFn
from envsim.trajectory import Trajectory, Usage

ENV_VAR = "ENVSIM_REWARD_MODULES"
"""Environment variable listing allowed module prefixes, comma-separated."""

_ALLOWED: set[str] = set()
_REFERENCE = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<function>[A-Za-z_]\w*)$")
_MODULE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


_MAX_MESSAGE = 300
"""Characters of an exception's message kept in a failed component's explanation."""


def allow_reward_module(prefix: str) -> None:
    """Allow reward functions from the module ``prefix`` and the modules inside it."""
    if not _MODULE.match(prefix):
        raise ValueError(f"not a module name: {prefix!r}")
    _ALLOWED.add(prefix)


def revoke_reward_module(prefix: str) -> None:
    """Undo :func:`allow_reward_module` (prefixes from ``ENVSIM_REWARD_MODULES`` stay allowed)."""
    _ALLOWED.discard(prefix)


def allowed_reward_modules() -> tuple[str, ...]:
    """Every allowed prefix: those of ``ENVSIM_REWARD_MODULES`` and of :func:`allow_reward_module`."""
    from_env = {p.strip() for p in os.environ.get(ENV_VAR, "").split(",") if p.strip()}
    return tuple(sorted(from_env | _ALLOWED))


def is_allowed(module: str) -> bool:
    """Whether ``module`` equals an allowed prefix or lies inside one (``a.b`` is inside ``a``, ``ab`` is not)."""
    return any(module == p or module.startswith(p + ".") for p in allowed_reward_modules())


def parse_reference(reference: str) -> tuple[str, str]:
    """``(module, function)`` of a ``"module:function"`` reference.

    Example:
        >>> parse_reference("acme.rewards:refund_policy")
        ('acme.rewards', 'refund_policy')
    """
    match = _REFERENCE.match(reference)
    if match is None:
        raise RewardModuleError(f"must be a 'module:function' reference (e.g. acme.rewards:policy), got {reference!r}")
    return match["module"], match["function"]


def check_signature(function: Any, reference: str) -> RewardFn:
    """``function`` if it takes exactly ``(trajectory, context)``, else :class:`RewardModuleError`."""
    if not callable(function):
        raise RewardModuleError(f"{reference} is not a function")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise RewardModuleError(f"{reference}: cannot read its signature") from None
    params = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) != 2 or any(p.kind not in positional or p.default is not p.empty for p in params):
        raise RewardModuleError(
            f"reward function {reference} must take exactly (trajectory, context) and return a ComponentScore; "
            f"it takes {signature}"
        )
    return cast(RewardFn, function)


def load_reward_function(reference: str) -> RewardFn:
    """The reward function a ``"module:function"`` reference names, if its module is allowed.

    Raises :class:`RewardModuleError` (before importing anything when the module is not allowed).
    """
    module_name, function_name = parse_reference(reference)
    if not is_allowed(module_name):
        raise RewardModuleError(
            f"module {module_name!r} is not allowed to provide reward functions; allow it with "
            f"{ENV_VAR}={module_name} or envsim.reward.allow_reward_module({module_name!r})"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as err:
        raise RewardModuleError(f"cannot import reward module {module_name!r}: {type(err).__name__}: {err}") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise RewardModuleError(f"module {module_name!r} has no function {function_name!r}")
    return check_signature(function, reference)


def _short(text: Any, method: Any = repr) -> str:
    """``method(text)`` (``repr`` by default), cut to :data:`_MAX_MESSAGE` characters; never raises."""
    try:
        shown = str(method(text))
    except Exception:  # an object whose repr or str raises
        return f"<{type(text).__name__} that cannot be shown>"
    return shown if len(shown) <= _MAX_MESSAGE else shown[:_MAX_MESSAGE] + "..."


def _describe(value: Any) -> str:
    """A short description of what a reward function returned."""
    return _short(value)


def checked_score(result: Any, reference: str) -> ComponentScore:
    """``result`` as a valid :class:`ComponentScore`, else :class:`RewardFunctionError` saying what is wrong.

    Example:
        >>> checked_score(ComponentScore(0.5, "half"), "acme:f").score
        0.5
        >>> checked_score(float("nan"), "acme:f")
        Traceback (most recent call last):
        ...
        envsim.errors.RewardFunctionError: acme:f returned nan, not a ComponentScore(score, explanation)
    """
    if not isinstance(result, ComponentScore):
        raise RewardFunctionError(f"{reference} returned {_describe(result)}, not a ComponentScore(score, explanation)")
    score = result.score
    if isinstance(score, bool) or not isinstance(score, numbers.Real):
        raise RewardFunctionError(f"{reference} returned a score that is not a number: {_describe(score)}")
    value = float(score)
    if not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise RewardFunctionError(f"{reference} returned a score outside [0, 1]: {_describe(score)}")
    if not isinstance(result.explanation, str):
        raise RewardFunctionError(f"{reference} returned an explanation that is not a string: {_describe(result)}")
    if result.usage is not None and not isinstance(result.usage, Usage):
        raise RewardFunctionError(f"{reference} returned a usage that is not a Usage: {_describe(result.usage)}")
    return ComponentScore(value, result.explanation, usage=result.usage)


@dataclass(frozen=True)
class GuardedReward:
    """A custom reward function that fails only with :class:`RewardFunctionError` (see the module docstring).

    Example:
        >>> guarded = GuardedReward("acme:ratio", lambda trajectory, context: ComponentScore(1 / 0, "?"))
        >>> guarded(None, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        envsim.errors.RewardFunctionError: acme:ratio raised ZeroDivisionError: division by zero
    """

    reference: str
    function: RewardFn

    def __call__(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        """The function's score, checked."""
        try:
            result = self.function(trajectory, context)
        except Exception as err:  # user code: any failure is this reward's failure, not the episode's
            message = _short(err, str)
            raise RewardFunctionError(f"{self.reference} raised {type(err).__name__}: {message}") from err
        return checked_score(result, self.reference)
