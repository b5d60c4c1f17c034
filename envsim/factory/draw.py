"""Drawing family instances: parameters from a seeded generator, then a candidate scenario.

Draw ``k`` of a family under seed ``S`` uses ``random.Random(f"{S}:{family}:{k}")`` (string seeds
are hashed deterministically): it draws a world seed, then each binding in order among the records
that match its ``where`` given the earlier bindings (table records sorted by id, list elements in
order), then each choice. A draw whose required binding matches nothing tries again (a new world
seed) a few times before it gives up. The parameters are ``{world_seed, bindings: {name: record id,
list index, a list of them, or null}, choices}``; the instance id is the family name, ``X``, and ten
base32 characters of the SHA-256 of the parameters' canonical JSON.

The records a query reads are each table of the toolkit's fixture world, dumped once per process
(``model_dump(mode="json")``, sorted by id); a binding's conditions that read no other binding are
applied once per world seed (starting from the table's index on a field one of them wants equal to a
text or a boolean), and an equality with a reference is answered from an index.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from envsim.errors import NoMatch, Problem, RenderError
from envsim.factory.family import LoadedFamily
from envsim.factory.query import Binding, CompiledCondition, Condition, Ref, compile_conditions, lookup, matches
from envsim.factory.render import as_context, live_containers, render_body
from envsim.scenario import SCENARIO_DIR_CONTEXT, Scenario
from envsim.toolkits import get_toolkit, initial_world, table_record_types
from envsim.world import World, WorldSpec

GENERATOR = "envsim-factory/1"
"""The generator's name and version, recorded in every generated scenario's ``source``."""

ATTEMPTS = 8
"""Tries of one draw (each with a new world seed) before a binding that matches nothing fails it."""


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON (sorted keys, no spaces): the input of ids and split buckets."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def instance_id(family: str, parameters: dict[str, Any]) -> str:
    """The id of the instance of ``family`` with ``parameters``.

    Example:
        >>> instance_id("RetailProbe", {"world_seed": 1, "bindings": {}, "choices": {}})
        'RetailProbeX3J4UZYUWFO'
    """
    digest = hashlib.sha256(canonical_json(parameters).encode()).digest()
    return f"{family}X{base64.b32encode(digest).decode()[:10]}"


def split_key(family: str, parameters: dict[str, Any]) -> str:
    """What decides an instance's split: its family, world seed and bound records (not its choices).

    Two instances that share their records share their split, whatever persona or reason they drew.
    """
    return hashlib.sha256(
        f"{family}\x00{parameters['world_seed']}\x00{canonical_json(parameters['bindings'])}".encode()
    ).hexdigest()


Row = tuple[str, dict[str, Any]]
"""A table record: its id and its fields as JSON data."""


@lru_cache(maxsize=1024)
def table_records(toolkit: str, fixture: str, seed: int, table: str) -> tuple[Row, ...]:
    """The records of a fixture world's table as JSON data, sorted by id (shared: never modify them)."""
    record_type = table_record_types(get_toolkit(toolkit).state_model)[table]
    rows = sorted(family_world(toolkit, fixture, seed).table(table, record_type).items(), key=itemgetter(0))
    dumped = _list_adapter(record_type).dump_python([record for _, record in rows], mode="json")
    return tuple(zip((key for key, _ in rows), dumped, strict=True))


