"""A rubric: gates, weighted components and metrics, combined into one reward and an outcome.

- every component is computed and reported;
- the **total** is the weighted mean of the weighted components' scores (a component that
  could not judge counts 0 there, and makes the outcome ``judge_error``);
- if any **gate** does not score 1, the total is 0; with no weighted component, the total is 1
  when there are gates and all held;
- **metrics** are reported with weight 0;
- a **custom** component (user code, see :mod:`envsim.reward.custom`) that fails is recorded
  with a NaN score and why, and makes the outcome ``reward_error``, whatever its role;
- a **judge** (``reward.judges``, or a run's ``--judge-rubric``, :mod:`envsim.reward.judges`) is a
  component like the others, scored once, when the episode is scored; without a judge model it is
  recorded as **not run** (``ran`` False): left out of the total (the other weights are
  renormalised over the components that ran) and of the gates, and neither a score nor a
  ``judge_error``;
- :meth:`Rubric.evaluate` calls every component; :meth:`Rubric.aevaluate`, for asyncio runners,
  awaits the components that have an async form (:class:`AsyncComponent`: a judge's model calls),
  concurrently, and calls the others;
- the **outcome** (:mod:`envsim.reward.outcome`) and the **measures**
  (:func:`envsim.reward.kpis.measures`) come with every breakdown.

Example:
    >>> rubric = Rubric({"required_statements": 1.0}, gates=["final_state"], metrics=["containment"])
    >>> list(rubric.functions)
    ['required_statements', 'final_state', 'containment']
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

from envsim.errors import RewardFunctionError
from envsim.reward import components, kpis
from envsim.reward.base import ComponentResult, ComponentScore, RewardBreakdown, RewardContext, RewardFn
from envsim.reward.custom import GuardedReward, load_reward_function
from envsim.reward.judges import RUN_JUDGE, ScenarioJudge, scenario_judges
from envsim.reward.outcome import decide_outcome
from envsim.reward.spec import custom_without_role, effective_reward_spec, judges_without_role
from envsim.rubric_schema import JudgeReference
from envsim.scenario import RewardSpec, Scenario
from envsim.trajectory import Trajectory, Usage

COMPONENTS: dict[str, RewardFn] = {
    "final_state": components.final_state,
    "required_statements": components.required_statements,
    "forbidden_actions": components.forbidden_actions,
    "escalation": components.escalation,
    "required_actions": components.required_actions,
    "argument_checks": components.argument_checks,
    "no_false_claims": components.no_false_claims,
    "handoff_summary": components.handoff_summary,
    "containment": kpis.containment,
    "resolution": kpis.resolution,
    "customer_effort": kpis.customer_effort,
}
"""The built-in reward components by the name scenario files use (gates, components, metrics)."""

GATE_TOLERANCE = 1e-9
"""A gate holds when its score is at least ``1 - GATE_TOLERANCE``."""


@runtime_checkable
class AsyncComponent(Protocol):
    """A reward component with an async form, awaited by :meth:`Rubric.aevaluate` (an LLM judge).

    One whose ``awaits`` attribute is false (a judge without a model) is called like the others.
    """

    def __call__(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        """The score, computed synchronously."""
        ...

    async def ascore(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        """The score, awaited."""
        ...


class _Given:
    """A reward component whose result is already known (:meth:`Rubric.with_scores`)."""

    def __init__(self, score: ComponentScore) -> None:
        self.score = score

    def __call__(self, trajectory: Trajectory | None, context: RewardContext | None) -> ComponentScore:
        return self.score


class Rubric:
    """Gates, weighted components and metrics (see the module docstring for how they combine).

    Args:
        weights: Weight per component; the total is their weighted mean (normalised by the sum).
        functions: The components by name (default: :data:`COMPONENTS`).
        gates: Components that must score 1, or the total is 0.
        metrics: Components reported with weight 0.
        success_threshold: The total at or above which an episode whose gates held succeeds.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        functions: Mapping[str, RewardFn] | None = None,
        *,
        gates: Sequence[str] = (),
        metrics: Sequence[str] = (),
        success_threshold: float = 1.0,
    ) -> None:
        table = dict(functions or COMPONENTS)
        names = list(dict.fromkeys([*weights, *gates, *metrics]))
        unknown = [name for name in names if name not in table]
        if unknown:
            raise ValueError(f"unknown reward components: {', '.join(unknown)}")
        self.weights = {name: float(weights.get(name, 0.0)) for name in names}
        self.gates = tuple(dict.fromkeys(gates))
        self.functions = {name: table[name] for name in names}
        self.success_threshold = success_threshold
        # the components with an async form that would wait (a judge with a model), found once: a runtime
        # Protocol check costs microseconds per component, and awaiting a component that never waits in a
        # task of its own would make every episode give its event loop a pass (a replay would then hold as
        # many environments as it has slots)
        self._awaited: dict[str, AsyncComponent] = {
            name: cast(AsyncComponent, fn)
            for name, fn in self.functions.items()
            if callable(getattr(fn, "ascore", None)) and getattr(fn, "awaits", True)
        }

    @classmethod
    def from_spec(
        cls,
        spec: RewardSpec,
        *,
        judge_model: str | None = None,
        judge_options: Mapping[str, Any] | None = None,
        judge_rubric: JudgeReference | str | Path | None = None,
        judge_weight: float = 0.0,
    ) -> Rubric:
        """The rubric a (merged) reward spec describes; its custom components are loaded (if allowed) and guarded.

        Its judges (``reward.judges``) call ``judge_model`` with ``judge_options`` (arguments of
        :class:`~envsim.reward.judge.Judge`); with ``judge_model`` None they are recorded as not run.
        ``judge_rubric`` (a rubric, a shipped rubric's name or a rubric file) adds a judge named
        ``judge`` (:data:`~envsim.reward.judges.RUN_JUDGE`) with ``judge_weight`` (0: a metric),
        calling ``judge_model`` or else the rubric's own model.
        """
        functions = dict(COMPONENTS)
        for name, reference in (spec.custom or {}).items():
            if name in COMPONENTS:
                raise ValueError(f"custom reward component {name!r} has the name of a built-in component")
            functions[name] = GuardedReward(reference, load_reward_function(reference))
        idle = custom_without_role(spec)
        if idle:
            raise ValueError(
                f"reward.custom.{idle[0]}: custom reward component {idle[0]!r} is never called: "
                "name it in reward.gates, reward.components or reward.metrics"
            )
        for name, judge in scenario_judges(spec.judges, model=judge_model, **dict(judge_options or {})).items():
            if name in functions or name == RUN_JUDGE:
                raise ValueError(f"reward.judges.{name}: judge {name!r} has the name of another reward component")
            functions[name] = judge
        idle = judges_without_role(spec)
        if idle:
            raise ValueError(
                f"reward.judges.{idle[0]}: judge {idle[0]!r} is never run: "
                "name it in reward.gates, reward.components or reward.metrics"
            )
        rubric = cls(
            spec.weighted(),
            functions,
            gates=spec.gates or (),
            metrics=spec.metrics or (),
            success_threshold=spec.success_threshold,
        )
        if judge_rubric is None:
            return rubric
        run_judge = ScenarioJudge.of_rubric(RUN_JUDGE, judge_rubric, judge_model, **dict(judge_options or {}))
        return rubric.with_component(RUN_JUDGE, run_judge, judge_weight)

    @classmethod
    def for_scenario(
        cls,
        scenario: Scenario,
        *,
        judge_model: str | None = None,
        judge_options: Mapping[str, Any] | None = None,
        judge_rubric: JudgeReference | str | Path | None = None,
        judge_weight: float = 0.0,
    ) -> Rubric:
        """The rubric of a scenario: its ``reward`` section over its domain's defaults (judges: :meth:`from_spec`)."""
        return cls.from_spec(
            effective_reward_spec(scenario),
            judge_model=judge_model,
            judge_options=judge_options,
            judge_rubric=judge_rubric,
            judge_weight=judge_weight,
        )

    def with_component(self, name: str, fn: RewardFn, weight: float = 0.0) -> Rubric:
        """This rubric with one more component, last (``weight`` 0: reported only).

        Example:
            >>> rubric = Rubric({"final_state": 1.0}).with_component("half", lambda t, c: ComponentScore(0.5, ""), 1.0)
            >>> rubric.weights
            {'final_state': 1.0, 'half': 1.0}
        """
        if name in self.functions:
            raise ValueError(f"reward component {name!r} is there already")
        return Rubric(
            {**self.weights, name: weight},
            {**self.functions, name: fn},
            gates=self.gates,
            success_threshold=self.success_threshold,
        )

    def with_scores(self, scores: Mapping[str, ComponentScore]) -> Rubric:
        """This rubric with the named components' results given (e.g. judges scored elsewhere, asynchronously).

        Example:
            >>> rubric = Rubric({"final_state": 1.0}, metrics=["containment"])
            >>> fixed = rubric.with_scores({"containment": ComponentScore(0.5, "given")})
            >>> fixed.weights == rubric.weights, fixed.functions["containment"](None, None).score
            (True, 0.5)
        """
        unknown = [name for name in scores if name not in self.functions]
        if unknown:
            raise ValueError(f"unknown reward components: {', '.join(unknown)}")
        given = {name: _Given(score) for name, score in scores.items()}
        return Rubric(
            self.weights, {**self.functions, **given}, gates=self.gates, success_threshold=self.success_threshold
        )

    def evaluate(self, trajectory: Trajectory, context: RewardContext) -> RewardBreakdown:
        """Score every component, apply the gates, and decide the outcome."""
        results = {name: _called(fn, trajectory, context) for name, fn in self.functions.items()}
        return self._combine(results, trajectory, context)

    async def aevaluate(self, trajectory: Trajectory, context: RewardContext) -> RewardBreakdown:
        """:meth:`evaluate` for asyncio runners: components with an async form are awaited, concurrently."""
        awaited = self._awaited
        given: dict[str, ComponentScore] = {}
        if len(awaited) == 1:  # no task of its own
            (name, fn), *_ = awaited.items()
            given = {name: await fn.ascore(trajectory, context)}
        elif awaited:
            scores = await asyncio.gather(*(fn.ascore(trajectory, context) for fn in awaited.values()))
            given = dict(zip(awaited, scores, strict=True))
        results = {
            name: given[name] if name in given else _called(fn, trajectory, context)
            for name, fn in self.functions.items()
        }
        return self._combine(results, trajectory, context)

    def _combine(
        self,
        results: Mapping[str, ComponentScore | RewardFunctionError],
        trajectory: Trajectory,
        context: RewardContext,
    ) -> RewardBreakdown:
        parts: dict[str, ComponentResult] = {}
        gates: dict[str, bool] = {}
        weighted = 0.0
        norm = 0.0
        unjudged = False
        failed = False
        judge_usage: Usage | None = None
        for name, result in results.items():
            weight = self.weights[name]
            is_gate = name in self.gates
            if isinstance(result, RewardFunctionError):
                err = result
                failed = True
                norm += weight
                if is_gate:
                    gates[name] = False
                parts[name] = ComponentResult(
                    score=math.nan, weight=weight, explanation=f"reward_error: {err}", gate=is_gate, judged=False
                )
                continue
            if not isinstance(result, ComponentScore):
                raise TypeError(f"reward component {name!r} returned {type(result).__name__}, not a ComponentScore")
            if result.usage is not None:
                judge_usage = result.usage if judge_usage is None else judge_usage + result.usage
            if not result.ran:  # no verdict at all: out of the total and the gates, and no error
                parts[name] = ComponentResult(
                    score=math.nan, weight=weight, explanation=result.explanation, gate=is_gate, judged=False, ran=False
                )
                continue
            norm += weight
            if is_gate:
                gates[name] = result.judged and result.score >= 1.0 - GATE_TOLERANCE
            if not result.judged and (is_gate or weight > 0):
                unjudged = True
            if result.judged:
                weighted += weight * result.score
            parts[name] = ComponentResult(
                score=result.score, weight=weight, explanation=result.explanation, gate=is_gate, judged=result.judged
            )
        held = all(gates.values())
        if not held:
            total = 0.0
        elif norm:
            total = weighted / norm
        else:
            total = 1.0 if gates else 0.0
        outcome = decide_outcome(
            trajectory,
            gates_held=held,
            total=total,
            success_threshold=self.success_threshold,
            unjudged=unjudged,
            reward_failed=failed,
        )
        extra = {"judge": judge_usage} if judge_usage is not None else None
        return RewardBreakdown(
            total=total,
            components=parts,
            gates=gates,
            outcome=outcome,
            measures=kpis.measures(trajectory, context, extra),
        )


def _called(fn: RewardFn, trajectory: Trajectory, context: RewardContext) -> ComponentScore | RewardFunctionError:
    """A component's score, or the failure of a custom component (recorded, not raised)."""
    try:
        return fn(trajectory, context)
    except RewardFunctionError as error:
        return error
