"""An LLM-as-judge reward: a rubric written in YAML, scored by a model through :mod:`envsim.llm`.

A **rubric** (:class:`JudgeRubric`) names criteria; each has a scale (``pass_fail`` or a range
such as ``1-5``), what each score means, optional worked examples and a weight. The judge
renders the rubric and the trajectory's transcript with ``envsim/templates/judge*.j2`` (the
sandboxed jinja2 of :mod:`envsim.prompts`), asks for one JSON object (a ``json_schema``
``response_format`` where litellm says the model supports it) and validates the reply with a
pydantic model built from the rubric: a rationale and a score per criterion.

What can go wrong, and what happens:

- a malformed reply (no JSON, a missing criterion, a score off the scale) is sent back to the
  model with the validation problem, up to ``max_attempts`` attempts;
- a provider error or timeout is retried by the judge's model client (the one retry policy,
  :class:`envsim.llm.RetryingClient`: by default within the same budget; in a run, the run's);
- a refusal (an empty reply or an "I can't help with that") is not retried;

and when a sample still has no valid verdict the judgement raises :class:`JudgeError` with a
typed ``reason`` (``malformed``, ``refusal``, ``timeout``, ``provider_error``); as a reward
component it becomes :meth:`ComponentScore.could_not_judge` (score NaN, the explanation starting
``judge_error (reason)``), which the rubric reports as the outcome ``judge_error``: never a
silent 0.

Each judgement takes ``samples`` verdicts (the sample index is part of the cache key) and
aggregates each criterion's normalised score by ``mean``, ``median`` or ``majority``; the overall
score is the weighted mean of the criteria, in [0, 1]. Every sample is cached by the hash of
what determines it (model, temperature, rendered prompt, reply schema, sample index) in memory
and in a directory of JSON files written by atomic rename (safe for concurrent writers), so
the same judgement is never paid twice. Costs and tokens of every attempt, failed ones
included, come back with the result (``usage``, also on the component's score, for the
``judge`` role's KPIs) and are tallied in :attr:`Judge.totals`.

Example (litellm's ``mock_response``: no network, no key):
    >>> rubric = JudgeRubric.model_validate({
    ...     "name": "tone", "model": "openai/gpt-4o-mini",
    ...     "criteria": [{"id": "polite", "description": "The agent is polite.", "scale": "pass_fail",
    ...                   "levels": {"pass": "Courteous throughout.", "fail": "Rude or dismissive."}}]})
    >>> judge = Judge(rubric, cache=JudgeCache(None),
    ...               completion_kwargs={"mock_response": '{"polite": {"rationale": "Kind.", "score": "pass"}}'})
    >>> from envsim.trajectory import Trajectory
    >>> trajectory = Trajectory(scenario_id="X", seed=0, messages=[
    ...     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}])
    >>> result = judge.judge(trajectory)
    >>> result.score, result.criteria["polite"].raw, result.cost > 0
    (1.0, 'pass', True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from envsim.errors import EnvsimError, ScenarioError
from envsim.fileio import write_atomic
from envsim.llm import Completion, ModelCallError, ModelClient, ModelTimeout, RetryingClient, UsageMeter, litellm
from envsim.prompts import render
from envsim.reward.base import ComponentScore, RewardContext, RewardFn
from envsim.trajectory import Trajectory, Usage
from envsim.transcript_text import format_messages
from envsim.yamlsource import YamlDocument, load_yaml, load_yaml_text, problems_from_validation

CACHE_ENV = "ENVSIM_JUDGE_CACHE"
"""Environment variable naming the judge's disk cache folder (``off`` keeps the cache in memory only)."""

CACHE_FORMAT: Literal["envsim.judge_cache/1"] = "envsim.judge_cache/1"
"""The format tag of a cache file; bump it when the cached sample's shape changes."""

JudgeErrorReason = Literal["malformed", "refusal", "timeout", "provider_error"]
"""Why a judge gave no verdict."""

Aggregation = Literal["mean", "median", "majority"]
"""How the samples of one judgement are combined, per criterion."""

