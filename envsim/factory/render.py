"""Rendering a family's ``scenario:`` body for one instance: every string is scenario text.

A string that is exactly one ``{{ expr }}`` renders to the expression's native value (a number,
a list, a mapping: ``transaction_ids: "{{ fraud_txs | ids }}"``); any other string with a
``{{`` or ``{%`` renders to text with :func:`envsim.prompts.render_scenario_text`; the rest is
kept as written. Both go through the same sandbox and the same allowlist of constructs
(:func:`envsim.prompts.check_scenario_template`): a native expression is checked as the template
``{{ expr }}`` is, then compiled with the scenario environment's ``compile_expression``.

Example:
    >>> render_value("{{ order.items | length }}", as_context({"order": {"items": [1, 2]}}))
    2
    >>> render_value("Order {{ order.id }}", {"order": {"id": "#W1"}})
    'Order #W1'
    >>> render_body({"a": ["{{ n }}", "x"]}, {"n": [1]})
    {'a': [[1], 'x']}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from jinja2.runtime import Undefined

from envsim.errors import RenderError, TemplateError
from envsim.prompts import MAX_OUTPUT_CHARS, check_scenario_template, render_scenario_text, scenario_environment

_SINGLE = re.compile(r"^\{\{((?:(?!\{\{|\}\}|\{%|%\}).)*)\}\}$", re.DOTALL)
"""A string that is exactly one output expression (nothing before or after it)."""


class Record(dict[str, Any]):
    """A record as templates see it: ``order.items`` is the record's ``items`` field, not ``dict.items``.

    Jinja2 reads ``x.name`` as an attribute first; a plain dict's methods (``items``, ``keys``,
    ``values``, ``get``...) would hide the fields of the same name.

    Example:
        >>> Record({"items": [1, 2]}).items
        [1, 2]
    """

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return object.__getattribute__(self, name)


def as_context(value: Any) -> Any:
    """``value`` with every mapping made a :class:`Record` (for rendering)."""
    if isinstance(value, dict):
        return Record({str(k): as_context(v) for k, v in dict.items(value)})
    if isinstance(value, list | tuple):
        return [as_context(v) for v in value]
    return value


def is_template(text: str) -> bool:
    """Whether ``text`` holds template syntax (else it is kept as written)."""
    return "{{" in text or "{%" in text or "{#" in text


def native_expression(text: str) -> str | None:
    """The expression of a string that is exactly one ``{{ expr }}``, else None."""
    match = _SINGLE.match(text)
    return match.group(1) if match else None


@lru_cache(maxsize=4096)
def _expression(text: str) -> Callable[..., Any]:
    problems = check_scenario_template(text)
    if problems:
        first = problems[0]
        raise TemplateError(first.message, line=first.line, column=first.column)
    source = native_expression(text)
    assert source is not None
    return scenario_environment().compile_expression(source, undefined_to_none=False)


def _plain(value: Any) -> Any:
    """A copy of ``value`` made of plain YAML data (tuples become lists); other objects are refused."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in dict.items(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TemplateError(f"the expression gives a {type(value).__name__}, which is not data")


_DOTTED = re.compile(r"\{\{\s*((?:[A-Za-z][A-Za-z0-9_]*)(?:\.[A-Za-z][A-Za-z0-9_]*)*(?:\s*\|\s*[a-z]+)*)\s*\}\}")
"""An output expression that is a plain dotted name (``{{ order.id }}``), perhaps through filters without
arguments (``{{ item.unit_price_cents | dollars }}``): no indexes, calls, operators or ``_`` names."""

_FAST_FILTERS = frozenset(
    {"capitalize", "dollars", "first", "ids", "last", "length", "lower", "title", "trim", "upper"}
)
"""The filters the fast path applies (each as the sandbox does: :meth:`~jinja2.Environment.call_filter`)."""

_Step = tuple[tuple[str, ...], tuple[str, ...]]
_Plan = tuple[tuple[str, ...], tuple[_Step, ...]] | None


def _step(expression: str) -> _Step | None:
    path, *filters = (part.strip() for part in expression.split("|"))
    if any(f not in _FAST_FILTERS for f in filters):
        return None
    return tuple(path.split(".")), tuple(filters)


