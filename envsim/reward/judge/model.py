"""The judge: renders a rubric and a transcript, calls the model, validates the reply, aggregates the samples."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from envsim.calls import CallLog, CallScope, ModelCalls, episode_scope
from envsim.errors import JudgeError, JudgeErrorReason
from envsim.llm import Completion, ModelCallError, ModelClient, ModelTimeout, UsageMeter, litellm
from envsim.prompts import render
from envsim.reward.base import ComponentScore, RewardContext, RewardFn
from envsim.reward.judge.cache import shared_log
from envsim.reward.judge.verdicts import (
    CriterionResult,
    CriterionVerdict,
    JudgeResult,
    JudgeSample,
    could_not_judge,
    spent,
)
from envsim.rubric_schema import Aggregation, Criterion, JudgeRubric, RawScore, load_rubric
from envsim.trajectory import Trajectory, Usage
from envsim.transcript_text import format_messages

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry|i can'?not|i can'?t|i won'?t|i'?m (not able|unable)|i am (not able|unable)|"
    r"i must decline|as an ai)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


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
        cache: The records the model's answers are cached in (default, without a ``client``: the
            process-wide :class:`~envsim.calls.CallLog` of :func:`~envsim.reward.judge.cache.default_cache_dir`;
            ``CallLog(None)``: in memory only).
        completion_kwargs: Extra arguments for ``litellm.completion`` (``api_base``, ``mock_response``...);
            transport settings among them (:data:`envsim.calls.TRANSPORT_PARAMS`) are not part of the cache key.
        backoff: Base of the default client's backoff after a provider error or timeout, in seconds.
        client: The model client, used as it is unless a ``cache`` is given too (default: litellm through
            a :class:`envsim.calls.ModelCalls` that retries a provider error or timeout within the rubric's
            ``max_attempts`` and caches the answers in ``cache``).

    The cache is the model-call layer's record/replay (:class:`envsim.calls.ModelCalls` in ``record``
    mode): each call is keyed by its full request and the sample it belongs to, so a judgement asked
    again is answered from the records, and a sample all of whose calls were answered from them is
    ``cached`` (nothing paid for it this time).
    """

    def __init__(
        self,
        rubric: JudgeRubric | str | Path,
        *,
        model: str | None = None,
        samples: int | None = None,
        cache: CallLog | None = None,
        completion_kwargs: Mapping[str, Any] | None = None,
        backoff: float = 0.5,
        client: ModelClient | None = None,
    ) -> None:
        self.rubric = rubric if isinstance(rubric, JudgeRubric) else load_rubric(rubric)
        self.model = model or self.rubric.model
        self.samples = samples if samples is not None else self.rubric.samples
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        self.completion_kwargs = dict(completion_kwargs or {})
        self.backoff = backoff
        self.calls: ModelCalls | None = None
        """The caching layer of the judge's model calls (None: ``client`` is used as it is, uncached)."""
        if client is None or cache is not None:
            retries = self.rubric.max_attempts - 1 if client is None else 0  # a given client retries itself
            log = cache if cache is not None else shared_log()
            self.calls = ModelCalls(
                mode="record", log=log, timeout=None, max_retries=retries, backoff=backoff, transport=client
            )
            client = self.calls.for_role("judge")
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

    def _sample_scope(self, index: int) -> episode_scope | contextlib.nullcontext[None]:
        """Where the calls of sample ``index`` are keyed and counted (with a cache: a scope of their own)."""
        return episode_scope(f"judge sample {index}") if self.calls is not None else contextlib.nullcontext()

    @staticmethod
    def _mark(sample: JudgeSample, scope: CallScope | None, calls: int) -> JudgeSample:
        """``sample``, ``cached`` when every one of its ``calls`` was answered from the records."""
        cached = scope is not None and scope.replayed == calls
        return sample.model_copy(update={"cached": True}) if cached else sample

    def _forget(self, scope: CallScope | None) -> None:
        """Drop the recorded answers of a sample that failed: the next judgement asks the model again."""
        if scope is not None and self.calls is not None and self.calls.log is not None:
            self.calls.log.forget(scope.keys)

    def _sample_sync(self, prompt: list[dict[str, Any]], index: int, tally: UsageMeter) -> JudgeSample:
        attempts = self._attempts(prompt, index, tally)
        calls = 0
        with self._sample_scope(index) as scope:
            try:
                attempt = next(attempts)
                while True:
                    calls += 1
                    attempt = attempts.send(self._call(attempt))
            except StopIteration as stop:
                sample: JudgeSample = stop.value
                return self._mark(sample, scope, calls)
            except JudgeError:
                self._forget(scope)
                raise

    async def _sample_async(self, prompt: list[dict[str, Any]], index: int, tally: UsageMeter) -> JudgeSample:
        attempts = self._attempts(prompt, index, tally)
        calls = 0
        with self._sample_scope(index) as scope:
            try:
                attempt = next(attempts)
                while True:
                    calls += 1
                    attempt = attempts.send(await self._acall(attempt))
            except StopIteration as stop:
                sample: JudgeSample = stop.value
                return self._mark(sample, scope, calls)
            except JudgeError:
                self._forget(scope)
                raise

    # -- judgements ---------------------------------------------------------------------------

    def _record(self, paid: list[JudgeSample], hits: int, errors: list[JudgeError]) -> None:
        with self._totals_lock:
            self.totals.judgements += 1
            self.totals.cache_hits += hits
            self.totals.judge_errors += 1 if errors else 0
            for usage in (*(s.usage for s in paid), *(spent(e) for e in errors)):
                self.totals.usage.include(usage)

    def _finish(self, drawn: dict[int, JudgeSample | JudgeError]) -> JudgeResult:
        if self.calls is not None:
            self.calls.close()  # durable, and no file left open (the next judgement appends to it)
        hits = {i: s for i, s in drawn.items() if isinstance(s, JudgeSample) and s.cached}
        fresh = {i: s for i, s in drawn.items() if i not in hits}
        paid = [s for s in fresh.values() if isinstance(s, JudgeSample)]
        errors = [e for e in fresh.values() if isinstance(e, JudgeError)]
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
        drawn: dict[int, JudgeSample | JudgeError] = {}
        for i in range(self.samples):
            try:
                drawn[i] = self._sample_sync(prompt, i, UsageMeter())
            except JudgeError as error:
                drawn[i] = error
        return self._finish(drawn)

    async def ajudge(self, trajectory: Trajectory) -> JudgeResult:
        """Judge ``trajectory`` with the samples drawn concurrently; raises :class:`JudgeError`."""
        import asyncio

        prompt = self.messages(trajectory)
        todo = list(range(self.samples))

        async def one(i: int) -> JudgeSample | JudgeError:
            try:
                return await self._sample_async(prompt, i, UsageMeter())
            except JudgeError as error:
                return error

        results = await asyncio.gather(*(one(i) for i in todo))
        return self._finish(dict(zip(todo, results, strict=True)))

    def component(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        """The judge as a reward component, with its usage; NaN (could not judge) on a :class:`JudgeError`."""
        try:
            result = self.judge(trajectory)
        except JudgeError as error:
            return could_not_judge(error)
        return result.as_score()


def judge_component(rubric: JudgeRubric | str | Path, **options: Any) -> RewardFn:
    """A reward component ``(trajectory, context) -> ComponentScore`` judging with ``rubric``.

    ``options`` go to :class:`Judge` (``model``, ``samples``, ``cache``, ``completion_kwargs``).
    """
    return Judge(rubric, **options).component
