"""The toolkit registry and the construction of a scenario's initial world.

Scenario files name toolkits; they never name Python code (a scenario file is untrusted
input). Built-in toolkits come from :mod:`tools_mock`; an installed package adds one through the
``envsim.toolkits`` entry point group (see :mod:`envsim.plugins`), and code adds one with
:func:`register_toolkit`. When names meet, :func:`register_toolkit` wins over a built-in, and a
built-in over a package's.

Example:
    >>> kit = get_toolkit("retail")
    >>> kit.name
    'retail'
    >>> get_toolkit("retial")
    Traceback (most recent call last):
    ...
    envsim.errors.UnknownNameError: unknown toolkit 'retial' (did you mean 'retail'?)
"""

from __future__ import annotations

import importlib
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ValidationError

from envsim.errors import OverrideError, ToolkitLoadError, UnknownNameError
from envsim.plugins import origin, plugin_toolkits
from envsim.suggest import did_you_mean
from envsim.tools import Toolkit
from envsim.world import World, WorldSpec, WorldState
from tools_mock import BUILTIN_TOOLKITS

_REGISTRY: dict[str, str | type[Toolkit]] = dict(BUILTIN_TOOLKITS)
_FROM: dict[str, str] = {}
"""Name → where a package's toolkit was declared (:func:`envsim.plugins.origin`), for messages."""
_CLASHES: dict[str, str] = {}
"""Name → why it cannot be used (several packages declare it)."""
_plugins_read = False


def _read_plugins() -> None:
    """Add the toolkits installed packages declare (``envsim.toolkits`` entry points), once per process."""
    global _plugins_read
    if _plugins_read:
        return
    _plugins_read = True
    single, clashes = plugin_toolkits()
    for name, entry in single.items():
        if name not in _REGISTRY:
            _REGISTRY[name] = entry.value
            _FROM[name] = origin(entry)
    for name, entries in clashes.items():
        if name not in _REGISTRY:
            _CLASHES[name] = f"toolkit {name!r} is declared by several packages: " + "; ".join(map(origin, entries))


def register_toolkit(name: str, toolkit: str | type[Toolkit]) -> None:
    """Make a toolkit available to scenarios under ``name`` (a class or ``"module:Class"``)."""
    _read_plugins()  # so that a package's toolkit of the same name never replaces this one later
    _REGISTRY[name] = toolkit
    _FROM.pop(name, None)
    _CLASHES.pop(name, None)
    fixture_world.cache_clear()  # worlds built from the toolkit this name meant before
    _built_world.cache_clear()


def toolkit_names() -> list[str]:
    """Names of every registered toolkit (built-in, from installed packages, registered in code)."""
    _read_plugins()
    return sorted(_REGISTRY)


def get_toolkit(name: str) -> type[Toolkit]:
    """The toolkit class registered as ``name``.

    Raises:
        UnknownNameError: no toolkit has that name.
        ToolkitLoadError: the name is registered but its class cannot be used (the message says
            which entry point or ``"module:Class"`` and why).
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        _read_plugins()
        if name in _CLASHES:
            raise ToolkitLoadError(_CLASHES[name])
        entry = _REGISTRY.get(name)
        if entry is None:
            raise UnknownNameError(f"unknown toolkit {name!r}{did_you_mean(name, _REGISTRY)}")
    if isinstance(entry, str):
        entry = _import_toolkit(name, entry)
        _REGISTRY[name] = entry
    return entry


def _import_toolkit(name: str, target: str) -> type[Toolkit]:
    """The class ``"module:Class"`` names, checked to be a toolkit."""
    where = _FROM.get(name, repr(target))
    module, _, attr = target.partition(":")
    try:
        found = getattr(importlib.import_module(module), attr) if attr else None
    except Exception as err:  # a broken package's error, reported as this toolkit's
        raise ToolkitLoadError(f"toolkit {name!r} ({where}) cannot be imported: {type(err).__name__}: {err}") from err
    if not (isinstance(found, type) and issubclass(found, Toolkit)):
        raise ToolkitLoadError(f"toolkit {name!r} ({where}) does not name an envsim.tools.Toolkit subclass")
    return found


def table_record_types(state_model: type[WorldState]) -> dict[str, type[BaseModel]]:
    """Table name → record model of a state model (fields typed ``dict[str, Record]``)."""
    out: dict[str, type[BaseModel]] = {}
    for name, info in state_model.model_fields.items():
        args = typing.get_args(info.annotation)
        if len(args) != 2 or not (isinstance(args[1], type) and issubclass(args[1], BaseModel)):
            raise TypeError(f"{state_model.__name__}.{name} must be typed dict[str, <Record model>]")
        out[name] = args[1]
    return out


@lru_cache(maxsize=64)
def fixture_world(toolkit: str, fixture: str, seed: int) -> World:
    """The world of ``toolkit``'s ``fixture`` generated from ``seed`` (cached; fork it to use)."""
    kit = get_toolkit(toolkit)
    make = kit.fixtures.get(fixture)
    if make is None:
        raise UnknownNameError(
            f"toolkit {toolkit!r} has no fixture {fixture!r}{did_you_mean(fixture, kit.fixtures)}"
            f"; fixtures: {', '.join(sorted(kit.fixtures))}"
        )
    return World(make(seed))


