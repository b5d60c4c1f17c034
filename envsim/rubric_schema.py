"""The schema of a judge rubric, how one is read, and the rubric references a scenario's ``reward.judges`` holds.

A **rubric** (:class:`JudgeRubric`) names criteria; each has a scale (``pass_fail`` or a range
such as ``1-5``), what each score means, optional worked examples and a weight. Rubrics are
untrusted input, read like scenario files: through :mod:`envsim.yamlsource` (bounded, located),
unknown keys being errors. A scenario names a rubric by a shipped rubric's name
(``envsim/reward/rubrics/<name>.yaml``), a rubric file's path relative to the scenario file, or inline;
:func:`resolve_reference` checks one and reads a file's rubric in. The judge itself is
:mod:`envsim.reward.judge`; this module depends on no part of :mod:`envsim.reward`, so that
:mod:`envsim.scenario` can validate rubric references when it is imported.

Example:
    >>> "empathy_panicked_caller" in shipped_rubrics()
    True
    >>> resolve_reference("empathy_panicked_caller", None)
    'empathy_panicked_caller'
    >>> load_rubric_text("name: tone\\ncriteria: [{id: polite, description: Is the agent polite, scale: pass_fail, "
    ...                  "levels: {pass: Yes., fail: No.}}]").criteria[0].allowed_scores()
    ['fail', 'pass']
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from envsim.errors import ScenarioError
from envsim.suggest import did_you_mean
from envsim.yamlsource import YamlDocument, load_yaml, load_yaml_text, problems_from_validation

RUBRICS_FOLDER = "rubrics"
"""The folder of the shipped rubrics, inside ``envsim/reward/``."""

Aggregation = Literal["mean", "median", "majority"]
"""How the samples of one judgement are combined, per criterion."""

RawScore = int | str
"""A criterion score as the judge gave it: an integer on a range scale, ``"pass"``/``"fail"`` otherwise."""

JudgeReference = str | dict[str, Any]
"""What ``reward.judges`` maps a judge name to: a shipped rubric's name, a rubric file's path, or a rubric."""

_SCALE = re.compile(r"^(\d+)-(\d+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SUFFIXES = (".yaml", ".yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionExample(_Strict):
    """A worked example for one criterion: an excerpt of a conversation and the score it deserves."""

    excerpt: str = Field(min_length=1, description="A short piece of conversation (or a description of one).")
    score: int | str = Field(description="The score this excerpt deserves on the criterion's scale.")
    rationale: str = Field("", description="Why it deserves that score.")


class Criterion(_Strict):
    """One thing the judge scores, on its own scale."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier, e.g. resolution; a key of the reply.")
    description: str = Field(min_length=1, description="What is judged, as a question or statement.")
    scale: str = Field("1-5", description="'pass_fail', or an integer range 'LOW-HIGH' such as '1-5'.")
    levels: dict[str, str] = Field(
        default_factory=dict,
        description="What each score means (score → meaning); the scale's ends are required.",
    )
    examples: list[CriterionExample] = Field(default_factory=list, description="Optional worked examples.")
    weight: float = Field(1.0, ge=0, description="Weight of this criterion in the overall score.")

    @field_validator("scale")
    @classmethod
    def _valid_scale(cls, scale: str) -> str:
        if scale == "pass_fail":
            return scale
        match = _SCALE.match(scale)
        if match is None:
            raise ValueError(f"scale must be 'pass_fail' or a range 'LOW-HIGH' such as '1-5', got {scale!r}")
        low, high = int(match.group(1)), int(match.group(2))
        if not low < high <= low + 10:
            raise ValueError(f"a scale range needs LOW < HIGH <= LOW + 10, got {scale!r}")
        return scale

    @field_validator("levels", mode="before")
    @classmethod
    def _keys_as_text(cls, levels: Any) -> Any:
        return {str(k).strip(): v for k, v in levels.items()} if isinstance(levels, dict) else levels

    @model_validator(mode="after")
    def _levels_and_examples_on_scale(self) -> Criterion:
        allowed = self.allowed_scores()
        shown = ", ".join(str(a) for a in allowed)
        for key in self.levels:
            if self.coerce(key) is None:
                raise ValueError(f"levels: {key!r} is not a score of scale {self.scale!r} ({shown})")
        ends = [str(a) for a in (allowed if self.pass_fail else (allowed[0], allowed[-1]))]
        missing = [e for e in ends if e not in self.levels]
        if missing:
            raise ValueError(f"levels: say what {' and '.join(repr(m) for m in missing)} mean on scale {self.scale!r}")
        for example in self.examples:
            if self.coerce(example.score) is None:
                raise ValueError(f"examples: score {example.score!r} is not on scale {self.scale!r} ({shown})")
        return self

    @property
    def pass_fail(self) -> bool:
        """Whether the scale is pass/fail."""
        return self.scale == "pass_fail"

    def bounds(self) -> tuple[int, int]:
        """The lowest and highest score of a range scale (``(0, 1)`` for pass/fail)."""
        if self.pass_fail:
            return 0, 1
        low, high = self.scale.split("-")
        return int(low), int(high)

    def allowed_scores(self) -> list[RawScore]:
        """Every score on the scale, lowest first."""
        if self.pass_fail:
            return ["fail", "pass"]
        low, high = self.bounds()
        return list(range(low, high + 1))

    def coerce(self, value: object) -> RawScore | None:
        """``value`` as a score of this scale (``"4"`` → 4, ``"PASS"`` → ``"pass"``), or None."""
        if self.pass_fail:
            text = str(value).strip().lower()
            return text if text in ("pass", "fail") else None
        if isinstance(value, bool):
            return None
        try:
            number = int(str(value).strip())
        except ValueError:
            return None
        low, high = self.bounds()
        return number if low <= number <= high else None

    def normalise(self, raw: RawScore) -> float:
        """A score of this scale mapped onto [0, 1] (fail 0, pass 1; a range linearly)."""
        if self.pass_fail:
            return 1.0 if raw == "pass" else 0.0
        low, high = self.bounds()
        return (int(raw) - low) / (high - low)