RawScore = int | str
"""A criterion score as the judge gave it: an integer on a range scale, ``"pass"``/``"fail"`` otherwise."""

_SCALE = re.compile(r"^(\d+)-(\d+)$")
_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry|i can'?not|i can'?t|i won'?t|i'?m (not able|unable)|i am (not able|unable)|"
    r"i must decline|as an ai)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- the rubric -------------------------------------------------------------------------------


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


# -- verdicts ---------------------------------------------------------------------------------


class CriterionVerdict(_Strict):
    """One sample's verdict on one criterion."""

    score: int | str = Field(description="The score on the criterion's scale.")
    rationale: str = Field(description="The judge's reason.")


class JudgeSample(_Strict):
    """One sampled verdict on every criterion, with what producing it cost (all attempts)."""

    index: int = Field(ge=0, description="Sample index within the judgement.")
    verdicts: dict[str, CriterionVerdict]
    attempts: int = Field(ge=1, description="Model calls it took (malformed replies and errors included).")
    cost: float = Field(0.0, ge=0, description="USD of every attempt, per litellm's price map (0 when unknown).")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = Field(False, description="Read from the cache: nothing was paid for it this time.")

    @property
    def usage(self) -> Usage:
        """What producing it cost, as a usage record."""
        return _spent(self)


class CriterionResult(_Strict):
    """A criterion's aggregated verdict."""

    score: float = Field(ge=0, le=1, description="Aggregated normalised score in [0, 1].")
    raw: int | str = Field(description="The scale score closest to the aggregate (the majority under 'majority').")
    rationale: str = Field(description="Rationale of a sample that gave the reported raw score.")
    weight: float


class JudgeResult(_Strict):
    """A judgement: overall score, per-criterion results, the samples, and what this call paid."""

    rubric: str
    model: str
    score: float = Field(ge=0, le=1, description="Weighted mean of the criteria's scores.")
    criteria: dict[str, CriterionResult]
    samples: list[JudgeSample]
    cost: float = Field(ge=0, description="USD paid by this call (cached samples cost nothing).")
    prompt_tokens: int = Field(ge=0, description="Prompt tokens paid by this call.")
    completion_tokens: int = Field(ge=0, description="Completion tokens paid by this call.")
    calls: int = Field(ge=0, description="Model calls made by this call.")

    @property
    def usage(self) -> Usage:
        """What this call paid, as the trajectory's usage record of the ``judge`` role."""
        return Usage(
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens, cost=self.cost, calls=self.calls
        )

    @property
    def cached(self) -> bool:
        """Whether every sample came from the cache."""
        return all(s.cached for s in self.samples)

    def as_score(self) -> ComponentScore:
        """This judgement as a reward component's score, with what it paid."""
        return ComponentScore(self.score, self.explanation(), usage=self.usage)

    def explanation(self, width: int = 160) -> str:
        """One line per criterion: score and a shortened rationale."""
        parts = []
        for cid, c in self.criteria.items():
            reason = c.rationale if len(c.rationale) <= width else c.rationale[: width - 1] + "…"
            parts.append(f"{cid}={c.raw}: {reason}")
        return f"judge {self.rubric} ({self.model}): " + "; ".join(parts)


