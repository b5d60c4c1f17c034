"""A judge's verdicts, per sample and aggregated per criterion; a failed judgement's error as a score."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import JudgeError
from envsim.reward.base import ComponentScore
from envsim.trajectory import Usage


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
        return spent(self)


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


def could_not_judge(error: JudgeError) -> ComponentScore:
    """A failed judgement as a reward component's result: NaN (could not judge), the reason first in the
    explanation, with what the failed attempts cost."""
    return ComponentScore.could_not_judge(str(error), usage=spent(error))


def spent(spender: JudgeSample | JudgeError) -> Usage:
    """What a sample or a failed judgement cost, as a usage record (its attempts as calls)."""
    return Usage(
        prompt_tokens=spender.prompt_tokens,
        completion_tokens=spender.completion_tokens,
        cost=spender.cost,
        calls=spender.attempts,
    )
