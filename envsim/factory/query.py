"""The query language of task families: which world records a family instance is about.

A family's ``select:`` is an ordered list of *bindings*. Each binds one record of a table (``table:``)
or one element of a list field of an earlier binding (``from: order.items``), among those matching
its ``where:`` conditions given the earlier bindings; ``count: k`` binds ``k`` distinct records (a
list), ``optional: true`` binds ``None`` when nothing matches instead of failing the draw.

A condition is a bare value (equality) or one operator mapping: ``eq``, ``ne``, ``in``, ``not_in``,
``gt``, ``gte``, ``lt``, ``lte``, ``min_len``, ``max_len``, ``contains``, ``is_null``; any operand
may be ``{ref: binding.field.path}``. Field paths are dotted (``shipping_address.city``; a list
index is a number, ``items.0.name``). The language is data, never code.

Example:
    >>> cond = Condition.model_validate({"gte": 2})
    >>> cond.holds(3, {}), cond.holds("x", {})
    (True, False)
    >>> Condition.model_validate({"ref": "order.customer_id"}).holds("C1", {"order": {"customer_id": "C1"}})
    True
    >>> lookup({"a": {"b": [10, 20]}}, "a.b.1")
    20
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from envsim.scenario import same_value

OPERATORS: tuple[str, ...] = (
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "min_len",
    "max_len",
    "contains",
    "is_null",
)
"""The operators of a condition."""

_PATH = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*"
PATH_PATTERN = re.compile(rf"^{_PATH}$")
"""A dotted field path: names, and list indexes as numbers."""

_MISSING: Any = object()


def lookup(value: Any, path: str) -> Any:
    """The value at the dotted ``path`` inside ``value`` (dicts and lists); None when absent."""
    for part in path.split("."):
        if isinstance(value, dict):
            value = dict.get(value, part, _MISSING)
        elif isinstance(value, list | tuple) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else _MISSING
        else:
            return None
        if value is _MISSING:
            return None
    return value


class Ref(BaseModel):
    """An operand read from an earlier binding: ``{ref: binding.field.path}`` (or just ``binding``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str = Field(pattern=rf"^{_PATH}$", description="binding name, then a dotted field path")

    @property
    def binding(self) -> str:
        """The binding the reference reads."""
        return self.ref.split(".", 1)[0]

    def resolve(self, bound: dict[str, Any]) -> Any:
        """The referenced value given the bindings so far (None when absent)."""
        return lookup(bound, self.ref)


def _operand(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ref"} and isinstance(value["ref"], str) and PATH_PATTERN.match(value["ref"]):
            return Ref(ref=value["ref"])
        raise ValueError("an operand is a value, a list of values or {ref: binding.field}")
    if isinstance(value, list):
        return [_operand(v) for v in value]
    return value


def _resolve(operand: Any, bound: dict[str, Any]) -> Any:
    if isinstance(operand, Ref):
        return operand.resolve(bound)
    if isinstance(operand, list):
        return [_resolve(v, bound) for v in operand]
    return operand


class Condition(BaseModel):
    """One condition on a field: exactly one operator and its operand (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    eq: Any = Field(None, description="Equal to.")
    ne: Any = Field(None, description="Not equal to.")
    in_: Any = Field(None, alias="in", description="Equal to one of (a list).")
    not_in: Any = Field(None, description="Equal to none of (a list).")
    gt: Any = Field(None, description="Greater than.")
    gte: Any = Field(None, description="Greater than or equal to.")
    lt: Any = Field(None, description="Less than.")
    lte: Any = Field(None, description="Less than or equal to.")
    min_len: Any = Field(None, description="A list, text or mapping with at least this many elements.")
    max_len: Any = Field(None, description="A list, text or mapping with at most this many elements.")
    contains: Any = Field(None, description="Text containing this text, or a list containing this value.")
    is_null: bool | None = Field(None, description="true: the field is null or absent; false: it has a value.")

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, value: Any) -> Any:
        if not isinstance(value, dict) or set(value) == {"ref"}:
            return {"eq": value}  # a bare value or a bare reference: equality
        return value

    @field_validator("eq", "ne", "in_", "not_in", "gt", "gte", "lt", "lte", "min_len", "max_len", "contains")
    @classmethod
    def _operands(cls, value: Any) -> Any:
        return _operand(value)

    _operator: str = PrivateAttr("eq")
    _operand: Any = PrivateAttr(None)
    _refs: list[Ref] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in type(self).model_fields if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one operator ({', '.join(OPERATORS)})")
        op = "in" if given[0] == "in_" else given[0]
        operand = getattr(self, given[0])
        self._operator, self._operand = op, operand
        items = operand if isinstance(operand, list) else [operand]
        self._refs = [item for item in items if isinstance(item, Ref)]
        if op in ("in", "not_in") and not isinstance(operand, list | Ref):
            raise ValueError(f"{op} takes a list")
        if op in ("min_len", "max_len") and not (
            isinstance(operand, Ref) or (isinstance(operand, int) and not isinstance(operand, bool) and operand >= 0)
        ):
            raise ValueError(f"{op} takes a whole number >= 0")
        return self

    @property
    def operator(self) -> str:
        """The operator's name as written (``in``, not ``in_``)."""
        return self._operator

    @property
    def operand(self) -> Any:
        """The operand as given (references unresolved)."""
        return self._operand

    def refs(self) -> list[Ref]:
        """The references of the operand."""
        return list(self._refs)

    def test(self) -> CompiledCondition:
        """The condition as a plain object, quick to apply many times."""
        return CompiledCondition(self._operator, self._operand, bool(self._refs))

    def holds(self, value: Any, bound: dict[str, Any]) -> bool:
        """Whether a field's ``value`` satisfies this condition, references read from ``bound``."""
        return self.test().holds(value, bound)


class CompiledCondition:
    """A compiled :class:`Condition`: its operator, operand and whether the operand reads bindings."""

    __slots__ = ("op", "operand", "reads")

    def __init__(self, op: str, operand: Any, reads: bool) -> None:
        self.op = op
        self.operand = operand
        self.reads = reads

    def resolved(self, bound: dict[str, Any]) -> CompiledCondition:
        """This condition with its references read from ``bound`` (itself when it reads none)."""
        return CompiledCondition(self.op, _resolve(self.operand, bound), False) if self.reads else self

    def predicate(self) -> Callable[[Any], bool]:
        """:meth:`holds` of a condition that reads no binding, as a one-argument function: specialised for
        the usual operands (text, numbers, booleans, null), quick to apply to every record of a table.

        Example:
            >>> CompiledCondition("gte", 2, False).predicate()(3), CompiledCondition("in", ["a"], False).predicate()(1)
            (True, False)
        """
        if self.reads:
            raise ValueError("a condition that reads bindings has no predicate of the value alone")
        op, want = self.op, self.operand
        kind = type(want)
        if op in ("eq", "ne") and (want is None or kind in (bool, str, int, float)):
            return _equality(want, negate=op == "ne")
        if op in ("in", "not_in") and isinstance(want, list) and all(type(w) is str for w in want):
            return _membership(frozenset(want), negate=op == "not_in")
        if op in ("gt", "gte", "lt", "lte") and kind in (int, float):
            compare = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op]

            def ordered(value: Any) -> bool:
                if value.__class__ in (int, float):
                    return bool(compare(value, want))
                return self.holds(value, {})  # text, null, a boolean: as holds says

            return ordered
        return lambda value: self.holds(value, {})

    def holds(self, value: Any, bound: dict[str, Any]) -> bool:
        """Whether a field's ``value`` satisfies the condition, references read from ``bound``."""
        op = self.op
        want = _resolve(self.operand, bound) if self.reads else self.operand
        try:
            if op == "eq":
                return same_value(value, want)
            if op == "ne":
                return not same_value(value, want)
            if op == "in":
                return isinstance(want, list) and any(same_value(value, w) for w in want)
            if op == "not_in":
                return isinstance(want, list) and not any(same_value(value, w) for w in want)
            if op == "is_null":
                return (value is None) is bool(want)
            if value is None or want is None:
                return False
            if op in ("min_len", "max_len"):
                if not isinstance(value, list | tuple | str | dict):
                    return False
                size = len(value)
                return bool(size >= want) if op == "min_len" else bool(size <= want)
            if op == "contains":
                if isinstance(value, str):
                    return isinstance(want, str) and want in value
                if isinstance(value, list | tuple):
                    return any(same_value(v, want) for v in value)
                return isinstance(value, dict) and want in value
            if isinstance(value, bool) or isinstance(want, bool):
                return False
            if op == "gt":
                return bool(value > want)
            if op == "gte":
                return bool(value >= want)
            if op == "lt":
                return bool(value < want)
            return bool(value <= want)
        except TypeError:  # incomparable types (a number against text): the condition does not hold
            return False


def _equality(want: Any, *, negate: bool) -> Callable[[Any], bool]:
    """``same_value(value, want)`` (or its negation) for a ``want`` that is null, a boolean, text or a number."""
    if want is None or isinstance(want, bool):  # singletons: only themselves are the same value

        def same(value: Any) -> bool:
            return value is want

    elif isinstance(want, str):  # only text equals text

        def same(value: Any) -> bool:
            return bool(value == want)

    else:  # a number equals a number of the same value, never a boolean

        def same(value: Any) -> bool:
            return bool(value == want) and value.__class__ is not bool

    return (lambda value: not same(value)) if negate else same


def _membership(texts: frozenset[str], *, negate: bool) -> Callable[[Any], bool]:
    """``in`` (or ``not_in``) a list of texts: only text can be one of them."""
    if negate:
        return lambda value: not (value.__class__ is str and value in texts)
    return lambda value: value.__class__ is str and value in texts


class Binding(BaseModel):
    """One record (or ``count`` records, or a list element) a family instance is about."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    table: str | None = Field(None, description="The table to draw the record from, e.g. orders.")
    from_: str | None = Field(
        None, alias="from", pattern=rf"^{_PATH}$", description="A list field of an earlier binding, e.g. order.items."
    )
    where: dict[str, Condition] = Field(default_factory=dict, description="Conditions per (dotted) field path.")
    count: int | None = Field(None, ge=1, le=100, description="Bind this many distinct records (a list).")
    optional: bool = Field(False, description="Bind null when nothing matches, instead of failing the draw.")

    @field_validator("where")
    @classmethod
    def _paths(cls, where: dict[str, Condition]) -> dict[str, Condition]:
        for path in where:
            if not PATH_PATTERN.match(path):
                raise ValueError(f"{path!r} is not a field path (names and numbers joined by dots)")
        return where

    @model_validator(mode="after")
    def _one_source(self) -> Binding:
        if (self.table is None) == (self.from_ is None):
            raise ValueError("give exactly one of 'table' or 'from'")
        if self.count is not None and self.optional:
            raise ValueError("a binding with 'count' cannot be optional")
        return self

    @property
    def kind(self) -> Literal["table", "element"]:
        """Whether the binding draws table records or list elements."""
        return "table" if self.table is not None else "element"

    def refs(self) -> list[Ref]:
        """Every reference of the binding (its conditions' and its ``from``)."""
        found = [ref for cond in self.where.values() for ref in cond.refs()]
        if self.from_ is not None:
            found.append(Ref(ref=self.from_))
        return found

    def static_conditions(self) -> list[tuple[str, Condition]]:
        """The conditions that read no other binding (they can be applied once per world)."""
        return [(path, cond) for path, cond in self.where.items() if not cond.refs()]

    def bound_conditions(self) -> list[tuple[str, Condition]]:
        """The conditions that read earlier bindings."""
        return [(path, cond) for path, cond in self.where.items() if cond.refs()]


def compile_conditions(conditions: list[tuple[str, Condition]]) -> list[tuple[str, CompiledCondition]]:
    """``(path, condition)`` pairs compiled for :func:`matches`."""
    return [(path, cond.test()) for path, cond in conditions]


def matches(
    record: Any, conditions: list[tuple[str, Condition]] | list[tuple[str, CompiledCondition]], bound: dict[str, Any]
) -> bool:
    """Whether ``record`` satisfies every ``(path, condition)`` (conditions or compiled tests).

    Example:
        >>> where = [("status", Condition.model_validate("delivered")),
        ...          ("items", Condition.model_validate({"min_len": 2}))]
        >>> matches({"status": "delivered", "items": [1, 2]}, where, {}), matches({"status": "pending"}, where, {})
        (True, False)
    """
    for path, cond in conditions:
        value = (
            dict.get(record, path, _MISSING) if "." not in path and isinstance(record, dict) else lookup(record, path)
        )
        if not cond.holds(None if value is _MISSING else value, bound):
            return False
    return True