class JudgeError(EnvsimError):
    """The judge gave no valid verdict after its attempts; ``reason`` says why.

    Carries what the failed attempts cost, so that judge KPIs count them too.
    """

    def __init__(
        self,
        reason: JudgeErrorReason,
        message: str,
        *,
        model: str,
        attempts: int,
        cost: float = 0.0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        self.reason: JudgeErrorReason = reason
        self.message = message
        self.model = model
        self.attempts = attempts
        self.cost = cost
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        super().__init__(f"judge_error ({reason}) from {model} after {attempts} attempt(s): {message}")

    @property
    def usage(self) -> Usage:
        """What the failed attempts cost."""
        return _spent(self)

    def as_score(self) -> ComponentScore:
        """This error as a reward component result: NaN (could not judge), the reason first in the explanation."""
        return ComponentScore.could_not_judge(str(self), usage=self.usage)


# -- the cache --------------------------------------------------------------------------------


def default_cache_dir() -> Path | None:
    """``$ENVSIM_JUDGE_CACHE`` (``off``: none), else ``$XDG_CACHE_HOME/envsim/judge``, else ``~/.cache/...``."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip():
        return None if configured.strip().lower() == "off" else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "envsim" / "judge"


class _CacheEntry(_Strict):
    format: Literal["envsim.judge_cache/1"] = CACHE_FORMAT
    key: str
    model: str
    sample: JudgeSample


class JudgeCache:
    """Judge samples by content hash: in memory, and as JSON files under ``directory`` (if any).

    Files are written to a temporary name and renamed into place, so concurrent writers (threads
    or processes) never leave a partial file; an unreadable file counts as a miss.

    Args:
        directory: Folder of the disk cache, or None for memory only.
        memory: Keep samples in memory too (off: every lookup reads the disk).
    """

    _shared: ClassVar[dict[Path | None, JudgeCache]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: str | Path | None, *, memory: bool = True) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.memory = memory
        self._entries: dict[str, JudgeSample] = {}
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, directory: str | Path | None = None) -> JudgeCache:
        """The process-wide cache of ``directory`` (default: :func:`default_cache_dir`)."""
        resolved = Path(directory).expanduser().resolve() if directory is not None else default_cache_dir()
        with cls._shared_lock:
            if resolved not in cls._shared:
                cls._shared[resolved] = cls(resolved)
            return cls._shared[resolved]

    def path(self, key: str) -> Path | None:
        """Where the sample of ``key`` lives on disk (None without a disk cache)."""
        return None if self.directory is None else self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> JudgeSample | None:
        """The cached sample of ``key``, or None."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None:
            return hit
        path = self.path(key)
        if path is None:
            return None
        try:
            entry = _CacheEntry.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None
        if entry.key != key:
            return None
        if self.memory:
            with self._lock:
                self._entries[key] = entry.sample
        return entry.sample

    def put(self, key: str, model: str, sample: JudgeSample) -> None:
        """Store ``sample`` under ``key`` (atomically on disk)."""
        if self.memory:
            with self._lock:
                self._entries[key] = sample
        path = self.path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _CacheEntry(key=key, model=model, sample=sample).model_dump_json(indent=1)
        write_atomic(path, data, durable=False)  # a cache: a lost entry is judged again

    def clear_memory(self) -> None:
        """Forget the in-memory entries (the disk stays)."""
        with self._lock:
            self._entries.clear()


# -- the judge --------------------------------------------------------------------------------


@dataclass
class JudgeTotals:
    """Running totals of one :class:`Judge`: judgements, cache hits and errors; what it paid in ``usage``."""

    judgements: int = 0
    cache_hits: int = 0
    judge_errors: int = 0
    usage: UsageMeter = field(default_factory=UsageMeter)

    @property
    def calls(self) -> int:
        """Model calls made (failed ones included)."""
        return self.usage.attempts

    def as_usage(self) -> Usage:
        """The totals as a usage record (role ``judge``)."""
        return self.usage.usage()

    def as_dict(self) -> dict[str, float]:
        """The totals as a plain dict (for KPIs and ``--json``)."""
        return {
            "judgements": self.judgements,
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "judge_errors": self.judge_errors,
            "cost": self.usage.cost,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
        }


@dataclass(frozen=True)
class _Failure:
    reason: JudgeErrorReason
    message: str


@dataclass(frozen=True)
class _Attempt:
    """One call the judge's attempt loop needs made (sync or async)."""

    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]