@lru_cache(maxsize=4096)
def _dotted_plan(text: str) -> _Plan:
    """For a template made only of text and plain dotted names: its text parts and name paths, else None.

    Such a template renders as Jinja2 renders it (each value's ``str``) without the sandbox's
    machinery; it is a subset of what :func:`~envsim.prompts.check_scenario_template` allows.
    """
    parts = _DOTTED.split(text)
    texts, expressions = parts[0::2], parts[1::2]
    if any(is_template(t) or "}}" in t or "%}" in t or "#}" in t for t in texts):
        return None
    steps = [_step(e) for e in expressions]
    if any(step is None for step in steps):
        return None
    return tuple(texts), tuple(step for step in steps if step is not None)


_ABSENT: Any = object()


def _follow(context: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = context.get(path[0], _ABSENT)
    for name in path[1:]:
        if not isinstance(value, dict):
            return _ABSENT
        value = dict.get(value, name, _ABSENT)
    return value


def _fast(text: str, context: dict[str, Any], native: bool) -> Any:
    """``text`` rendered by the dotted-name fast path, or ``_ABSENT`` when it does not apply."""
    plan = _dotted_plan(text)
    if plan is None:
        return _ABSENT
    texts, steps = plan
    values = [_follow(context, path) for path, _ in steps]
    if any(v is _ABSENT for v in values):
        return _ABSENT  # the sandbox says what is undefined
    if any(filters for _, filters in steps):
        environment = scenario_environment()
        try:
            for i, (_, filters) in enumerate(steps):
                for name in filters:
                    values[i] = environment.call_filter(name, values[i], (), {})
        except Exception:
            return _ABSENT  # the sandbox says what went wrong
    if native and len(steps) == 1 and texts == ("", ""):
        return _plain(values[0])
    out = texts[0] + "".join(str(v) + t for v, t in zip(values, texts[1:], strict=True))
    return out if len(out) <= MAX_OUTPUT_CHARS else _ABSENT


def render_value(text: str, context: dict[str, Any]) -> Any:
    """One string of a family body rendered over ``context`` (see the module docstring)."""
    if not is_template(text):
        return text
    native = native_expression(text) is not None
    fast = _fast(text, context, native)
    if fast is not _ABSENT:
        return fast
    if not native:
        return render_scenario_text(text, **context)
    expression = _expression(text)
    try:
        value = expression(**context)
    except TemplateError:
        raise
    except Exception as err:  # an undefined attribute, a filter's TypeError: all typed
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        raise TemplateError(message) from None
    if isinstance(value, Undefined):
        try:
            str(value)
        except Exception as err:
            raise TemplateError(getattr(err, "message", None) or str(err)) from None
        raise TemplateError("the expression is undefined")  # pragma: no cover - StrictUndefined raises above
    return _plain(value)


def live_containers(body: Any) -> frozenset[int]:
    """The ids of the mappings and lists of ``body`` that hold a template somewhere inside (for
    :func:`render_body`, which shares every other part of ``body`` as it is)."""
    found: set[int] = set()

    def walk(node: Any) -> bool:
        if isinstance(node, dict | list):
            inner = [walk(v) for v in (node.values() if isinstance(node, dict) else node)]
            if any(inner):
                found.add(id(node))
                return True
            return False
        return isinstance(node, str) and is_template(node)

    walk(body)
    return frozenset(found)


def render_body(
    body: Any, context: dict[str, Any], loc: tuple[str | int, ...] = (), live: frozenset[int] | None = None
) -> Any:
    """``body`` with every string rendered over ``context``; raises :class:`RenderError`.

    With ``live`` (:func:`live_containers` of the body), a mapping or list that holds no template is
    returned as it is, not copied (never modify the result's parts, then).
    """
    if isinstance(body, dict):
        if live is not None and id(body) not in live:
            return body
        return {key: render_body(value, context, (*loc, key), live) for key, value in body.items()}
    if isinstance(body, list):
        if live is not None and id(body) not in live:
            return body
        return [render_body(value, context, (*loc, i), live) for i, value in enumerate(body)]
    if isinstance(body, str):
        try:
            return render_value(body, context)
        except RenderError:
            raise
        except TemplateError as err:
            message = err.message.replace(f"'{Record.__module__}.{Record.__name__} object'", "the record")
            raise RenderError(loc, message, line=err.line, column=err.column) from None
    return body


def template_strings(body: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every templated string of ``body`` with its path (for static checks)."""
    if isinstance(body, dict):
        return [found for key, value in body.items() for found in template_strings(value, (*loc, key))]
    if isinstance(body, list):
        return [found for i, value in enumerate(body) for found in template_strings(value, (*loc, i))]
    if isinstance(body, str) and is_template(body):
        return [(loc, body)]
    return []