class JudgeRubric(_Strict):
    """A judge rubric: the criteria and how the judge model is called and aggregated.

    Written in YAML and loaded with :func:`load_rubric`; see ``tests/data/judge_rubric.yaml``.
    """

    name: str = Field(min_length=1, description="Name of the rubric (reported with every verdict).")
    description: str = Field("", description="What the rubric is for; shown to the judge.")
    instructions: str = Field("", description="Extra guidance for the judge, in the rubric author's words.")
    criteria: list[Criterion] = Field(min_length=1, description="What the judge scores.")
    model: str = Field("openai/gpt-4o-mini", min_length=1, description="litellm model string of the judge.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature of the judge.")
    samples: int = Field(1, ge=1, le=32, description="Verdicts per judgement, aggregated per criterion.")
    aggregation: Aggregation = Field("mean", description="How samples combine: mean, median or majority.")
    max_attempts: int = Field(3, ge=1, le=10, description="Attempts per sample (malformed replies, provider errors).")
    timeout: float | None = Field(60.0, gt=0, description="Seconds per model call (litellm's timeout).")
    structured_output: Literal["auto", "json_schema", "off"] = Field(
        "auto",
        description="json_schema response_format: auto (when litellm says the model supports it), always, never.",
    )
    include_system: bool = Field(True, description="Show the judge the agent's system prompt (its policy).")
    pass_threshold: float = Field(
        0.5, ge=0, le=1, description="Overall score from which a trajectory counts as good (calibration)."
    )

    @field_validator("criteria")
    @classmethod
    def _unique_ids_some_weight(cls, criteria: list[Criterion]) -> list[Criterion]:
        ids = [c.id for c in criteria]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"criterion ids must be unique, repeated: {', '.join(repeated)}")
        if sum(c.weight for c in criteria) <= 0:
            raise ValueError("criterion weights must not all be 0")
        return criteria

    def criterion(self, criterion_id: str) -> Criterion:
        """The criterion with this id."""
        return next(c for c in self.criteria if c.id == criterion_id)


def _validate(doc: YamlDocument) -> JudgeRubric:
    if not isinstance(doc.data, dict):
        empty = "the file is empty: " if doc.data is None else ""
        raise ScenarioError(
            [doc.problem((), f"{empty}a judge rubric must be a mapping of fields (name, criteria, ...)", field="")]
        )
    try:
        return JudgeRubric.model_validate(doc.data)
    except ValidationError as err:
        problems = problems_from_validation(doc, err, JudgeRubric)
        problems.sort(key=lambda p: (p.line, p.column))
        raise ScenarioError(problems) from None


