"""Task family files: a parameterised scenario, its schema and its static checks.

A family (``scenarios/families/<toolkit>/<name>.yaml``) selects the records it is about with a
declarative query (:mod:`envsim.factory.query`), draws discrete choices, and renders an ordinary
scenario body from them (:mod:`envsim.factory.render`). Every problem of a family file is a
located ``file:line:col: field: message`` inside one :class:`~envsim.errors.ScenarioError`, as
for scenario files: schema errors with "did you mean", unknown toolkits, fixtures, tables,
fields, tools and tool arguments, references to bindings not yet bound, and templates outside
the allowed subset or naming what the family does not bind.

Example:
    >>> text = '''
    ... family: RetailProbe
    ... toolkit: retail
    ... kind: resolution
    ... description: A probe.
    ... select:
    ...   order: {table: orders, where: {status: delivered, total: 3}}
    ... scenario:
    ...   user: {goal: "Help with {{ ordr.id }}", opening: Hi}
    ...   expected: {actions: [{name: refund_item}]}
    ... '''
    >>> try:  # doctest: +ELLIPSIS
    ...     load_family_text(text)
    ... except ScenarioError as err:
    ...     print(err)
    <string>:7:53: select.order.where.total: orders records have no field 'total' (did you mean 'total_cents'?)
    <string>:9:16: scenario.user.goal: template line 1, column 14: undefined name 'ordr' (known names: ...)
    <string>:10:31: scenario.expected.actions.0.name: unknown tool 'refund_item' (did you mean 'refund_items'?)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from envsim.errors import Problem, ScenarioError, UnknownNameError
from envsim.factory.query import Binding
from envsim.factory.render import template_strings
from envsim.prompts import check_scenario_template
from envsim.scenario import Scenario
from envsim.suggest import did_you_mean
from envsim.yamlsource import Loc, YamlDocument, load_yaml, load_yaml_text, problems_from_validation

FamilyKind = Literal["resolution", "refusal", "escalation", "panic"]
"""What a correct agent does in every instance: resolve, refuse, escalate, or handle a panicked caller."""

Trait = Literal["multi_intent", "policy_trap", "escalation", "missing_facts", "wrong_fact", "distractor"]
"""The compositions a family may declare."""

BODY_EXCLUDED: tuple[str, ...] = ("id", "domain", "toolkits", "world", "source", "status")
"""Scenario fields a family body may not give: the generator derives them."""

BODY_FIELDS: tuple[str, ...] = tuple(name for name in Scenario.model_fields if name not in BODY_EXCLUDED)
"""Scenario fields a family body may give."""

RESERVED_NAMES: frozenset[str] = frozenset({"world_seed", "family"})
"""Names templates get besides the bindings and choices (so no binding or choice may take them)."""

_Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FamilyWorld(_Strict):
    """The worlds instances are drawn from: the toolkit's fixture generated from one of ``seeds``."""

    fixture: str = Field("default", description="The toolkit's fixture name.")
    seeds: list[int] = Field(min_length=1, max_length=10_000, description="World seeds; each instance draws one.")


class Family(_Strict):
    """A task family: records selected by a query, choices, and a scenario body rendered from them."""

    family: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", description="CamelCase name; instance ids derive from it.")
    toolkit: str = Field(min_length=1, description="The toolkit (and domain) of every instance.")
    kind: FamilyKind = Field(description="resolution, refusal, escalation or panic.")
    traits: list[Trait] = Field(default_factory=list, description="Compositions: multi_intent, policy_trap, ...")
    description: str = Field(min_length=1, description="What the family is about, for people.")
    world: FamilyWorld = Field(
        default_factory=lambda: FamilyWorld(seeds=[0]), description="Fixture and the world seeds to draw from."
    )
    select: dict[_Name, Binding] = Field(
        default_factory=dict, description="Ordered bindings: name -> one record (or a list with count)."
    )
    choose: dict[_Name, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="Discrete parameters drawn uniformly per instance: name -> values."
    )
    scenario: dict[str, Any] = Field(
        description="A scenario body (all but id, domain, toolkits, world, source); every string is a template."
    )

    def names(self) -> list[str]:
        """The names templates are rendered with: bindings, choices, and the reserved ones."""
        return [*self.select, *self.choose, *sorted(RESERVED_NAMES)]


@dataclass
class LoadedFamily:
    """A validated family with the document it came from (to locate problems found later)."""

    family: Family
    doc: YamlDocument
    path: Path | None
    extra: dict[str, Any] = field(default_factory=dict)

    def problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        """A problem located in the family file."""
        return self.doc.problem(loc, message, key=key)

    def body_problem(self, loc: Loc, message: str, *, key: bool = False) -> Problem:
        """A problem of a rendered scenario at ``loc`` (a scenario path), located in the family's body."""
        if loc and loc[0] in ("id", "domain", "toolkits", "world", "source"):
            return self.problem(("world",) if loc[0] == "world" else (), message)
        return self.doc.problem(("scenario", *loc), message, key=key)

    @property
    def name(self) -> str:
        """The family's name."""
        return self.family.family


def _raise(problems: list[Problem]) -> None:
    if problems:
        problems.sort(key=lambda p: (p.line, p.column))
        raise ScenarioError(problems)


