"""Every prompt and templated line is rendered here: sandboxed jinja2, strict about undefined names.

Two kinds of template, two rules:

- **Packaged templates** (``envsim/templates/*.j2``, package data) are trusted: :func:`render`
  renders them with the full jinja2 sandbox (loops, macros, expressions).
- **Scenario text** (``user.facts[].say`` today; any field a scenario file or a world record
  fills in) comes from untrusted files and needs placeholders, not a programming language.
  :func:`render_scenario_text` accepts only:

  - output expressions ``{{ name }}``, ``{{ name.attr }}``, ``{{ name["key"] }}``, ``{{ name[0] }}``
    and literals (strings, numbers, true/false/none);
  - the filters in :data:`SCENARIO_FILTERS` (``{{ key | upper }}``, ``{{ name | default("you") }}``);
  - ``{% if %}`` / ``{% elif %}`` / ``{% else %}`` on such expressions, with ``not``, ``and``, ``or``,
    comparisons and the tests in :data:`SCENARIO_TESTS` (``is defined``), and ``x if c else y``;
  - comments and ``{% raw %}``.

  No loops, no assignments, no macros, no calls, no arithmetic or ``~`` (nothing that can make
  more text than the template and its context hold), no list or dict literals, no slices and no
  name or attribute starting with ``_``. :func:`check_scenario_template` finds every construct
  outside these with its line and column (``envsim validate`` reports them); rendering checks
  first, and also bounds what an allowed template can do with a large context: at most
  :data:`MAX_OUTPUT_CHARS` characters and :data:`MAX_RENDER_SECONDS` seconds. Every failure is a
  :class:`~envsim.errors.TemplateError`.

Example:
    >>> render_scenario_text("My {{ key }} is {{ value }}.", key="phone", value="555-0142")
    'My phone is 555-0142.'
    >>> check_scenario_template("{{ 'x' * 10**9 }}", ["value"])
    [TemplateProblem(line=1, column=8, message="arithmetic ('*') is not allowed in scenario text")]
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from jinja2 import PackageLoader, StrictUndefined, Template, nodes
from jinja2 import TemplateSyntaxError as _JinjaSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from envsim.errors import TemplateError


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The environment of packaged templates: sandboxed, ``StrictUndefined``, no autoescape (plain text)."""
    return SandboxedEnvironment(
        loader=PackageLoader("envsim", "templates"),
        undefined=StrictUndefined,
        auto_reload=False,  # package data does not change under a running process: no stat per render
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template_name: str, **context: Any) -> str:
    """Render a packaged (trusted) template by file name."""
    return environment().get_template(template_name).render(**context).strip()


Frozen = str | int | float | bool | None | tuple["Frozen", ...]
"""A context value :func:`render_remembered` takes: immutable, so that it can key the rendering."""


@lru_cache(maxsize=4096)
def _remembered(template_name: str, context: tuple[tuple[str, Frozen], ...]) -> str:
    return render(template_name, **dict(context))


def render_remembered(template_name: str, **context: Frozen) -> str:
    """:func:`render`, remembered per template and context (the 4,096 latest): for the short lines an episode
    renders again and again (a scripted agent's questions, a system prompt). A packaged template does not change
    under a running process (``auto_reload=False``), so the text of a context never does either.

    Example:
        >>> render_remembered("agent_closing.j2", statements=("Your card is frozen.",))
        'Your card is frozen. Is there anything else I can help you with?'
    """
    return _remembered(template_name, tuple(sorted(context.items())))


# -- scenario text ------------------------------------------------------------------------------

SCENARIO_FILTERS: frozenset[str] = frozenset(
    {
        "capitalize",
        "d",
        "default",
        "dollars",
        "first",
        "ids",
        "int",
        "join",
        "last",
        "length",
        "lower",
        "string",
        "title",
        "trim",
        "upper",
    }
)
"""The filters scenario text may use (none of them makes more text than its input and arguments)."""

SCENARIO_TESTS: frozenset[str] = frozenset({"defined", "undefined", "none", "number", "string"})
"""The tests (``x is defined``) scenario text may use in conditions."""

