"""Relational world state with copy-on-write tables.

A toolkit declares its state as a pydantic model whose fields are tables
(``dict[str, Record]``) of frozen pydantic records. :class:`World` wraps one validated
state as an immutable *base* shared by every episode and keeps each episode's changes
in small per-table overlays, so that

- ``reset()`` clears the overlays (microseconds, whatever the size of the base),
- ``fork()`` gives a fresh world on the same base (used to replay expected actions),
- ``state_hash()`` is incremental: the base's hash is computed once, then only the
  changed records are hashed again, each new record object once (its digest is kept, keyed
  by the object's identity, until the next ``reset()``).

Records are never mutated in place: a tool writes a new record with
``table.put(key, record.model_copy(update=...))``.

Example:
    >>> from pydantic import BaseModel, ConfigDict
    >>> class Item(BaseModel):
    ...     model_config = ConfigDict(frozen=True, extra="forbid")
    ...     stock: int
    >>> class Shop(WorldState):
    ...     items: dict[str, Item]
    >>> world = World(Shop(items={"a": Item(stock=2)}))
    >>> before = world.state_hash()
    >>> items = world.table("items", Item)
    >>> items.put("a", items.require("a").model_copy(update={"stock": 1}))
    >>> world.state_hash() == before
    False
    >>> world.reset(); world.state_hash() == before
    True
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from collections import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import RecordNotFound

R = TypeVar("R", bound=BaseModel)

_MASK = (1 << 128) - 1
_DELETED: Any = object()


class Record(BaseModel):
    """Base class for a table row: frozen and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WorldState(BaseModel):
    """Base class for a toolkit's state: every field is a table ``dict[str, Record]``."""

    model_config = ConfigDict(extra="forbid")


class WorldSpec(BaseModel):
    """The initial world: each toolkit's named fixture generated from ``seed``, then records.

    ``inline`` adds whole records; ``overrides`` patches fields of existing records (or adds
    whole new ones; ``null`` deletes). Both are ``{table: {record_id: {field: value}}}``.
    """

    model_config = ConfigDict(extra="forbid")

    fixture: str | None = Field("default", description="Fixture name of every toolkit, or null for empty tables.")
    seed: int = Field(0, description="Seed of the fixture's generator.")
    inline: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict, description="Whole records to add.")
    overrides: dict[str, dict[str, dict[str, Any] | None]] = Field(
        default_factory=dict, description="Field patches of existing records (null deletes a record)."
    )


_DEEP: tuple[str, ...] | None = None
_PLANS: dict[type[BaseModel], tuple[str, ...] | None] = {}
"""Per record class, what :func:`canonical_json` sorts (see :func:`_dict_fields`)."""


def _plain(annotation: Any) -> bool:
    """Whether values of ``annotation`` serialise to JSON without any object whose keys a builder orders."""
    if annotation is Any or annotation is object or isinstance(annotation, TypeVar):
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, Sequence, abc.Set):
        return all(_plain(a) for a in typing.get_args(annotation) if a is not Ellipsis)
    if origin is not None:  # dict, Mapping and anything else generic
        return False
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return all(_plain(f.annotation) for f in annotation.model_fields.values())
        return not issubclass(annotation, (dict, abc.Mapping))
    return False


def _dict_of_plain(annotation: Any) -> bool:
    """Whether ``annotation`` is ``dict[K, V]`` (or a ``Mapping``) of plain keys and values."""
    args = typing.get_args(annotation)
    return typing.get_origin(annotation) in (dict, abc.Mapping) and bool(args) and all(_plain(a) for a in args)


def _dict_fields(cls: type[BaseModel]) -> tuple[str, ...] | None:
    """The fields of ``cls`` whose values are dicts of plain values (sorted one level deep), or
    ``None`` when some field may hold dicts deeper down (the whole JSON is then sorted)."""
    names: list[str] = []
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        if _plain(annotation):
            continue
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        members = typing.get_args(annotation) if union else (annotation,)
        if all(_plain(m) or _dict_of_plain(m) for m in members):
            names.append(name)
        else:
            return _DEEP
    return tuple(names)