def load_rubric_text(text: str, path: Path | None = None) -> JudgeRubric:
    """A rubric from YAML text; every problem located (``file:line:col: field: message``)."""
    return _validate(load_yaml_text(text, path))


def load_rubric(path: str | Path) -> JudgeRubric:
    """A rubric from a YAML file (raises :class:`~envsim.errors.ScenarioError` with located problems)."""
    return _validate(load_yaml(Path(path)))


def shipped_rubrics() -> list[str]:
    """The names of the rubrics shipped with envsim (``envsim/reward/rubrics/<name>.yaml``), sorted."""
    folder = resources.files("envsim").joinpath("reward", RUBRICS_FOLDER)
    return sorted(p.name.rsplit(".", 1)[0] for p in folder.iterdir() if p.name.endswith(_SUFFIXES))


@lru_cache(maxsize=32)
def shipped_rubric(name: str) -> JudgeRubric:
    """The shipped rubric ``name``; :class:`KeyError` when there is none."""
    if not _NAME.match(name) or name not in shipped_rubrics():
        raise KeyError(name)
    resource = resources.files("envsim").joinpath("reward", RUBRICS_FOLDER, f"{name}.yaml")
    return load_rubric_text(resource.read_text(encoding="utf-8"), Path(f"envsim/reward/{RUBRICS_FOLDER}/{name}.yaml"))


def _problems(error: ScenarioError | ValidationError) -> str:
    if isinstance(error, ScenarioError):
        return "; ".join(str(p) for p in error.problems)
    parts = []
    for e in error.errors(include_url=False):
        where = ".".join(str(part) for part in e["loc"])
        message = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _unknown_name(name: str) -> str:
    shipped = shipped_rubrics()
    return (
        f"unknown rubric {name!r}{did_you_mean(name, shipped)}: give a shipped rubric ({', '.join(shipped)}), "
        "a path to a rubric YAML file relative to the scenario file, or a rubric inline"
    )


def is_rubric_file(reference: str) -> bool:
    """Whether ``reference`` names a rubric file (ends in ``.yaml`` or ``.yml``) rather than a shipped rubric."""
    return reference.endswith(_SUFFIXES)


def resolve_reference(reference: JudgeReference, base: Path | None) -> JudgeReference:
    """``reference`` checked and normalised: a shipped rubric's name stays a name, a rubric file's path
    becomes the rubric inline (a dict), an inline rubric is validated.

    ``base`` is the folder a relative path starts from (the scenario file's; None: the current
    folder). Raises :class:`ValueError` with what is wrong (a rubric file's problems located in it).

    Example:
        >>> resolve_reference("empathy_panicked_calle", None)
        Traceback (most recent call last):
        ...
        ValueError: unknown rubric 'empathy_panicked_calle' (did you mean 'empathy_panicked_caller'?): ...
    """
    if isinstance(reference, dict):
        try:
            rubric = JudgeRubric.model_validate(reference)
        except ValidationError as error:
            raise ValueError(f"invalid inline rubric: {_problems(error)}") from None
        return rubric.model_dump(exclude_unset=True)
    if _NAME.match(reference):
        try:
            shipped_rubric(reference)
        except KeyError:
            raise ValueError(_unknown_name(reference)) from None
        return reference
    path = Path(reference)
    if path.suffix not in _SUFFIXES:
        raise ValueError(_unknown_name(reference))
    if path.is_absolute():
        raise ValueError(f"rubric file {reference!r}: give a path relative to the scenario file")
    full = (base or Path()) / path
    if not full.is_file():
        raise ValueError(f"rubric file {reference!r} not found (looked for {full})")
    try:
        rubric = load_rubric(full)
    except ScenarioError as error:
        raise ValueError(f"rubric file {reference!r} is invalid: {_problems(error)}") from None
    return rubric.model_dump(exclude_unset=True)


def judge_rubric(reference: JudgeReference) -> JudgeRubric:
    """The rubric of a resolved reference (see :func:`resolve_reference`): a shipped name or an inline rubric."""
    if isinstance(reference, dict):
        return JudgeRubric.model_validate(reference)
    return shipped_rubric(reference)