MAX_OUTPUT_CHARS = 64 * 1024
"""The most characters one rendering of scenario text may produce."""

MAX_RENDER_SECONDS = 2.0
"""The most seconds one rendering of scenario text may take: a last guard, far above any allowed template's
cost (no loops, no arithmetic), so that a garbage-collection pause on a loaded machine never trips it and
generated suites stay byte-identical."""

MAX_ARGUMENT_CHARS = 200
"""The longest string literal a filter may take as an argument (``join(", ")``, ``default("you")``)."""


def dollars(cents: Any) -> str:
    """An amount in cents as dollars (the ``dollars`` filter of scenario text).

    Example:
        >>> dollars(1299), dollars(-5), dollars(100000)
        ('$12.99', '-$0.05', '$1,000.00')
    """
    value = int(cents)
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(value), 100)
    return f"{sign}${whole:,}.{part:02d}"


def ids(records: Any) -> list[Any]:
    """The ``id`` of each record of a list (the ``ids`` filter of scenario text).

    Example:
        >>> ids([{"id": "TX1"}, {"id": "TX2"}])
        ['TX1', 'TX2']
    """
    if not isinstance(records, list | tuple):
        raise TypeError(f"ids takes a list of records, got {type(records).__name__}")
    out: list[Any] = []
    for record in records:
        if not isinstance(record, dict) or "id" not in record:
            raise TypeError("ids takes a list of records, each with an id")
        out.append(record["id"])
    return out


_OWN_FILTERS: dict[str, Any] = {"dollars": dollars, "ids": ids}
"""Filters of scenario text that jinja2 does not have."""


class TemplateProblem(NamedTuple):
    """One construct scenario text may not use, at a 1-based line and column of the template."""

    line: int
    column: int
    message: str