@lru_cache(maxsize=256)
def _list_adapter(record_type: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """The adapter that dumps a list of ``record_type`` records (made once per type)."""
    return TypeAdapter(list[record_type])  # type: ignore[valid-type]


def family_world(toolkit: str, fixture: str, seed: int) -> World:
    """The initial world of an instance drawn with world ``seed``: the one its scenario's environments use
    (:func:`envsim.toolkits.initial_world`, built once per process; shared, never modify it)."""
    return initial_world((toolkit,), WorldSpec(fixture=fixture, seed=seed))


_KEYS = (str, int, bool, type(None))


@lru_cache(maxsize=4096)
def _static_rows(toolkit: str, fixture: str, seed: int, table: str, where: str) -> list[Row]:
    """The rows of a table meeting conditions that read no binding (``where``: their canonical JSON);
    shared by every family and binding that asks the same."""
    conditions = [(path, Condition.model_validate(cond)) for path, cond in json.loads(where)]
    if not conditions:
        return list(table_records(toolkit, fixture, seed, table))
    at = next((i for i, (_, cond) in enumerate(conditions) if _indexable(cond)), None)
    rows: list[Row] | tuple[Row, ...]
    if at is None:
        rows = table_records(toolkit, fixture, seed, table)
    else:  # the rows whose field equals the wanted text (or one of them), from the table's index on that field
        path, cond = conditions.pop(at)
        index = _row_index(toolkit, fixture, seed, table, "[]", path)
        wanted = cond.operand if cond.operator == "in" else [cond.operand]
        buckets = [index.get(key, []) for key in dict.fromkeys((type(w), w) for w in wanted)]
        rows = buckets[0] if len(buckets) == 1 else sorted(chain.from_iterable(buckets), key=itemgetter(0))
    for path, test in compile_conditions(conditions):  # one condition at a time over the rows left
        holds = test.predicate()
        if "." in path:
            rows = [row for row in rows if holds(lookup(row[1], path))]
        else:
            rows = [row for row in rows if holds(row[1].get(path))]
    return list(rows)


def _indexable(cond: Condition) -> bool:
    """Whether ``cond`` holds exactly for the values under some keys of :func:`_row_index`: equality with
    text or a boolean, or ``in`` a list of them (a number would also equal a float, which the index keys apart)."""
    if cond.operator == "eq":
        return type(cond.operand) in (str, bool)
    operand = cond.operand
    return cond.operator == "in" and isinstance(operand, list) and all(type(w) in (str, bool) for w in operand)


@lru_cache(maxsize=4096)
def _row_index(toolkit: str, fixture: str, seed: int, table: str, where: str, path: str) -> dict[Any, list[Row]]:
    """:func:`_static_rows` indexed by the value at ``path`` (typed keys: ``1`` and ``True`` differ)."""
    index: dict[Any, list[Row]] = {}
    simple = "." not in path
    for row in _static_rows(toolkit, fixture, seed, table, where):
        value = row[1].get(path) if simple else lookup(row[1], path)
        if type(value) in _KEYS:
            index.setdefault((type(value), value), []).append(row)
    return index


@dataclass(frozen=True)
class Parameters:
    """One draw's parameters and the values the family's templates are rendered over."""

    values: dict[str, Any]
    context: dict[str, Any]


@dataclass
class Candidate:
    """A drawn instance: its parameters and the scenario rendered from them (or why it could not be).

    ``data`` is the scenario as plain data (written to the file); ``scenario`` its validated model;
    ``problem`` the located reason it is invalid (a template that failed to render, a schema error).
    """

    family: LoadedFamily
    index: int
    seed: int
    parameters: dict[str, Any]
    id: str
    data: dict[str, Any]
    scenario: Scenario | None
    problem: Problem | None

    @property
    def split_key(self) -> str:
        """See :func:`split_key`."""
        return split_key(self.family.name, self.parameters)


class Drawer:
    """Draws the instances of one family (caches its queries' answers per world seed)."""

    def __init__(self, loaded: LoadedFamily) -> None:
        self.loaded = loaded
        self.family = loaded.family
        self._live = live_containers(loaded.family.scenario)
        self._wheres = {name: self._where(name) for name, b in loaded.family.select.items() if b.table is not None}
        self._plans: dict[str, tuple[list[tuple[str, CompiledCondition]], tuple[str, Ref] | None]] = {}
        self._all_tests = {n: compile_conditions(list(b.where.items())) for n, b in loaded.family.select.items()}
        for name, binding in self.family.select.items():
            bound = binding.bound_conditions()
            at = next(
                (
                    i
                    for i, (_, cond) in enumerate(bound)
                    if cond.operator == "eq" and isinstance(cond.operand, Ref) and binding.table is not None
                ),
                None,
            )
            if at is None:
                self._plans[name] = (compile_conditions(bound), None)
            else:
                path, cond = bound[at]
                self._plans[name] = (compile_conditions([*bound[:at], *bound[at + 1 :]]), (path, cond.operand))

    def warm(self, seed: int, draws: int) -> None:
        """Build now what the family's first ``draws`` draws under ``seed`` and their episodes read: the
        worlds of the seeds they draw first (and their state hashes), each binding's query answers on them."""
        family = self.family
        seeds = {random.Random(f"{seed}:{family.family}:{k}").choice(family.world.seeds) for k in range(draws)}
        for world_seed in sorted(seeds):
            family_world(family.toolkit, family.world.fixture, world_seed).state_hash()
            for name, binding in family.select.items():
                if binding.table is not None:
                    self.static_matches(name, world_seed)

    # -- queries -----------------------------------------------------------------------------

    def _where(self, name: str) -> str:
        binding = self.family.select[name]
        return canonical_json(
            [[path, cond.model_dump(by_alias=True, exclude_unset=True)] for path, cond in binding.static_conditions()]
        )

    def static_matches(self, name: str, seed: int) -> list[Row]:
        """The records of binding ``name``'s table in world ``seed`` that meet its conditions without refs."""
        table = self.family.select[name].table
        assert table is not None
        return _static_rows(self.family.toolkit, self.family.world.fixture, seed, table, self._wheres[name])

    def _indexed(self, name: str, seed: int, path: str) -> dict[Any, list[Row]]:
        table = self.family.select[name].table
        assert table is not None
        return _row_index(self.family.toolkit, self.family.world.fixture, seed, table, self._wheres[name], path)

    def candidates(self, name: str, seed: int, bound: dict[str, Any]) -> list[tuple[Any, Any]]:
        """``(parameter, value)`` of every record (or list element) binding ``name`` may take given ``bound``."""
        binding: Binding = self.family.select[name]
        rest, indexed = self._plans[name]
        if binding.from_ is not None:
            source = lookup(bound, binding.from_)
            if not isinstance(source, list | tuple):
                return []
            return [(i, item) for i, item in enumerate(source) if matches(item, self._all_tests[name], bound)]
        if indexed is not None:
            path, ref = indexed
            want = ref.resolve(bound)
            if type(want) in _KEYS:
                rows = self._indexed(name, seed, path).get((type(want), want), [])
            else:
                rows = [row for row in self.static_matches(name, seed) if lookup(row[1], path) == want]
        else:
            rows = self.static_matches(name, seed)
        if rest:
            fixed = [(path, cond.resolved(bound)) for path, cond in rest]  # each reference read once, not per row
            rows = [row for row in rows if matches(row[1], fixed, bound)]
        return rows

    # -- draws ---------------------------------------------------------------------------------

    def parameters(self, seed: int, index: int) -> Parameters:
        """The parameters of draw ``index`` under ``seed``; raises :class:`NoMatch` when it cannot be made."""
        rng = random.Random(f"{seed}:{self.family.family}:{index}")
        failed = ""
        for _ in range(ATTEMPTS):
            world_seed = rng.choice(self.family.world.seeds)
            try:
                bindings, values = self._bind(world_seed, rng)
            except NoMatch as miss:
                failed = miss.binding
                continue
            choices = {name: rng.choice(options) for name, options in self.family.choose.items()}
            context = {**values, **as_context(choices), "world_seed": world_seed, "family": self.family.family}
            return Parameters({"world_seed": world_seed, "bindings": bindings, "choices": choices}, context)
        raise NoMatch(failed)

    def _bind(self, world_seed: int, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
        bindings: dict[str, Any] = {}
        values: dict[str, Any] = {}
        for name, binding in self.family.select.items():
            found = self.candidates(name, world_seed, values)
            if binding.count is not None:
                if len(found) < binding.count:
                    raise NoMatch(name)
                picked = sorted(rng.sample(range(len(found)), binding.count))
                bindings[name] = [found[i][0] for i in picked]
                values[name] = [as_context(found[i][1]) for i in picked]
            elif not found:
                if not binding.optional:
                    raise NoMatch(name)
                bindings[name] = None
                values[name] = None
            else:
                param, value = found[rng.randrange(len(found))]
                bindings[name] = param
                values[name] = as_context(value)
        return bindings, values

    def candidate(self, seed: int, index: int, parameters: Parameters) -> Candidate:
        """The scenario of one draw, rendered and validated (``problem`` set when it is invalid)."""
        family = self.family
        values = parameters.values
        ident = instance_id(family.family, values)
        data: dict[str, Any] = {}
        problem: Problem | None = None
        try:
            body = render_body(family.scenario, parameters.context, live=self._live)
        except RenderError as err:
            body = {}
            problem = self.loaded.problem(("scenario", *err.loc), f"template line {err.line}: {err.message}")
        merged = {
            "id": ident,
            "domain": family.toolkit,
            "description": family.description,
            "toolkits": [family.toolkit],
            "world": {"fixture": family.world.fixture, "seed": values["world_seed"]},
            **body,
            "source": {"family": family.family, "parameters": values, "seed": seed, "generator": GENERATOR},
        }
        tags = (
            [*merged.get("tags", []), family.kind, *family.traits] if isinstance(merged.get("tags", []), list) else []
        )
        merged["tags"] = list(dict.fromkeys(tags))
        data = {name: merged[name] for name in Scenario.model_fields if name in merged}
        scenario: Scenario | None = None
        if problem is None:
            try:
                # relative paths in the body (a judge's rubric file) start from the family file's folder
                where = {SCENARIO_DIR_CONTEXT: self.loaded.path.parent} if self.loaded.path is not None else {}
                scenario = Scenario.model_validate(data, context=where)
            except ValidationError as err:
                first = err.errors(include_url=False)[0]
                loc = tuple(first["loc"])
                message = "required field is missing" if first["type"] == "missing" else first["msg"]
                problem = self.loaded.body_problem(
                    loc, message.removeprefix("Value error, "), key=first["type"] == "missing"
                )
        return Candidate(self.loaded, index, seed, values, ident, data, scenario, problem)


def distinct_candidates(drawer: Drawer, count: int, seed: int) -> Iterator[Candidate]:
    """The first ``count`` candidates of ``drawer``'s family under ``seed`` with distinct parameters (ungated).

    Draws that match nothing or repeat earlier parameters are skipped; at most ``4 * count + 16``
    draws are made, so a family with fewer distinct instances gives fewer.
    """
    seen: set[str] = set()
    for index in range(4 * count + 16):
        if len(seen) >= count:
            return
        try:
            params = drawer.parameters(seed, index)
        except NoMatch:
            continue
        key = canonical_json(params.values)
        if key in seen:
            continue
        seen.add(key)
        yield drawer.candidate(seed, index, params)


def instances(loaded: LoadedFamily, count: int, seed: int) -> list[Candidate]:
    """The first ``count`` candidates of ``loaded`` under ``seed`` with distinct parameters (ungated):
    :func:`distinct_candidates` of a new :class:`Drawer`."""
    return list(distinct_candidates(Drawer(loaded), count, seed))