def canonical_json(record: BaseModel) -> str:
    """The record as JSON with every object's keys sorted: records that compare equal give equal text.

    A record's own fields always come in declaration order, but a dict-valued field keeps the
    insertion order its builder happened to use; sorting makes the text independent of it. What to
    sort is decided once per record class from its annotations: a record without dict fields costs
    one ``model_dump_json``; one whose dict fields hold plain values has just those dicts sorted
    (when they hold two keys or more); any other (``Any``, dicts inside lists or dicts) is sorted
    through a JSON round trip.

    Example:
        >>> class Tags(Record):
        ...     tags: dict[str, int]
        >>> canonical_json(Tags(tags={"b": 1, "a": 2}))
        '{"tags":{"a":2,"b":1}}'
    """
    return _canonical_bytes(record).decode()


def _canonical_bytes(record: BaseModel) -> bytes:
    """:func:`canonical_json` as UTF-8 bytes, straight from the record's serializer (what digests read)."""
    cls = type(record)
    fields = _PLANS.get(cls, _DEEP)
    if fields is _DEEP and cls not in _PLANS:
        fields = _PLANS[cls] = _dict_fields(cls)
    if fields:
        update = {}
        for name in fields:
            value = getattr(record, name)
            if isinstance(value, dict) and len(value) > 1:
                try:
                    keys = sorted(value)
                except TypeError:  # keys of mixed types: sort the JSON instead
                    fields = _DEEP
                    break
                if keys != list(value):
                    update[name] = {k: value[k] for k in keys}
        if update and fields is not _DEEP:
            record = record.model_copy(update=update)
    data: bytes = record.__pydantic_serializer__.to_json(record)  # model_dump_json's bytes, without its wrapper
    if fields is _DEEP and data.find(b'{"', 1) != -1:  # a non-empty nested object somewhere
        text = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = text.encode("utf-8", "surrogatepass")
    return data


def record_digest(table: str, key: str, record: BaseModel) -> int:
    """128-bit digest of one record, namespaced by table and key (of its :func:`canonical_json`)."""
    data = f"{table}\x00{key}\x00".encode() + _canonical_bytes(record)
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


class _BaseTable:
    """The immutable part of a table, shared by every world forked from it."""

    __slots__ = ("_digests", "_indexes", "_sum", "name", "rows")

    def __init__(self, name: str, rows: Mapping[str, BaseModel]) -> None:
        self.name = name
        self.rows: dict[str, BaseModel] = dict(rows)
        self._digests: dict[str, int] = {}
        self._sum: int | None = None
        self._indexes: dict[str, dict[Any, list[str]]] = {}

    def digest(self, key: str) -> int:
        d = self._digests.get(key)
        if d is None:
            d = self._digests[key] = record_digest(self.name, key, self.rows[key])
        return d

    def total(self) -> int:
        if self._sum is None:  # every record's digest, as :meth:`digest` makes it, in one tight loop
            digests, prefix, blake2b = self._digests, f"{self.name}\x00".encode(), hashlib.blake2b
            s = 0
            for key, row in self.rows.items():
                d = digests.get(key)
                if d is None:
                    data = prefix + key.encode() + b"\x00" + _canonical_bytes(row)
                    d = digests[key] = int.from_bytes(blake2b(data, digest_size=16).digest(), "big")
                s += d
            self._sum = s & _MASK
        return self._sum

    def index(self, field: str) -> dict[Any, list[str]]:
        idx = self._indexes.get(field)
        if idx is None:
            idx = {}
            for key, row in self.rows.items():
                idx.setdefault(getattr(row, field), []).append(key)
            self._indexes[field] = idx
        return idx


