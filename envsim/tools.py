"""Tools: typed methods of a :class:`Toolkit`, their OpenAI schemas, and safe dispatch.

A tool is a method decorated with :func:`tool`. Its JSON schema comes from the signature
(through a pydantic model built once per class) and its Google-style docstring (summary
and ``Args:``). Calling a tool never raises: unknown names, bad arguments, missing
records and rule violations all come back as a :class:`ToolResult` with ``ok=False``,
which the environment shows to the agent as an error observation.

Example:
    >>> from envsim.world import Record, World, WorldState
    >>> class Counter(Record):
    ...     value: int
    >>> class CounterState(WorldState):
    ...     counters: dict[str, Counter]
    >>> class CounterKit(Toolkit):
    ...     name = "counter"
    ...     state_model = CounterState
    ...     def __init__(self, world: World) -> None:
    ...         super().__init__(world)
    ...         self.counters = world.table("counters", Counter)
    ...     @tool(write=True)
    ...     def bump(self, counter_id: str, by: int = 1) -> Counter:
    ...         '''Add to a counter.
    ...
    ...         Args:
    ...             counter_id: Which counter.
    ...             by: How much to add.
    ...         '''
    ...         c = self.counters.require(counter_id, "counter")
    ...         self.counters.put(counter_id, c.model_copy(update={"value": c.value + by}))
    ...         return self.counters.require(counter_id)
    >>> tools = ToolRegistry([CounterKit(World(CounterState(counters={"c": Counter(value=0)})))])
    >>> tools.call("bump", {"counter_id": "c", "by": 2}).content
    '{"value":2}'
    >>> tools.call("bump", {"counter_id": "x"}).content
    '{"error":{"type":"not_found","message":"counter \\'x\\' not found"}}'
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar, get_type_hints

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from envsim.errors import ToolFailure
from envsim.suggest import did_you_mean
from envsim.world import World, WorldState

F = TypeVar("F", bound=Callable[..., Any])

_TOOL_ATTR = "__envsim_tool__"


@dataclass(frozen=True)
class ToolFlags:
    """How a tool behaves: whether it writes state, ends the episode, or escalates."""

    write: bool = False
    ends_episode: bool = False
    escalation: bool = False


def tool(*, write: bool = False, ends_episode: bool = False, escalation: bool = False) -> Callable[[F], F]:
    """Mark a toolkit method as a tool.

    Args:
        write: The tool changes the world (read tools must not).
        ends_episode: Calling it successfully ends the episode (a hand-off or dispatch).
        escalation: It escalates to a human or to emergency services (used by rewards).
    """

    def mark(fn: F) -> F:
        setattr(fn, _TOOL_ATTR, ToolFlags(write=write, ends_episode=ends_episode, escalation=escalation))
        return fn

    return mark


_ARG_LINE = re.compile(r"^\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its summary and ``Args:`` descriptions.

    Example:
        >>> parse_docstring('''Find an order.
        ...
        ...     Args:
        ...         order_id: The order's id.
        ...             Starts with "#".
        ...     ''')
        ('Find an order.', {'order_id': 'The order\\'s id. Starts with "#".'})
    """
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and stripped[:-1] in {
            "Args",
            "Arguments",
            "Returns",
            "Raises",
            "Example",
            "Examples",
        }:
            section = stripped[:-1]
            current = None
            continue
        if section is None:
            if stripped or summary_lines:
                summary_lines.append(stripped)
        elif section in {"Args", "Arguments"} and stripped:
            match = _ARG_LINE.match(line)
            indent = len(line) - len(line.lstrip())
            if match and (current is None or indent <= _arg_indent(text, current)):
                current = match.group(1)
                args[current] = match.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
    summary = " ".join(" ".join(summary_lines).split())
    return summary, args


def _arg_indent(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.strip().startswith(f"{name}:") or line.strip().startswith(f"{name} ("):
            return len(line) - len(line.lstrip())
    return 0


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's generated ``title`` annotations (not properties that are called ``title``)."""
    if isinstance(schema, dict):
        return {
            k: ({name: _strip_titles(sub) for name, sub in v.items()} if k == "properties" else _strip_titles(v))
            for k, v in schema.items()
            if k != "title"
        }
    if isinstance(schema, list):
        return [_strip_titles(v) for v in schema]
    return schema


@dataclass(frozen=True)
class ToolSpec:
    """A tool's definition: name, flags, argument model and OpenAI schema."""

    name: str
    method: Callable[..., Any]
    flags: ToolFlags
    args_model: type[BaseModel]
    description: str
    toolkit: str

    @property
    def openai_schema(self) -> dict[str, Any]:
        """The tool in OpenAI function-calling format: a fresh copy on every access.

        Building the schema (pydantic's ``model_json_schema``) costs far more than a step, and every
        environment asks for its tools' schemas, so it is built once per spec and kept as JSON;
        each access decodes a new dict (pydantic-core's decoder, faster than the ``json`` module's),
        which callers own and may change.
        """
        schema: dict[str, Any] = pydantic_core.from_json(self._schema_json)
        return schema

    @functools.cached_property
    def _schema_json(self) -> str:
        params = _strip_titles(self.args_model.model_json_schema())
        params.setdefault("properties", {})
        params["additionalProperties"] = False
        schema = {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }
        return json.dumps(schema)


def _build_spec(cls_name: str, toolkit: str, name: str, fn: Callable[..., Any], flags: ToolFlags) -> ToolSpec:
    summary, arg_docs = parse_docstring(fn.__doc__)
    if not summary:
        raise TypeError(f"tool {cls_name}.{name} needs a docstring: its first line becomes the description")
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for pname, param in list(inspect.signature(fn).parameters.items())[1:]:
        if pname not in hints:
            raise TypeError(f"tool {cls_name}.{name}: argument {pname!r} needs a type hint")
        if pname not in arg_docs:
            raise TypeError(f"tool {cls_name}.{name}: argument {pname!r} is not described under Args:")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints[pname], Field(default, description=arg_docs[pname]))
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    return ToolSpec(name=name, method=fn, flags=flags, args_model=model, description=summary, toolkit=toolkit)