def apply_records(
    world: World, records: Mapping[str, Mapping[str, Any]], record_types: dict[str, type[BaseModel]], *, where: str
) -> None:
    """Merge ``{table: {key: patch-or-record-or-None}}`` into ``world`` (validated).

    A patch on an existing key updates its fields; a new key must be a whole record; ``None``
    deletes. Errors raise :class:`OverrideError` located under ``where``.
    """
    for table_name, rows in records.items():
        record_type = record_types.get(table_name)
        if record_type is None:
            raise OverrideError(
                (where, table_name),
                f"unknown table{did_you_mean(table_name, record_types)}; tables: {', '.join(record_types)}",
                at_key=True,
            )
        table = world.table(table_name, record_type)
        if not isinstance(rows, Mapping):
            raise OverrideError((where, table_name), "expected a mapping of record id to record")
        for key, patch in rows.items():
            key = str(key)
            if patch is None:
                table.delete(key)
                continue
            if not isinstance(patch, Mapping):
                raise OverrideError((where, table_name, key), "expected a mapping of field to value, or null to delete")
            current = table.get(key)
            data = {**current.model_dump(), **patch} if current is not None else dict(patch)
            try:
                table.put(key, record_type.model_validate(data))
            except ValidationError as err:
                first = err.errors(include_url=False)[0]
                message = "required field is missing" if first["type"] == "missing" else first["msg"]
                raise OverrideError((where, table_name, key, *first["loc"]), message) from None


def build_world(
    toolkits: tuple[str, ...],
    fixture: str | None,
    seed: int,
    inline: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None,
) -> World:
    """The initial world of a scenario: fixtures (or empty tables) + inline records + overrides.

    The result's changes are then frozen into a new base, so that episodes fork it cheaply.
    """
    parts: list[World] = []
    record_types: dict[str, type[BaseModel]] = {}
    for name in toolkits:
        kit = get_toolkit(name)
        record_types.update(table_record_types(kit.state_model))
        if fixture is not None:
            parts.append(fixture_world(name, fixture, seed).fork())
        else:
            parts.append(World(kit.state_model.model_validate({t: {} for t in kit.state_model.model_fields})))
    world = World.merge(parts) if len(parts) != 1 else parts[0]
    if inline:
        apply_records(world, inline, record_types, where="inline")
    if overrides:
        apply_records(world, overrides, record_types, where="overrides")
    return world.freeze()


@dataclass(frozen=True)
class _WorldKey:
    """A ``world:`` section as a cache key: its Python values as they are (a YAML date and its ISO string differ)."""

    toolkits: tuple[str, ...]
    values: str
    spec: WorldSpec = field(compare=False, hash=False)


def initial_world(toolkits: tuple[str, ...], spec: WorldSpec) -> World:
    """The initial world of a scenario's ``world:`` section, built once per process (see :func:`build_world`).

    Every environment of a scenario starts from the same world, so a batch run's hundreds of
    environments share one: its records, their digests (:meth:`World.state_hash`) and lookup
    indexes are made once, not once per environment. Fork it to use it: it is shared.

    Example:
        >>> initial_world(("retail",), WorldSpec()) is initial_world(("retail",), WorldSpec())
        True
    """
    return _built_world(_WorldKey(toolkits, json.dumps(spec.model_dump(), default=repr), spec))


@lru_cache(maxsize=256)
def _built_world(key: _WorldKey) -> World:
    spec = key.spec
    return build_world(key.toolkits, spec.fixture, spec.seed, spec.inline, spec.overrides)