class Table(Generic[R]):
    """One table of a :class:`World`: the shared base plus this episode's changes."""

    __slots__ = ("_base", "_overlay", "_record", "_version")

    def __init__(
        self, base: _BaseTable, overlay: dict[str, Any], record: type[R], version: list[int] | None = None
    ) -> None:
        self._base = base
        self._overlay = overlay
        self._record = record
        self._version = version if version is not None else [0]  # the world's change counter, shared

    @property
    def name(self) -> str:
        """The table's name, as declared on the state model."""
        return self._base.name

    def get(self, key: str) -> R | None:
        """The record under ``key``, or ``None``."""
        row = self._overlay.get(key, None)
        if row is None:
            if key in self._overlay:
                return None
            row = self._base.rows.get(key)
        elif row is _DELETED:
            return None
        return row  # type: ignore[return-value]

    def require(self, key: str, what: str | None = None) -> R:
        """The record under ``key``; raises :class:`RecordNotFound` (an error observation)."""
        row = self.get(key)
        if row is None:
            raise RecordNotFound(f"{what or self._base.name.rstrip('s')} {key!r} not found")
        return row

    def put(self, key: str, record: R) -> None:
        """Insert or replace the record under ``key``."""
        self._overlay[key] = record
        self._version[0] += 1

    def delete(self, key: str) -> None:
        """Remove the record under ``key`` (a no-op if absent)."""
        if self.get(key) is not None:
            self._overlay[key] = _DELETED
            self._version[0] += 1

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        rows = self._base.rows
        size = len(rows)
        for key, row in self._overlay.items():
            if key in rows:
                size -= row is _DELETED
            else:
                size += row is not _DELETED
        return size

    def keys(self) -> Iterator[str]:
        """Keys of live records, base order first, then new keys in insertion order."""
        overlay = self._overlay
        for key in self._base.rows:
            if overlay.get(key) is not _DELETED:
                yield key
        for key, row in overlay.items():
            if row is not _DELETED and key not in self._base.rows:
                yield key

    def items(self) -> Iterator[tuple[str, R]]:
        """``(key, record)`` pairs of live records (in :meth:`keys` order)."""
        rows, overlay = self._base.rows, self._overlay
        for key, row in rows.items():
            if overlay:  # an unchanged table (the usual case) is its base, as it is
                row = overlay.get(key, row)
                if row is _DELETED:
                    continue
            yield key, row  # type: ignore[misc]
        for key, row in overlay.items():
            if row is not _DELETED and key not in rows:
                yield key, row

    def values(self) -> Iterator[R]:
        """Live records."""
        for _, row in self.items():
            yield row

    def lookup(self, field: str, value: Any) -> list[R]:
        """Records whose ``field`` equals ``value``, through an index built once per base."""
        found: list[R] = []
        for key in self._base.index(field).get(value, ()):
            if key not in self._overlay:
                found.append(self._base.rows[key])  # type: ignore[arg-type]
        for row in self._overlay.values():
            if row is not _DELETED and getattr(row, field) == value:
                found.append(row)
        return found

    def where(self, predicate: Callable[[R], bool]) -> list[R]:
        """Records for which ``predicate`` holds (a full scan)."""
        return [row for row in self.values() if predicate(row)]