class Toolkit:
    """Base class of a mocked enterprise system: a state model, fixtures and tools.

    Subclasses set ``name``, ``state_model`` and ``fixtures`` (name → ``seed -> state``),
    take their tables from the world in ``__init__``, and may override
    :meth:`check_invariants`.
    """

    name: ClassVar[str] = ""
    state_model: ClassVar[type[WorldState]]
    fixtures: ClassVar[dict[str, Callable[[int], WorldState]]] = {}
    tool_specs: ClassVar[dict[str, ToolSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        specs: dict[str, ToolSpec] = {}
        for klass in reversed(cls.__mro__):
            for attr, fn in vars(klass).items():
                flags = getattr(fn, _TOOL_ATTR, None)
                if isinstance(flags, ToolFlags):
                    specs[attr] = _build_spec(cls.__name__, cls.name, attr, fn, flags)
        cls.tool_specs = specs

    def __init__(self, world: World) -> None:
        self.world = world

    def check_invariants(self) -> list[str]:
        """Violated invariants of the current state, as messages (empty when all hold)."""
        return []


NO_FLAGS = ToolFlags()


class ToolResult(NamedTuple):
    """The outcome of one tool call: JSON ``content`` for the agent, and what happened.

    A named tuple: built on every step, so it must be cheap.
    """

    name: str
    ok: bool
    content: str
    error_type: str | None = None
    flags: ToolFlags = NO_FLAGS

    @property
    def ends_episode(self) -> bool:
        """True when a successful call ends the episode."""
        return self.ok and self.flags.ends_episode


def error_content(kind: str, message: str) -> str:
    """The JSON an agent sees for a failed call."""
    return json.dumps({"error": {"type": kind, "message": message}}, separators=(",", ":"))


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(x) for x in e["loc"]) or "arguments"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


class ToolRegistry:
    """Every tool of a scenario's toolkits, by name, with safe dispatch."""

    def __init__(self, toolkits: Sequence[Toolkit]) -> None:
        self.toolkits = list(toolkits)
        self._bound: dict[str, tuple[ToolSpec, Toolkit]] = {}
        for kit in self.toolkits:
            for name, spec in kit.tool_specs.items():
                if name in self._bound and self._bound[name][1] is not kit:
                    raise ValueError(
                        f"tool {name!r} is defined by toolkits {self._bound[name][1].name!r} and {kit.name!r}"
                    )
                self._bound[name] = (spec, kit)
        self._schemas: list[dict[str, Any]] | None = None

    @property
    def names(self) -> list[str]:
        """Names of all tools."""
        return list(self._bound)

    def spec(self, name: str) -> ToolSpec | None:
        """The spec of tool ``name``, or ``None``."""
        bound = self._bound.get(name)
        return bound[0] if bound else None

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI tool schemas of every tool (built once)."""
        if self._schemas is None:
            self._schemas = [spec.openai_schema for spec, _ in self._bound.values()]
        return self._schemas

    def call(self, name: str, arguments: Any) -> ToolResult:
        """Run a tool; any failure becomes a result with ``ok=False``, never an exception."""
        bound = self._bound.get(name) if isinstance(name, str) else None
        if bound is None:
            return ToolResult(
                str(name),
                False,
                error_content("unknown_tool", f"no tool named {name!r}{did_you_mean(str(name), self._bound)}"),
                "unknown_tool",
            )
        spec, kit = bound
        if not isinstance(arguments, dict):
            return ToolResult(
                name,
                False,
                error_content("invalid_arguments", "arguments must be a JSON object"),
                "invalid_arguments",
                spec.flags,
            )
        try:
            parsed = spec.args_model.model_validate(arguments)
        except ValidationError as err:
            return ToolResult(
                name,
                False,
                error_content("invalid_arguments", _validation_message(err)),
                "invalid_arguments",
                spec.flags,
            )
        try:
            value = spec.method(kit, **parsed.__dict__)
            content = pydantic_core.to_json(value).decode()  # a result JSON cannot hold is a bug of the mock too
        except ToolFailure as failure:
            return ToolResult(name, False, error_content(failure.kind, str(failure)), failure.kind, spec.flags)
        except Exception as bug:  # a bug in a mock must not crash the episode; it is flagged
            return ToolResult(
                name, False, error_content("internal", f"{type(bug).__name__}: {bug}"), "internal", spec.flags
            )
        return ToolResult(name, True, content, None, spec.flags)

    def check_invariants(self) -> list[str]:
        """Violated invariants across all toolkits."""
        out: list[str] = []
        for kit in self.toolkits:
            out.extend(f"{kit.name}: {msg}" for msg in kit.check_invariants())
        return out


def describe(tools: Iterable[ToolSpec]) -> list[str]:
    """One line per tool: ``name (read|write[, ends episode]): description``."""
    lines = []
    for spec in tools:
        tags = ["write" if spec.flags.write else "read"]
        if spec.flags.ends_episode:
            tags.append("ends episode")
        if spec.flags.escalation:
            tags.append("escalation")
        lines.append(f"{spec.name} ({', '.join(tags)}): {spec.description}")
    return lines
