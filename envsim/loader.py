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

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from envsim.errors import Problem, ScenarioError
from envsim.lint import lint_scenario
from envsim.scenario import SCENARIO_DIR_CONTEXT, Scenario
from envsim.yamlsource import YamlDocument, load_yaml, load_yaml_text, problems_from_validation


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
