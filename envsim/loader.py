"""Loading scenario files: YAML → validated, linted :class:`~envsim.scenario.Scenario`.

Every problem comes back as ``path:line:col: field.path: message`` inside one
:class:`~envsim.errors.ScenarioError`, with "did you mean" suggestions for misspelt keys,
values, tool names and toolkits.

Example:
    >>> from envsim.errors import ScenarioError
    >>> try:
    ...     load_scenario_text("id: X\\ndomian: retail\\n")
    ... except ScenarioError as err:
    ...     print(err.problems[-1])
    <string>:2:1: domian: unknown field (did you mean 'domain'?)
"""

from __future__ import annotations

import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from envsim.errors import Problem, ScenarioError
from envsim.scenario import SCENARIO_DIR_CONTEXT, Scenario
from envsim.suggest import closest, did_you_mean
from envsim.yamlsource import Loc, YamlDocument, load_yaml, load_yaml_text


def _unwrap(annotation: Any) -> list[Any]:
    """The member types of an annotation (Optional/Union unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation one step down ``part`` (a field name, list index or dict key)."""
    for member in _unwrap(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            field = member.model_fields.get(part)
            if field is not None:
                return field.annotation
        origin = typing.get_origin(member)
        if origin in (list, tuple) and isinstance(part, int):
            return typing.get_args(member)[0]
        if origin is dict:
            return typing.get_args(member)[1]
    return None


def allowed_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names allowed at the mapping ``loc`` points into (for suggestions)."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    for member in _unwrap(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return list(member.model_fields)
        if typing.get_origin(member) is dict:
            key_type = typing.get_args(member)[0]
            if typing.get_origin(key_type) is typing.Literal:
                return [str(a) for a in typing.get_args(key_type)]
    return []


def _literal_values(model: type[BaseModel], loc: Loc) -> list[str]:
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    values: list[str] = []
    for member in _unwrap(annotation):
        if typing.get_origin(member) is typing.Literal:
            values.extend(str(a) for a in typing.get_args(member))
    return values


_PATTERN_WORDS = {
    r"^[A-Z][A-Za-z0-9]*$": "must be CamelCase (a capital letter, then letters and digits only)",
    r"^[a-z][a-z0-9_]*$": "must be snake_case (a lower-case letter, then lower-case letters, digits and _)",
}
"""Plain words for the schema's string patterns (a regex is no message for a scenario author)."""


def _misspelt(errors: list[Any], model: type[BaseModel]) -> set[Loc]:
    """Locations of missing fields that an unknown key beside them is a misspelling of."""
    meant: set[Loc] = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            loc = tuple(e["loc"])
            match = closest(str(loc[-1]), allowed_keys(model, loc[:-1]))
            if match is not None:
                meant.add((*loc[:-1], match))
    return meant


def problems_from_validation(doc: YamlDocument, err: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Turn pydantic's errors into located problems with suggestions.

    A required field reported missing because its key is misspelt is reported once, as the
    unknown key with its "did you mean".
    """
    problems: list[Problem] = []
    errors = err.errors(include_url=False)
    misspelt = _misspelt(errors, model)
    for e in errors:
        loc: Loc = tuple(e["loc"])
        kind = e["type"]
        if loc and loc[-1] == "[key]":  # an invalid key of a dict
            loc = loc[:-1]
            bad = str(loc[-1])
            problems.append(
                doc.problem(loc, f"unknown key {bad!r}{did_you_mean(bad, allowed_keys(model, loc[:-1]))}", key=True)
            )
            continue
        if kind == "extra_forbidden":
            name = str(loc[-1])
            choices = allowed_keys(model, loc[:-1])
            problems.append(doc.problem(loc, f"unknown field{did_you_mean(name, choices)}", key=True))
        elif kind == "missing":
            if loc not in misspelt:
                problems.append(doc.problem(loc, "required field is missing", key=True))
        elif kind == "string_pattern_mismatch":
            pattern = str(e.get("ctx", {}).get("pattern", ""))
            words = _PATTERN_WORDS.get(pattern, f"must match the pattern {pattern!r}")
            problems.append(doc.problem(loc, f"{words}, got {e.get('input')!r}"))
        elif kind == "literal_error":
            given = str(e.get("input"))
            message = e["msg"]
            suggestion = did_you_mean(given, _literal_values(model, loc))
            problems.append(doc.problem(loc, f"{message}, got {given!r}{suggestion}"))
        else:
            message = e["msg"].removeprefix("Value error, ")
            problems.append(doc.problem(loc, message))
    return problems


def _raise(problems: list[Problem]) -> None:
    if problems:
        problems.sort(key=lambda p: (p.line, p.column))
        raise ScenarioError(problems)


_STAND_INS: dict[str, Any] = {
    "id": "Unnamed",
    "domain": "unknown",
    "description": "-",
    "toolkits": ["-"],
    "agent": {"guidelines": "-"},
    "user": {"goal": "-", "opening": "-"},
    "expected": {},
}
"""Valid values standing in for required sections that failed validation (the lint skips them)."""


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def validation_context(doc: YamlDocument) -> dict[str, Any]:
    """Pydantic's validation context for a scenario document: the folder its relative paths start from."""
    return {SCENARIO_DIR_CONTEXT: doc.path.parent} if doc.path is not None else {}


def salvage(
    data: dict[str, Any], err: ValidationError, context: dict[str, Any] | None = None
) -> tuple[Scenario | None, frozenset[str]]:
    """A scenario made of the parts of ``data`` that validate, and the sections that did not.

    Each section (a top-level field, or a field of ``world``, ``agent``, ``user``, ``expected``
    or ``reward``) with an error is dropped for its default or a valid stand-in and named in the
    returned set (``"expected.actions"``), so that the lint can check everything else. ``None``
    when no such scenario can be made.
    """
    data = dict(data)
    broken: set[str] = set()
    for _ in range(3):
        for e in err.errors(include_url=False):
            loc = e["loc"]
            if not loc:
                return None, frozenset()
            top = str(loc[0])
            field = Scenario.model_fields.get(top)
            if field is None:  # an unknown top-level key
                data.pop(top, None)
                continue
            model = _section_model(field.annotation)
            if model is not None and len(loc) >= 2 and isinstance(loc[1], str) and isinstance(data.get(top), dict):
                part = loc[1]
                section = data[top] = dict(data[top])
                inner = model.model_fields.get(part)
                if inner is None:  # an unknown key of the section
                    section.pop(part, None)
                    continue
                broken.add(f"{top}.{part}")
                if inner.is_required():
                    section[part] = "-"
                else:
                    section.pop(part, None)
                continue
            broken.add(top)
            if field.is_required():
                data[top] = _STAND_INS[top]
            else:
                data.pop(top, None)
        try:
            return Scenario.model_validate(data, context=context), frozenset(broken)
        except ValidationError as again:
            err = again
    return None, frozenset()


def validate_document(doc: YamlDocument, *, lint: bool = True) -> Scenario:
    """Validate a parsed document as a scenario (and lint it unless ``lint=False``).

    Every problem found is raised at once: schema errors, and the lint of every section that
    validated (see :func:`salvage`).
    """
    if not isinstance(doc.data, dict):
        empty = "the file is empty: " if doc.data is None else ""
        _raise([doc.problem((), f"{empty}a scenario file must be a mapping of fields (id, domain, ...)", field="")])
    problems: list[Problem] = []
    broken: frozenset[str] = frozenset()
    try:
        scenario: Scenario | None = Scenario.model_validate(doc.data, context=validation_context(doc))
    except ValidationError as err:
        problems = problems_from_validation(doc, err, Scenario)
        scenario, broken = salvage(doc.data, err, validation_context(doc)) if lint else (None, frozenset())
    if lint and scenario is not None:
        from envsim.lint import lint_scenario

        problems += [doc.problem(loc, message, key=key) for loc, message, key in lint_scenario(scenario, broken=broken)]
    _raise(problems)
    assert scenario is not None
    return scenario


def load_scenario_text(text: str, path: Path | None = None, *, lint: bool = True) -> Scenario:
    """Load a scenario from YAML text."""
    return validate_document(load_yaml_text(text, path), lint=lint)


def load_scenario(path: str | Path, *, lint: bool = True) -> Scenario:
    """Load, validate and lint a scenario file; raises :class:`ScenarioError` with every problem."""
    p = Path(path)
    return _load_cached(p.resolve(), p.stat().st_mtime_ns if p.exists() else 0, lint, p)


@lru_cache(maxsize=512)
def _load_cached(resolved: Path, mtime: int, lint: bool, shown: Path) -> Scenario:
    return validate_document(load_yaml(shown), lint=lint)