class _ScenarioEnvironment(SandboxedEnvironment):
    """The sandbox of scenario text: only the allowed filters and tests, no globals, no operators.

    The AST check (:func:`check_scenario_template`) already refuses operators; intercepting them
    here too means a template never computes one, even one built past the check.
    """

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse every binary operator."""
        raise TemplateError(f"arithmetic ({operator!r}) is not allowed in scenario text")

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        """Refuse every unary operator."""
        raise TemplateError(f"arithmetic ({operator!r}) is not allowed in scenario text")


@lru_cache(maxsize=1)
def scenario_environment() -> SandboxedEnvironment:
    """The environment of scenario text: the allowed filters and tests only, no globals (no ``range``)."""
    env = _ScenarioEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters = {name: f for name, f in {**env.filters, **_OWN_FILTERS}.items() if name in SCENARIO_FILTERS}
    env.tests = {name: t for name, t in env.tests.items() if name in SCENARIO_TESTS}
    env.globals = {}
    return env


_OPTIONAL = frozenset({"defined", "undefined", "default", "d"})
"""The tests and filters whose operand may be a name the template is not given."""

_STATEMENT_WORDS: dict[type[nodes.Node], str] = {
    nodes.For: "for",
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.FilterBlock: "filter",
    nodes.With: "with",
    nodes.Assign: "set",
    nodes.AssignBlock: "set",
    nodes.Block: "block",
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from",
}

_OPERATORS: dict[type[nodes.Node], str] = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Mod: "%",
    nodes.Pow: "**",
    nodes.Neg: "-",
    nodes.Pos: "+",
    nodes.Concat: "~",
}


class _Checker:
    """Walks a parsed scenario template and records every construct outside the allowed subset."""

    def __init__(self, source: str, names: frozenset[str] | None) -> None:
        self.lines = source.splitlines() or [""]
        self.names = names
        self.problems: list[TemplateProblem] = []

    def add(self, node: nodes.Node, needle: str, message: str) -> None:
        line = getattr(node, "lineno", 1) or 1
        text = self.lines[line - 1] if line <= len(self.lines) else ""
        tag = min((i for i in (text.find("{{"), text.find("{%")) if i != -1), default=0)
        found = text.find(needle, tag) if needle else -1
        self.problems.append(TemplateProblem(line, found + 1 if found != -1 else 1, message))

    def statements(self, body: Iterable[nodes.Node]) -> None:
        for node in body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if not isinstance(child, nodes.TemplateData):
                        self.expression(child)
            elif isinstance(node, nodes.If):
                self.expression(node.test)
                self.statements(node.body)
                self.statements(node.elif_)
                self.statements(node.else_)
            else:
                word = _STATEMENT_WORDS.get(type(node), "")
                what = f"{{% {word} %}}" if word else type(node).__name__
                self.add(node, word, f"{what} is not allowed in scenario text (only {{{{ ... }}}} and {{% if %}})")

    def expression(self, node: nodes.Node, *, optional: bool = False) -> None:
        """Check an expression; ``optional``: a name that may be missing (under ``is defined`` or ``default``)."""
        if isinstance(node, nodes.Name):
            if node.name.startswith("_"):
                self.add(node, node.name, f"the name {node.name!r} is blocked (it starts with _)")
            elif self.names is not None and node.name not in self.names and not optional:
                known = ", ".join(sorted(self.names)) or "none"
                self.add(node, node.name, f"undefined name {node.name!r} (known names: {known})")
        elif isinstance(node, nodes.Getattr):
            self.expression(node.node)
            if node.attr.startswith("_"):
                self.add(node, node.attr, f"the attribute {node.attr!r} is blocked (it starts with _)")
        elif isinstance(node, nodes.Getitem):
            self.expression(node.node)
            key = node.arg
            if not isinstance(key, nodes.Const) or isinstance(key.value, bool) or not isinstance(key.value, str | int):
                self.add(node, "[", "an index must be a literal string or integer (no slices or expressions)")
            elif isinstance(key.value, str) and key.value.startswith("_"):
                self.add(node, key.value, f"the key {key.value!r} is blocked (it starts with _)")
        elif isinstance(node, nodes.Filter | nodes.Test):
            kind, allowed = ("filter", SCENARIO_FILTERS) if isinstance(node, nodes.Filter) else ("test", SCENARIO_TESTS)
            if node.node is not None:
                self.expression(node.node, optional=node.name in _OPTIONAL)
            if node.name not in allowed:
                choices = ", ".join(sorted(allowed))
                self.add(node, node.name, f"the {kind} {node.name!r} is not allowed; allowed: {choices}")
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                self.add(node, "*", f"*args and **kwargs are not allowed in a {kind}")
            for arg in [*node.args, *(k.value for k in node.kwargs)]:
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and len(arg.value) > MAX_ARGUMENT_CHARS:
                    self.add(arg, "", f"a {kind} argument is at most {MAX_ARGUMENT_CHARS} characters")
                else:
                    self.expression(arg)
        elif isinstance(node, nodes.Const):
            if not (node.value is None or isinstance(node.value, str | int | float | bool)):
                self.add(node, "", f"the literal {node.value!r} is not allowed")
        elif isinstance(node, nodes.Not):
            self.expression(node.node)
        elif isinstance(node, nodes.And | nodes.Or):
            self.expression(node.left)
            self.expression(node.right)
        elif isinstance(node, nodes.Compare):
            self.expression(node.expr)
            for operand in node.ops:
                self.expression(operand.expr)
        elif isinstance(node, nodes.CondExpr):
            self.expression(node.test)
            self.expression(node.expr1)
            if node.expr2 is not None:
                self.expression(node.expr2)
        elif type(node) in _OPERATORS:
            symbol = _OPERATORS[type(node)]
            self.add(node, symbol, f"arithmetic ({symbol!r}) is not allowed in scenario text")
        elif isinstance(node, nodes.Call):
            self.add(node, "(", "calls are not allowed in scenario text")
        elif isinstance(node, nodes.Slice):
            self.add(node, ":", "slices are not allowed in scenario text")
        elif isinstance(node, nodes.List | nodes.Tuple | nodes.Dict):
            self.add(node, "", f"{type(node).__name__.lower()} literals are not allowed in scenario text")
        else:
            self.add(node, "", f"{type(node).__name__} is not allowed in scenario text")


def _parse(source: str) -> tuple[nodes.Template | None, list[TemplateProblem]]:
    try:
        return scenario_environment().parse(source), []
    except _JinjaSyntaxError as err:
        return None, [TemplateProblem(err.lineno or 1, 1, f"template syntax error: {err.message}")]
    except RecursionError:
        return None, [TemplateProblem(1, 1, "the template is nested too deeply")]


def check_scenario_template(source: str, names: Iterable[str] | None = None) -> list[TemplateProblem]:
    """Every construct of ``source`` that scenario text may not use (empty: it is allowed).

    ``names`` are the names the template will be given (``None``: do not check names). A syntax
    error is one problem at its line. Nothing is compiled or rendered.

    Example:
        >>> check_scenario_template("{% for i in range(9) %}x{% endfor %}{{ valeu }}", ["key", "value"])[0].message
        '{% for %} is not allowed in scenario text (only {{ ... }} and {% if %})'
        >>> check_scenario_template("{{ valeu }}", ["key", "value"])
        [TemplateProblem(line=1, column=4, message="undefined name 'valeu' (known names: key, value)")]
    """
    if _plain_text(source):
        return []
    tree, problems = _parse(source)
    if tree is None:
        return problems
    checker = _Checker(source, frozenset(names) if names is not None else None)
    try:
        checker.statements(tree.body)
    except RecursionError:
        checker.problems.append(TemplateProblem(1, 1, "the template is nested too deeply"))
    return checker.problems


def _plain_text(source: str) -> bool:
    """Whether ``source`` holds no template syntax at all (no ``{``), so that it renders as itself
    (less one trailing newline, as Jinja2 renders it; no ``\r``, which Jinja2 would normalise)."""
    return "{" not in source and "\r" not in source and len(source) <= MAX_OUTPUT_CHARS


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Template:
    problems = check_scenario_template(source)
    if problems:
        first = problems[0]
        raise TemplateError(first.message, line=first.line, column=first.column)
    try:
        return scenario_environment().from_string(source)
    except (_JinjaSyntaxError, RecursionError) as err:  # pragma: no cover - parse() already accepted it
        raise TemplateError(f"cannot compile the template: {err}") from None


def _template_line(err: BaseException) -> int:
    """The template line a rendering error happened at (jinja2 maps its frames to ``<template>``)."""
    line = 1
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        if frame.f_code.co_filename == "<template>":
            line = lineno
    return line


def _bounded(chunks: Iterator[str]) -> str:
    out: list[str] = []
    size = 0
    deadline = time.monotonic() + MAX_RENDER_SECONDS
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateError(f"the rendered text is longer than {MAX_OUTPUT_CHARS} characters")
        if time.monotonic() > deadline:
            raise TemplateError(f"rendering took longer than {MAX_RENDER_SECONDS} s")
        out.append(chunk)
    return "".join(out)


def render_scenario_text(source: str, **context: Any) -> str:
    """Render scenario text (a template from an untrusted file) with ``context``; bounded in size and time.

    Raises :class:`~envsim.errors.TemplateError` (with the template line and column) for a
    construct outside the allowed subset, an undefined name, a blocked attribute, output over
    :data:`MAX_OUTPUT_CHARS` characters or a rendering over :data:`MAX_RENDER_SECONDS` seconds.
    Templates are compiled once per distinct text.

    Example:
        >>> render_scenario_text('{{ name | default("there") | title }}, your {{ order["id"] }} ships.',
        ...                      order={"id": "#W1"})
        'There, your #W1 ships.'
    """
    if _plain_text(source):  # nothing to render (generated scenarios hold thousands of distinct plain lines)
        return source[:-1] if source.endswith("\n") else source
    template = _compiled(source)
    try:
        return _bounded(template.generate(**context))
    except TemplateError:
        raise
    except Exception as err:  # an undefined name, a blocked attribute, a filter's ValueError: all typed
        message = getattr(err, "message", None) or str(err) or type(err).__name__
        raise TemplateError(message, line=_template_line(err)) from None