class World:
    """A world state: copy-on-write tables over a shared, validated base.

    Build one with :meth:`World.__init__` from a state model, then fork it per episode.
    """

    __slots__ = ("_bases", "_hash", "_overlays", "_rows", "_version")

    def __init__(self, state: WorldState | None = None, *, _bases: dict[str, _BaseTable] | None = None) -> None:
        if _bases is not None:
            self._bases = _bases
        else:
            if state is None:
                raise TypeError("World needs a state model")
            self._bases = {name: _BaseTable(name, getattr(state, name)) for name in type(state).model_fields}
        self._overlays: dict[str, dict[str, Any]] = {name: {} for name in self._bases}
        # Every change through a table view or reset/restore bumps the counter, so an unchanged
        # world answers state_hash from its last digest (the mock user asks it on every reply).
        self._version = [0]
        self._hash: tuple[int, str] | None = None
        # Per table, the digest of each overlay record already hashed, with the record object itself: records
        # are frozen and replaced, never changed in place, so the same object under the same key has the
        # same digest (holding the object keeps its identity from being reused).
        self._rows: dict[str, dict[str, tuple[Any, int]]] = {name: {} for name in self._bases}

    @classmethod
    def merge(cls, worlds: list[World]) -> World:
        """One world holding the tables of several (their names must not clash)."""
        bases: dict[str, _BaseTable] = {}
        for world in worlds:
            for name, base in world._bases.items():
                if name in bases:
                    raise ValueError(f"table {name!r} is declared by two toolkits")
                bases[name] = base
        return cls(_bases=bases)

    @property
    def table_names(self) -> list[str]:
        """Names of the tables in this world."""
        return list(self._bases)

    def table(self, name: str, record: type[R]) -> Table[R]:
        """A typed view of table ``name``; views stay valid across :meth:`reset`."""
        return Table(self._bases[name], self._overlays[name], record, self._version)

    def fork(self) -> World:
        """A fresh world on the same base, without this world's changes."""
        return World(_bases=self._bases)

    def reset(self) -> None:
        """Drop every change since the base (views from :meth:`table` stay valid)."""
        for overlay in self._overlays.values():
            overlay.clear()
        for rows in self._rows.values():
            rows.clear()
        self._version[0] += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """An opaque copy of the changes, for :meth:`restore`."""
        return {name: dict(ov) for name, ov in self._overlays.items()}

    def restore(self, snapshot: dict[str, dict[str, Any]]) -> None:
        """Go back to a :meth:`snapshot` of this world."""
        for name, overlay in self._overlays.items():
            overlay.clear()
            overlay.update(snapshot[name])
        self._version[0] += 1

    def freeze(self) -> World:
        """A fresh world whose base is this world's current state (tables without changes are shared)."""
        bases: dict[str, _BaseTable] = {}
        for name, base in self._bases.items():
            overlay = self._overlays[name]
            if not overlay:
                bases[name] = base
                continue
            rows = dict(base.rows)
            for key, row in overlay.items():
                if row is _DELETED:
                    rows.pop(key, None)
                else:
                    rows[key] = row
            new = _BaseTable(name, rows)
            new._digests = {k: d for k, d in base._digests.items() if k not in overlay}
            hashed = self._rows[name]
            for key, row in overlay.items():
                seen = hashed.get(key)
                if seen is not None and seen[0] is row:
                    new._digests[key] = seen[1]
            bases[name] = new
        return World(_bases=bases)

    def changed(self) -> dict[str, list[str]]:
        """Keys changed since the base, per table (only tables with changes)."""
        return {name: list(ov) for name, ov in self._overlays.items() if ov}

    def state_hash(self) -> str:
        """Hex digest of the whole state; equal states give equal hashes, whatever the path."""
        version = self._version[0]
        if self._hash is not None and self._hash[0] == version:
            return self._hash[1]
        h = hashlib.blake2b(digest_size=16)
        for name, base in self._bases.items():
            total = base.total()
            overlay = self._overlays[name]
            if overlay:
                hashed = self._rows[name]
                for key, row in overlay.items():
                    if key in base.rows:
                        total -= base.digest(key)
                    if row is not _DELETED:
                        seen = hashed.get(key)
                        if seen is not None and seen[0] is row:
                            total += seen[1]
                        else:
                            d = record_digest(name, key, row)
                            hashed[key] = (row, d)
                            total += d
            h.update(name.encode())
            h.update((total & _MASK).to_bytes(16, "big"))
        digest = h.hexdigest()
        self._hash = (version, digest)
        return digest

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The full current state as plain JSON-able data (slow: for debugging and export)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self._bases:
            table: Table[BaseModel] = self.table(name, BaseModel)
            out[name] = {key: row.model_dump(mode="json") for key, row in table.items()}
        return out