def _static_problems(doc: YamlDocument, family: Family) -> list[Problem]:
    """Everything checkable without drawing an instance."""
    from envsim.toolkits import get_toolkit, table_record_types

    problems: list[Problem] = []
    for name in [*family.select, *family.choose]:
        if name in RESERVED_NAMES:
            section = "select" if name in family.select else "choose"
            problems.append(doc.problem((section, name), f"the name {name!r} is reserved", key=True))
    for name in set(family.select) & set(family.choose):
        problems.append(doc.problem(("choose", name), f"{name!r} is also a binding of select", key=True))
    try:
        kit = get_toolkit(family.toolkit)
    except UnknownNameError as err:
        problems.append(doc.problem(("toolkit",), str(err)))
        kit = None
    records: dict[str, type[BaseModel]] = {}
    if kit is not None:
        records = table_record_types(kit.state_model)
        if family.world.fixture not in kit.fixtures:
            problems.append(
                doc.problem(
                    ("world", "fixture"),
                    f"toolkit {family.toolkit!r} has no fixture {family.world.fixture!r}"
                    f"{did_you_mean(family.world.fixture, kit.fixtures)}; fixtures: {', '.join(sorted(kit.fixtures))}",
                )
            )
    earlier: list[str] = []
    for name, binding in family.select.items():
        loc: Loc = ("select", name)
        if kit is not None and binding.table is not None and binding.table not in records:
            problems.append(
                doc.problem(
                    (*loc, "table"),
                    f"unknown table {binding.table!r}{did_you_mean(binding.table, records)}; tables: "
                    f"{', '.join(records)}",
                )
            )
        elif binding.table is not None and binding.table in records:
            fields = records[binding.table].model_fields
            for path in binding.where:
                head = path.split(".", 1)[0]
                if head not in fields:
                    problems.append(
                        doc.problem(
                            (*loc, "where", path),
                            f"{binding.table} records have no field {head!r}{did_you_mean(head, fields)}",
                            key=True,
                        )
                    )
        for path, cond in binding.where.items():
            for ref in cond.refs():
                if ref.binding not in earlier:
                    problems.append(
                        doc.problem(
                            (*loc, "where", path),
                            f"{ref.ref!r} refers to {ref.binding!r}, which is not an earlier binding"
                            f"{did_you_mean(ref.binding, earlier)}",
                        )
                    )
        if binding.from_ is not None and binding.from_.split(".", 1)[0] not in earlier:
            head = binding.from_.split(".", 1)[0]
            problems.append(
                doc.problem((*loc, "from"), f"{head!r} is not an earlier binding{did_you_mean(head, earlier)}")
            )
        earlier.append(name)
    problems.extend(_body_problems(doc, family, kit))
    return problems


def _body_problems(doc: YamlDocument, family: Family, kit: Any) -> list[Problem]:
    problems: list[Problem] = []
    for key in family.scenario:
        if key in BODY_EXCLUDED:
            problems.append(
                doc.problem(
                    ("scenario", key), f"{key!r} is derived by the generator; a family body may not give it", key=True
                )
            )
        elif key not in BODY_FIELDS:
            problems.append(doc.problem(("scenario", key), f"unknown field{did_you_mean(key, BODY_FIELDS)}", key=True))
    names = family.names()
    for loc, text in template_strings(family.scenario, ("scenario",)):
        for found in check_scenario_template(text, names):
            problems.append(doc.problem(loc, f"template line {found.line}, column {found.column}: {found.message}"))
    expected = family.scenario.get("expected")
    if kit is None or not isinstance(expected, dict):
        return problems
    specs = kit.tool_specs
    for section in ("actions", "forbidden_actions", "required_actions", "argument_checks"):
        calls = expected.get(section)
        if not isinstance(calls, list):
            continue
        for i, call in enumerate(calls):
            name = call.get("name") if isinstance(call, dict) else call
            loc = ("scenario", "expected", section, i)
            if not isinstance(name, str) or "{" in name:
                continue
            if name not in specs:
                problems.append(
                    doc.problem(
                        (*loc, "name") if isinstance(call, dict) else loc,
                        f"unknown tool {name!r}{did_you_mean(name, specs)}",
                    )
                )
                continue
            arguments = call.get("arguments") if isinstance(call, dict) else None
            if isinstance(arguments, dict):
                allowed = specs[name].args_model.model_fields
                for arg in arguments:
                    if arg not in allowed:
                        problems.append(
                            doc.problem(
                                (*loc, "arguments", arg),
                                f"{name} has no argument {arg!r}{did_you_mean(str(arg), allowed)}; arguments: "
                                f"{', '.join(allowed)}",
                                key=True,
                            )
                        )
    return problems


def validate_family_document(doc: YamlDocument) -> LoadedFamily:
    """Validate a parsed document as a family (schema and static checks); raises :class:`ScenarioError`."""
    if not isinstance(doc.data, dict):
        _raise([doc.problem((), "a family file must be a mapping of fields (family, toolkit, ...)", field="")])
    try:
        family = Family.model_validate(doc.data)
    except ValidationError as err:
        _raise(problems_from_validation(doc, err, Family))
        raise  # pragma: no cover - _raise raised
    _raise(_static_problems(doc, family))
    return LoadedFamily(family, doc, doc.path)


def load_family_text(text: str, path: Path | None = None) -> LoadedFamily:
    """Load and check a family from YAML text; raises :class:`ScenarioError` with every located problem."""
    return validate_family_document(load_yaml_text(text, path))


def load_family(path: str | Path) -> LoadedFamily:
    """Load and check a family file; raises :class:`ScenarioError` with every located problem."""
    return validate_family_document(load_yaml(Path(path)))


def is_family_file(path: Path) -> bool:
    """Whether ``path`` is a family file: it has a top-level ``family:`` key (a line starting with it).

    A scenario file has no such key (its schema forbids unknown keys), so this never takes a scenario.
    """
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return any(line.startswith(("family:", '"family":', "'family':")) for line in handle)
    except OSError:
        return False