def _spent(spender: JudgeSample | JudgeError) -> Usage:
    """What a sample or a failed judgement cost, as a usage record (its attempts as calls)."""
    return Usage(
        prompt_tokens=spender.prompt_tokens,
        completion_tokens=spender.completion_tokens,
        cost=spender.cost,
        calls=spender.attempts,
    )


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def reply_model(rubric: JudgeRubric) -> type[BaseModel]:
    """The pydantic model of a valid reply: per criterion id, a rationale then a score on its scale.

    Its JSON schema (by alias) is the ``response_format`` schema sent to models that support it.
    """
    fields: dict[str, Any] = {}
    for i, criterion in enumerate(rubric.criteria):
        score: Any
        if criterion.pass_fail:
            score = Annotated[Literal["pass", "fail"], BeforeValidator(_lower)]
        else:
            low, high = criterion.bounds()
            score = Annotated[int, Field(ge=low, le=high)]
        verdict = create_model(
            f"Verdict_{criterion.id}",
            __config__=ConfigDict(extra="forbid"),
            rationale=(str, Field(description="One or two sentences citing the transcript.")),
            score=(score, Field(description=f"Score on the scale {criterion.scale}.")),
        )
        fields[f"c{i}"] = (verdict, Field(alias=criterion.id))
    return create_model("JudgeReply", __config__=ConfigDict(extra="forbid"), **fields)


def _extract_json(text: str) -> str:
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else text


def _describe(error: ValidationError) -> str:
    problems = []
    for e in error.errors(include_url=False)[:6]:
        where = ".".join(str(p) for p in e["loc"]) or "reply"
        problems.append(f"{where}: {e['msg']}")
    return "; ".join(problems)


def _aggregate(criterion: Criterion, raws: Sequence[RawScore], how: Aggregation) -> tuple[float, RawScore]:
    """The aggregate normalised score and the scale score to report with it."""
    values = np.array([criterion.normalise(r) for r in raws], dtype=float)
    if how == "majority":
        counts = Counter(raws)
        top = max(counts.values())
        # a tie goes to the lowest tied score: a judge that cannot make up its mind does not pass
        winner = min((r for r, n in counts.items() if n == top), key=criterion.normalise)
        return criterion.normalise(winner), winner
    score = float(np.mean(values) if how == "mean" else np.median(values))
    nearest = min(
        criterion.allowed_scores(), key=lambda r: (abs(criterion.normalise(r) - score), criterion.normalise(r))
    )
    return score, nearest


