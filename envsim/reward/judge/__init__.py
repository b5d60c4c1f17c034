"""An LLM-as-judge reward: a rubric written in YAML, scored by a model through :mod:`envsim.llm`.

The rubric's schema and loading are :mod:`envsim.rubric_schema`; the judge (prompts, reply
validation, attempts, aggregation) is :mod:`envsim.reward.judge.model`; its verdicts are
:mod:`envsim.reward.judge.verdicts` (:class:`~envsim.errors.JudgeError` is raised when there is none); it caches
its model's answers through the model-call layer (:class:`envsim.calls.ModelCalls`), in the folder
:mod:`envsim.reward.judge.cache` names. How the judge fails, samples, caches and counts what it paid is
described in ``docs/rewards.md`` ("How the judge works").

Example (litellm's ``mock_response``: no network, no key):
    >>> rubric = JudgeRubric.model_validate({
    ...     "name": "tone", "model": "openai/gpt-4o-mini",
    ...     "criteria": [{"id": "polite", "description": "The agent is polite.", "scale": "pass_fail",
    ...                   "levels": {"pass": "Courteous throughout.", "fail": "Rude or dismissive."}}]})
    >>> judge = Judge(rubric, cache=CallLog(None),
    ...               completion_kwargs={"mock_response": '{"polite": {"rationale": "Kind.", "score": "pass"}}'})
    >>> from envsim.trajectory import Trajectory
    >>> trajectory = Trajectory(scenario_id="X", seed=0, messages=[
    ...     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}])
    >>> result = judge.judge(trajectory)
    >>> result.score, result.criteria["polite"].raw, result.cost > 0
    (1.0, 'pass', True)
"""

from envsim.calls import CallLog
from envsim.errors import JudgeError, JudgeErrorReason
from envsim.reward.judge.cache import CACHE_ENV, default_cache_dir, shared_log
from envsim.reward.judge.model import Judge, JudgeTotals, judge_component, reply_model
from envsim.reward.judge.verdicts import CriterionResult, CriterionVerdict, JudgeResult, JudgeSample, could_not_judge
from envsim.rubric_schema import (
    Aggregation,
    Criterion,
    CriterionExample,
    JudgeRubric,
    RawScore,
    load_rubric,
    load_rubric_text,
)

__all__ = [
    "CACHE_ENV",
    "Aggregation",
    "CallLog",
    "Criterion",
    "CriterionExample",
    "CriterionResult",
    "CriterionVerdict",
    "Judge",
    "JudgeError",
    "JudgeErrorReason",
    "JudgeResult",
    "JudgeRubric",
    "JudgeSample",
    "JudgeTotals",
    "RawScore",
    "could_not_judge",
    "default_cache_dir",
    "judge_component",
    "load_rubric",
    "load_rubric_text",
    "reply_model",
    "shared_log",
]
