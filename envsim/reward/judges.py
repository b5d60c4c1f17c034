"""The judges a scenario names in ``reward.judges``: rubric references, and judges as reward components.

A scenario (or its domain's defaults) names LLM judges for what no state check can see, such as
empathy with a panicked caller::

    reward:
      judges:
        empathy: empathy_panicked_caller          # a rubric shipped with envsim (envsim/reward/rubrics/)
        explains: rubrics/refusal.yaml            # a rubric file, relative to the scenario file
        brief:                                    # a rubric inline
          name: brief
          criteria: [{id: short, description: Are the agent's messages short?, scale: pass_fail,
                      levels: {pass: Short., fail: Long.}}]
      metrics: [empathy]                          # every judge needs a role: gate, weight or metric

A judge is a reward component like the built-in ones: its weight and gate follow the reward
spec, and one that no gate, weight or metric names is refused (:func:`judges_without_role`).

Rubrics are untrusted input, read like scenario files: through :mod:`envsim.yamlsource` (bounded,
located), validated by :class:`~envsim.rubric_schema.JudgeRubric` (unknown keys are errors), and only
ever rendered as data in the judge's sandboxed templates. A rubric file is named by a relative path
ending in ``.yaml`` or ``.yml``; schema validation reads it and keeps the rubric inline
(:func:`~envsim.rubric_schema.resolve_reference`), so a loaded scenario carries all its reward needs wherever it goes.

A judge runs only when a judge model is given (``envsim generate --judge-model``, or
``judge_model=`` for the environment): it is then called through its model client, litellm by
default (:class:`ScenarioJudge`, which is also the run-wide judge of ``--judge-rubric``). It is
scored once, when the episode is: synchronously by :meth:`Rubric.evaluate
<envsim.reward.rubric.Rubric.evaluate>`, awaited by :meth:`~envsim.reward.rubric.Rubric.aevaluate`.
Without one, as in every offline run, the judge is recorded as **not run**
(:meth:`ComponentScore.not_run <envsim.reward.base.ComponentScore.not_run>`): no score, left out of
the total (the other weights renormalised) and of the gates, and no ``judge_error`` either.

Example:
    >>> from envsim.trajectory import Trajectory
    >>> judge = ScenarioJudge("empathy", "empathy_panicked_caller")
    >>> judge(Trajectory(scenario_id="X", seed=0, messages=[]), None).explanation  # doctest: +ELLIPSIS
    "judge 'empathy' (rubric empathy_panicked_caller) not run: no judge model configured ..."
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envsim.errors import JudgeError, ModelCallError
from envsim.llm import ModelClient
from envsim.reward.base import ComponentScore, RewardContext
from envsim.reward.judge.model import Judge
from envsim.reward.judge.verdicts import JudgeResult, could_not_judge
from envsim.rubric_schema import JudgeReference, JudgeRubric, is_rubric_file, judge_rubric, load_rubric
from envsim.trajectory import Trajectory

RUN_JUDGE = "judge"
"""The component name of the run-wide judge (``envsim generate --judge-rubric``); no scenario judge may take it."""


class ScenarioJudge:
    """An LLM judge as a reward component ``(trajectory, context) -> ComponentScore``, with an async form.

    With ``model`` None it is not run (:meth:`ComponentScore.not_run`); otherwise it judges through
    :class:`~envsim.reward.judge.Judge` (its ``client``: litellm by default), a failed judgement
    becoming ``judge_error`` (NaN). With ``provider_errors_raise`` a judgement that failed on the
    provider's side (timeout, provider error) raises :class:`~envsim.errors.ModelCallError`
    instead: a batch run stores the episode as an ``infra_error``, to be played again.
    The :class:`Judge` is made on first use and not pickled (an environment pickles with its rubric).

    Args:
        name: The component's name (the key in ``reward.judges``).
        reference: The resolved rubric reference, or a rubric.
        model: The judge model (overrides the rubric's), or None: not run.
        provider_errors_raise: Raise on a provider failure instead of scoring ``judge_error``.
        options: Further arguments of :class:`Judge` (``cache``, ``client``, ``completion_kwargs``, ``samples``...).
    """

    def __init__(
        self,
        name: str,
        reference: JudgeReference | JudgeRubric,
        model: str | None = None,
        *,
        provider_errors_raise: bool = False,
        **options: Any,
    ) -> None:
        self.name = name
        self.rubric = reference if isinstance(reference, JudgeRubric) else judge_rubric(reference)
        self.model = model
        self.provider_errors_raise = provider_errors_raise
        self.options = options
        self._judge: Judge | None = None

    @classmethod
    def of_rubric(
        cls, name: str, rubric: JudgeReference | JudgeRubric | str | Path, model: str | None = None, **options: Any
    ) -> ScenarioJudge:
        """A judge of ``rubric`` (a rubric, a rubric file, a shipped rubric's name) calling ``model`` or else the
        rubric's own model: it always runs (a run's ``--judge-rubric``)."""
        if isinstance(rubric, Path) or (isinstance(rubric, str) and is_rubric_file(rubric)):
            rubric = load_rubric(rubric)
        resolved = rubric if isinstance(rubric, JudgeRubric) else judge_rubric(rubric)
        return cls(name, resolved, model or resolved.model, **options)

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the judge itself (made again on first use)."""
        return {**vars(self), "_judge": None}

    @property
    def judge(self) -> Judge | None:
        """The judge calling the model, or None when no model is configured."""
        if self.model is None:
            return None
        if self._judge is None:
            self._judge = Judge(self.rubric, model=self.model, **self.options)
        return self._judge

    @property
    def awaits(self) -> bool:
        """Whether :meth:`ascore` may wait (on its model): a judge without a model never does."""
        return self.model is not None

    def not_run(self) -> ComponentScore:
        """The result of this judge when no judge model is configured."""
        return ComponentScore.not_run(
            f"judge {self.name!r} (rubric {self.rubric.name}) not run: no judge model configured "
            "(--judge-model of envsim run or generate, or judge_model= for the environment)"
        )

    def __call__(self, trajectory: Trajectory, context: RewardContext | None) -> ComponentScore:
        """Judge ``trajectory`` once it has ended, or say that the judge did not run (no model; still running)."""
        judge = self._ready(trajectory)
        if isinstance(judge, ComponentScore):
            return judge
        try:
            return judge.judge(trajectory).as_score()
        except JudgeError as error:
            return self._failed(error)

    async def ascore(self, trajectory: Trajectory, context: RewardContext | None) -> ComponentScore:
        """:meth:`__call__` awaited: the judge's samples drawn concurrently (:meth:`Judge.ajudge`)."""
        judge = self._ready(trajectory)
        if isinstance(judge, ComponentScore):
            return judge
        try:
            result: JudgeResult = await judge.ajudge(trajectory)
        except JudgeError as error:
            return self._failed(error)
        return result.as_score()

    def _ready(self, trajectory: Trajectory) -> Judge | ComponentScore:
        """The judge to call, or the result of not running it (no model; the episode still running)."""
        judge = self.judge
        if judge is None:
            return self.not_run()
        if trajectory.end_reason == "running":
            return ComponentScore.not_run(f"judge {self.name!r} not run: the episode has not ended")
        return judge

    def _failed(self, error: JudgeError) -> ComponentScore:
        if self.provider_errors_raise and error.reason in ("timeout", "provider_error"):
            raise ModelCallError(error.model, error) from error
        return could_not_judge(error)


def run_judge_options(client: ModelClient) -> dict[str, Any]:
    """The options (:class:`ScenarioJudge`, :class:`~envsim.reward.judge.Judge`) of the judges of a batch run
    whose model client (:class:`envsim.llm.ModelClient`) is ``client``.

    No verdict cache of the judges' own (``client`` is used as it is): record/replay is the run's
    call cache, and a cache shared across episodes would make which episode pays for a verdict
    depend on timing. No backoff of their own: the run's client already backs off. A provider
    failure raises (the episode is an ``infra_error``, played again by a resumed run) instead of
    scoring ``judge_error``.
    """
    return {"backoff": 0.0, "client": client, "provider_errors_raise": True}


def scenario_judges(
    judges: Mapping[str, JudgeReference] | None, *, model: str | None = None, **options: Any
) -> dict[str, ScenarioJudge]:
    """The judges of a (merged) reward spec as reward components, by name."""
    return {name: ScenarioJudge(name, reference, model, **options) for name, reference in (judges or {}).items()}