class Judge:
    """Scores trajectories against a :class:`JudgeRubric` with a model called through :mod:`envsim.llm`.

    Args:
        rubric: The rubric, or a path to its YAML file.
        model: Overrides the rubric's model.
        samples: Overrides the rubric's number of samples.
        cache: Where verdicts are cached (default: the process-wide cache of :func:`default_cache_dir`).
        completion_kwargs: Extra arguments for ``litellm.completion`` (``api_base``, ``mock_response``...);
            they are not part of the cache key.
        backoff: Base of the default client's backoff after a provider error or timeout, in seconds.
        client: The model client (default: litellm through a :class:`envsim.llm.RetryingClient` that
            retries a provider error or timeout within the rubric's ``max_attempts``).
    """

    def __init__(
        self,
        rubric: JudgeRubric | str | Path,
        *,
        model: str | None = None,
        samples: int | None = None,
        cache: JudgeCache | None = None,
        completion_kwargs: Mapping[str, Any] | None = None,
        backoff: float = 0.5,
        client: ModelClient | None = None,
    ) -> None:
        self.rubric = rubric if isinstance(rubric, JudgeRubric) else load_rubric(rubric)
        self.model = model or self.rubric.model
        self.samples = samples if samples is not None else self.rubric.samples
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        self.cache = cache if cache is not None else JudgeCache.shared()
        self.completion_kwargs = dict(completion_kwargs or {})
        self.backoff = backoff
        if client is None:
            client = RetryingClient(max_retries=self.rubric.max_attempts - 1, backoff=backoff)
        self.client: ModelClient = client
        self.totals = JudgeTotals()
        self._totals_lock = threading.Lock()
        self._reply_model = reply_model(self.rubric)
        self._schema = self._reply_model.model_json_schema(by_alias=True)
        self._json_schema: bool | None = None

    # -- the request --------------------------------------------------------------------------

    def transcript(self, trajectory: Trajectory) -> str:
        """The conversation as the judge reads it."""
        return format_messages(trajectory.messages, include_system=self.rubric.include_system)

    def messages(self, trajectory: Trajectory) -> list[dict[str, Any]]:
        """The judge's prompt for ``trajectory`` (system and user message)."""
        criteria = [
            {
                "id": c.id,
                "description": c.description,
                "scale": c.scale,
                "pass_fail": c.pass_fail,
                "allowed": ", ".join(str(a) for a in c.allowed_scores()),
                "levels": [
                    (k, v) for k, v in sorted(c.levels.items(), key=lambda kv: c.normalise(c.coerce(kv[0]) or 0))
                ],
                "examples": [e.model_dump() for e in c.examples],
            }
            for c in self.rubric.criteria
        ]
        system = render("judge_system.j2", criteria=criteria)
        user = render(
            "judge.j2",
            name=self.rubric.name,
            description=self.rubric.description,
            instructions=self.rubric.instructions,
            criteria=criteria,
            transcript=self.transcript(trajectory),
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def uses_json_schema(self) -> bool:
        """Whether requests carry a ``json_schema`` ``response_format`` (asked of litellm once, under ``auto``)."""
        if self._json_schema is None:
            mode = self.rubric.structured_output
            if mode == "auto":
                try:
                    self._json_schema = bool(litellm().supports_response_schema(model=self.model))
                except Exception:  # an unknown provider: ask in the prompt only
                    self._json_schema = False
            else:
                self._json_schema = mode == "json_schema"
        return self._json_schema

    def _request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"temperature": self.rubric.temperature}
        if self.rubric.timeout is not None:
            kwargs["timeout"] = self.rubric.timeout
        if self.uses_json_schema():
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "judgement", "schema": self._schema, "strict": True},
            }
        kwargs.update(self.completion_kwargs)
        return kwargs

    def cache_key(self, messages: list[dict[str, Any]], index: int) -> str:
        """The content hash of one sample: model, temperature, prompt, reply schema, sample index."""
        payload = {
            "format": CACHE_FORMAT,
            "model": self.model,
            "temperature": self.rubric.temperature,
            "messages": messages,
            "schema": self._schema,
            "json_schema": self.uses_json_schema(),
            "sample": index,
        }
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # -- one sample ---------------------------------------------------------------------------

    def _interpret(self, completion: Completion) -> dict[str, CriterionVerdict] | _Failure:
        text = completion.text.strip()
        if not text:
            return _Failure("refusal", "empty reply (a refusal or a content filter)")
        if "{" not in text and _REFUSAL.match(text):
            return _Failure("refusal", f"the judge declined: {text[:200]!r}")
        try:
            data = json.loads(_extract_json(text))
        except json.JSONDecodeError as error:
            return _Failure("malformed", f"not valid JSON ({error.msg} at position {error.pos}): {text[:200]!r}")
        try:
            reply = self._reply_model.model_validate(data)
        except ValidationError as error:
            return _Failure("malformed", _describe(error))
        dumped = reply.model_dump(by_alias=True)
        return {c.id: CriterionVerdict(**dumped[c.id]) for c in self.rubric.criteria}

    def _retry_messages(self, messages: list[dict[str, Any]], reply: str, problem: str) -> list[dict[str, Any]]:
        ids = ", ".join(c.id for c in self.rubric.criteria)
        return [
            *messages,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": render("judge_retry.j2", problem=problem, ids=ids)},
        ]

    @staticmethod
    def _call_failure(error: ModelCallError) -> _Failure:
        reason: JudgeErrorReason = "timeout" if isinstance(error, ModelTimeout) else "provider_error"
        return _Failure(reason, f"{type(error.error).__name__}: {error.error}")

    def _error(self, failure: _Failure, tally: UsageMeter) -> JudgeError:
        return JudgeError(
            failure.reason,
            failure.message,
            model=self.model,
            attempts=tally.attempts,
            cost=tally.cost,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
        )

    def _step(
        self, messages: list[dict[str, Any]], outcome: Completion | ModelCallError, tally: UsageMeter
    ) -> tuple[dict[str, CriterionVerdict] | None, _Failure | None, list[dict[str, Any]]]:
        """Digest one attempt: the verdicts, or the failure and the messages of the next attempt."""
        if isinstance(outcome, ModelCallError):
            tally.fail(outcome.attempts)  # its client's tries
            return None, self._call_failure(outcome), messages
        tally.add(outcome)
        verdicts = self._interpret(outcome)
        if isinstance(verdicts, _Failure):
            if verdicts.reason == "malformed":
                return None, verdicts, self._retry_messages(messages, outcome.text, verdicts.message)
            return None, verdicts, messages
        return verdicts, None, messages

    def _sample(self, index: int, verdicts: dict[str, CriterionVerdict], tally: UsageMeter) -> JudgeSample:
        return JudgeSample(
            index=index,
            verdicts=verdicts,
            attempts=tally.attempts,
            cost=tally.cost,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.completion_tokens,
        )

    def _attempts(
        self, prompt: list[dict[str, Any]], index: int, tally: UsageMeter
    ) -> Generator[_Attempt, Completion | ModelCallError, JudgeSample]:
        """The attempts of one sample, without I/O (the sync and async samplers make the calls).

        Yields each attempt to make and is sent its outcome; returns the sample, or raises the
        :class:`JudgeError` of the last failure once the attempts are spent. A malformed reply is
        sent back with its problem; a refusal, or a call that failed after its client's retries,
        ends the sample at once. Every try counts against ``max_attempts``, the client's too.
        """
        kwargs = self._request_kwargs()
        messages = prompt
        failure = _Failure("malformed", "no attempt made")
        while tally.attempts < self.rubric.max_attempts:
            outcome = yield _Attempt(messages, kwargs)
            verdicts, problem, messages = self._step(messages, outcome, tally)
            if verdicts is not None:
                return self._sample(index, verdicts, tally)
            assert problem is not None
            failure = problem
            if failure.reason != "malformed":
                break
        raise self._error(failure, tally)

    def _call(self, attempt: _Attempt) -> Completion | ModelCallError:
        try:
            return self.client.complete(self.model, attempt.messages, **attempt.kwargs)
        except ModelCallError as error:
            return error

    async def _acall(self, attempt: _Attempt) -> Completion | ModelCallError:
        try:
            return await self.client.acomplete(self.model, attempt.messages, **attempt.kwargs)
        except ModelCallError as error:
            return error

    def _sample_sync(self, prompt: list[dict[str, Any]], index: int, tally: UsageMeter) -> JudgeSample:
        attempts = self._attempts(prompt, index, tally)
        try:
            attempt = next(attempts)
            while True:
                attempt = attempts.send(self._call(attempt))
        except StopIteration as stop:
            sample: JudgeSample = stop.value
            return sample

    async def _sample_async(self, prompt: list[dict[str, Any]], index: int, tally: UsageMeter) -> JudgeSample:
        attempts = self._attempts(prompt, index, tally)
        try:
            attempt = next(attempts)
            while True:
                attempt = attempts.send(await self._acall(attempt))
        except StopIteration as stop:
            sample: JudgeSample = stop.value
            return sample

    # -- judgements ---------------------------------------------------------------------------

    def _cached(self, prompt: list[dict[str, Any]]) -> tuple[list[str], dict[int, JudgeSample]]:
        keys = [self.cache_key(prompt, i) for i in range(self.samples)]
        hits = {}
        for i, key in enumerate(keys):
            sample = self.cache.get(key)
            if sample is not None:
                hits[i] = sample.model_copy(update={"index": i, "cached": True})
        return keys, hits

    def _record(self, paid: list[JudgeSample], hits: int, errors: list[JudgeError]) -> None:
        with self._totals_lock:
            self.totals.judgements += 1
            self.totals.cache_hits += hits
            self.totals.judge_errors += 1 if errors else 0
            for spent in (*(s.usage for s in paid), *(e.usage for e in errors)):
                self.totals.usage.include(spent)

    def _finish(
        self, keys: list[str], hits: dict[int, JudgeSample], fresh: dict[int, JudgeSample | JudgeError]
    ) -> JudgeResult:
        paid = [s for s in fresh.values() if isinstance(s, JudgeSample)]
        errors = [e for e in fresh.values() if isinstance(e, JudgeError)]
        for i, sample in fresh.items():
            if isinstance(sample, JudgeSample):
                self.cache.put(keys[i], self.model, sample)
        self._record(paid, len(hits), errors)
        if errors:
            first = errors[0]
            raise JudgeError(
                first.reason,
                first.message,
                model=self.model,
                attempts=sum(e.attempts for e in errors) + sum(s.attempts for s in paid),
                cost=sum(e.cost for e in errors) + sum(s.cost for s in paid),
                prompt_tokens=sum(e.prompt_tokens for e in errors) + sum(s.prompt_tokens for s in paid),
                completion_tokens=sum(e.completion_tokens for e in errors) + sum(s.completion_tokens for s in paid),
            )
        samples = [hits[i] if i in hits else fresh[i] for i in range(self.samples)]
        return self.aggregate(
            [s for s in samples if isinstance(s, JudgeSample)],
            cost=sum(s.cost for s in paid),
            prompt_tokens=sum(s.prompt_tokens for s in paid),
            completion_tokens=sum(s.completion_tokens for s in paid),
            calls=sum(s.attempts for s in paid),
        )

    def aggregate(
        self,
        samples: list[JudgeSample],
        *,
        cost: float = 0.0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        calls: int = 0,
    ) -> JudgeResult:
        """Combine samples into a result, per criterion by the rubric's aggregation."""
        criteria: dict[str, CriterionResult] = {}
        for c in self.rubric.criteria:
            raws = [c.coerce(s.verdicts[c.id].score) for s in samples]
            valid: list[RawScore] = [r for r in raws if r is not None]
            score, raw = _aggregate(c, valid, self.rubric.aggregation)
            witness = next(
                (s.verdicts[c.id] for s in samples if c.coerce(s.verdicts[c.id].score) == raw),
                samples[0].verdicts[c.id],
            )
            criteria[c.id] = CriterionResult(score=score, raw=raw, rationale=witness.rationale, weight=c.weight)
        total_weight = sum(c.weight for c in criteria.values())
        overall = sum(c.weight * c.score for c in criteria.values()) / total_weight
        return JudgeResult(
            rubric=self.rubric.name,
            model=self.model,
            score=min(1.0, max(0.0, overall)),
            criteria=criteria,
            samples=samples,
            cost=cost,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            calls=calls,
        )

    def judge(self, trajectory: Trajectory) -> JudgeResult:
        """Judge ``trajectory`` (samples drawn one after the other); raises :class:`JudgeError`."""
        prompt = self.messages(trajectory)
        keys, hits = self._cached(prompt)
        fresh: dict[int, JudgeSample | JudgeError] = {}
        for i in range(self.samples):
            if i in hits:
                continue
            try:
                fresh[i] = self._sample_sync(prompt, i, UsageMeter())
            except JudgeError as error:
                fresh[i] = error
        return self._finish(keys, hits, fresh)

    async def ajudge(self, trajectory: Trajectory) -> JudgeResult:
        """Judge ``trajectory`` with the samples drawn concurrently; raises :class:`JudgeError`."""
        import asyncio

        prompt = self.messages(trajectory)
        keys, hits = self._cached(prompt)
        todo = [i for i in range(self.samples) if i not in hits]

        async def one(i: int) -> JudgeSample | JudgeError:
            try:
                return await self._sample_async(prompt, i, UsageMeter())
            except JudgeError as error:
                return error

        results = await asyncio.gather(*(one(i) for i in todo))
        return self._finish(keys, hits, dict(zip(todo, results, strict=True)))

    def component(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        """The judge as a reward component, with its usage; NaN (could not judge) on a :class:`JudgeError`."""
        try:
            result = self.judge(trajectory)
        except JudgeError as error:
            return error.as_score()
        return result.as_score()


def judge_component(rubric: JudgeRubric | str | Path, **options: Any) -> RewardFn:
    """A reward component ``(trajectory, context) -> ComponentScore`` judging with ``rubric``.

    ``options`` go to :class:`Judge` (``model``, ``samples``, ``cache``, ``completion_kwargs``).
    """
    return Judge(rubric, **options).component
