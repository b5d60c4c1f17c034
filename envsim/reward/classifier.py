"""A learned reward: a classifier trained on labelled trajectories, usable as a reward component.

The seam is :class:`TrajectoryClassifier`: features of a trajectory in, the probability that
a human would call it good out; ``fit`` on labelled trajectories, ``save``/``load`` as JSON,
and :meth:`TrajectoryClassifier.component` with the one reward signature
``(trajectory, context) -> ComponentScore``. The first model behind it is a small logistic
regression (numpy, iteratively reweighted least squares with an L2 penalty on standardised
features) over these features (:data:`FEATURES`):

==================== ===================================================================
turns                agent steps taken
tool_calls           tool calls made
tool_error_rate      share of tool calls that failed (0 without calls)
forbidden_action     1 when a call matched one of the scenario's forbidden actions
escalated            1 when a hand-off or dispatch succeeded
escalation_correct   1 when escalating (or not) is what the scenario requires
statements_said      share of the scenario's required statements the agent said
final_state_match    1 when the final world equals the expected one
affect_change        distress of the user's last recorded affect minus the first's
                     (``trajectory.affects``; 0 when fewer than two are recorded)
max_turns_reached    1 when the episode ran out of turns
==================== ===================================================================

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> model = TrajectoryClassifier(features=("turns",)).fit(x, np.array([0, 0, 1, 1]))
    >>> [round(p) for p in model.predict_proba(x)]
    [0, 0, 1, 1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from envsim.errors import EnvsimError
from envsim.reward import components
from envsim.reward.base import ComponentScore, RewardContext, RewardFn
from envsim.trajectory import Trajectory

FEATURES: tuple[str, ...] = (
    "turns",
    "tool_calls",
    "tool_error_rate",
    "forbidden_action",
    "escalated",
    "escalation_correct",
    "statements_said",
    "final_state_match",
    "affect_change",
    "max_turns_reached",
)
"""The features the classifier can use, in a fixed order."""

WEIGHTS_FORMAT: Literal["envsim.reward_classifier/1"] = "envsim.reward_classifier/1"
"""The format tag of a saved classifier."""

AFFECT_DISTRESS: dict[str, float] = {
    "relieved": 0.0,
    "calm": 0.2,
    "confused": 0.4,
    "frustrated": 0.6,
    "panicked": 0.8,
    "angry": 1.0,
}
"""How distressed each mock-user affect is, for ``affect_change`` (unknown affects are skipped)."""


def affect_change(trajectory: Trajectory) -> float:
    """Distress of the user's last recorded affect minus that of the first (0 when fewer than two are known).

    Example:
        >>> affect_change(Trajectory(scenario_id="X", seed=0, messages=[], affects=["angry", "frustrated", "relieved"]))
        -1.0
    """
    known = [AFFECT_DISTRESS[a] for a in trajectory.affects if a in AFFECT_DISTRESS]
    return known[-1] - known[0] if len(known) >= 2 else 0.0


def trajectory_features(trajectory: Trajectory, context: RewardContext) -> dict[str, float]:
    """Every feature of :data:`FEATURES` for one trajectory."""
    calls = trajectory.tool_calls
    failed = sum(not c.ok for c in calls)
    return {
        "turns": float(trajectory.turns),
        "tool_calls": float(len(calls)),
        "tool_error_rate": failed / len(calls) if calls else 0.0,
        "forbidden_action": 1.0 - components.forbidden_actions(trajectory, context).score,
        "escalated": float(any(c.ok and c.escalation for c in calls)),
        "escalation_correct": components.escalation(trajectory, context).score,
        "statements_said": components.required_statements(trajectory, context).score,
        "final_state_match": components.final_state(trajectory, context).score,
        "affect_change": affect_change(trajectory),
        "max_turns_reached": float(trajectory.end_reason == "max_turns"),
    }


@lru_cache(maxsize=256)
def _context(scenario_id: str) -> RewardContext:
    from envsim.registration import load_registered
    from envsim.runtime import ScenarioRuntime

    return RewardContext(ScenarioRuntime(load_registered(scenario_id)))


def context_for(trajectory: Trajectory) -> RewardContext:
    """The reward context of a trajectory's registered scenario (built once per scenario)."""
    return _context(trajectory.scenario_id)


class ClassifierWeights(BaseModel):
    """A saved classifier: the JSON file :meth:`TrajectoryClassifier.save` writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["envsim.reward_classifier/1"] = WEIGHTS_FORMAT
    kind: Literal["logistic_regression"] = "logistic_regression"
    features: list[str] = Field(min_length=1, description="Feature names, in the order of the weights.")
    weights: list[float] = Field(description="One weight per standardised feature.")
    intercept: float
    mean: list[float] = Field(description="Feature means of the training set (standardisation).")
    scale: list[float] = Field(description="Feature standard deviations of the training set (1 where constant).")
    l2: float = Field(ge=0, description="L2 penalty the model was fitted with.")
    trained_on: int = Field(ge=0, description="Training examples.")
    train_accuracy: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> ClassifierWeights:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features: {', '.join(unknown)} (known: {', '.join(FEATURES)})")
        n = len(self.features)
        if not len(self.weights) == len(self.mean) == len(self.scale) == n:
            raise ValueError(f"weights, mean and scale need {n} values each (one per feature)")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scale values must be positive")
        return self


class TrajectoryClassifier:
    """Logistic regression from trajectory features to P(good).

    Args:
        features: Which of :data:`FEATURES` to use, in this order.
        l2: L2 penalty on the standardised weights (keeps them finite when the classes separate).
    """

    def __init__(
        self,
        features: Sequence[str] = FEATURES,
        *,
        l2: float = 1.0,
    ) -> None:
        unknown = [f for f in features if f not in FEATURES]
        if unknown or not features:
            raise ValueError(f"features must be a non-empty subset of {', '.join(FEATURES)}; unknown: {unknown}")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.features = tuple(features)
        self.l2 = l2
        self.weights: np.ndarray | None = None
        self.intercept = 0.0
        self.mean = np.zeros(len(self.features))
        self.scale = np.ones(len(self.features))
        self.trained_on = 0
        self.train_accuracy = 0.0

    # -- features -----------------------------------------------------------------------------

    def featurize(self, trajectory: Trajectory, context: RewardContext | None = None) -> np.ndarray:
        """The feature vector of one trajectory (context: the scenario's, from the registry when None)."""
        values = trajectory_features(trajectory, context or context_for(trajectory))
        return np.array([values[f] for f in self.features], dtype=float)

    def featurize_many(
        self, trajectories: Sequence[Trajectory], contexts: Sequence[RewardContext | None] | None = None
    ) -> np.ndarray:
        """The feature matrix, one row per trajectory."""
        given = list(contexts) if contexts is not None else [None] * len(trajectories)
        if len(given) != len(trajectories):
            raise ValueError(f"{len(trajectories)} trajectories but {len(given)} contexts")
        rows = [self.featurize(t, c) for t, c in zip(trajectories, given, strict=True)]
        return np.vstack(rows) if rows else np.zeros((0, len(self.features)))

    # -- fitting ------------------------------------------------------------------------------

    def fit(self, x: np.ndarray, y: np.ndarray, *, max_iter: int = 100, tol: float = 1e-9) -> TrajectoryClassifier:
        """Fit on a feature matrix ``x`` (rows × features) and 0/1 labels ``y`` by IRLS (Newton's method)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"x must have shape (n, {len(self.features)}), got {x.shape}")
        if len(y) != len(x) or not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("y must hold one 0/1 label per row of x")
        if len(set(y.tolist())) < 2:
            raise EnvsimError("training labels must include both good and bad trajectories")
        self.mean = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale = np.where(std > 1e-12, std, 1.0)
        design = np.hstack([np.ones((len(x), 1)), (x - self.mean) / self.scale])
        penalty = np.eye(design.shape[1]) * self.l2
        penalty[0, 0] = 0.0  # the intercept is not penalised
        beta = np.zeros(design.shape[1])
        for _ in range(max_iter):
            p = 1.0 / (1.0 + np.exp(-(design @ beta)))
            gradient = design.T @ (p - y) + penalty @ beta
            hessian = (design * (p * (1.0 - p))[:, None]).T @ design + penalty + np.eye(len(beta)) * 1e-9
            step = np.linalg.solve(hessian, gradient)
            beta -= step
            if float(np.abs(step).max()) < tol:
                break
        self.intercept = float(beta[0])
        self.weights = beta[1:]
        self.trained_on = len(x)
        self.train_accuracy = float(np.mean((self.predict_proba(x) >= 0.5) == (y == 1.0)))
        return self

    def fit_trajectories(
        self,
        trajectories: Sequence[Trajectory],
        labels: Sequence[bool],
        contexts: Sequence[RewardContext | None] | None = None,
    ) -> TrajectoryClassifier:
        """Fit on trajectories labelled good (True) or bad (False)."""
        return self.fit(self.featurize_many(trajectories, contexts), np.array(labels, dtype=float))

    # -- prediction ---------------------------------------------------------------------------

    def _weights(self) -> np.ndarray:
        if self.weights is None:
            raise EnvsimError("the classifier is not fitted: call fit() or load() first")
        return self.weights

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of good for each row of ``x``."""
        z = (np.asarray(x, dtype=float) - self.mean) / self.scale
        result: np.ndarray = z @ self._weights() + self.intercept
        return result

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(good) for each row of ``x``."""
        result: np.ndarray = 1.0 / (1.0 + np.exp(-self.decision(x)))
        return result

    def probability(self, trajectory: Trajectory, context: RewardContext | None = None) -> float:
        """P(good) of one trajectory."""
        return float(self.predict_proba(self.featurize(trajectory, context)[None, :])[0])

    def component(self, trajectory: Trajectory, context: RewardContext) -> ComponentScore:
        """The classifier as a reward component: P(good), explained by the largest contributions."""
        x = self.featurize(trajectory, context)
        contributions = (x - self.mean) / self.scale * self._weights()
        probability = float(1.0 / (1.0 + math.exp(-(float(contributions.sum()) + self.intercept))))
        order = np.argsort(-np.abs(contributions))[:3]
        top = ", ".join(f"{self.features[i]}={x[i]:.2f} ({contributions[i]:+.2f})" for i in order)
        return ComponentScore(probability, f"classifier P(good)={probability:.3f}; largest: {top}")

    # -- persistence --------------------------------------------------------------------------

    def to_weights(self) -> ClassifierWeights:
        """The fitted parameters as a :class:`ClassifierWeights`."""
        return ClassifierWeights(
            features=list(self.features),
            weights=[float(w) for w in self._weights()],
            intercept=self.intercept,
            mean=[float(m) for m in self.mean],
            scale=[float(s) for s in self.scale],
            l2=self.l2,
            trained_on=self.trained_on,
            train_accuracy=self.train_accuracy,
        )

    def save(self, path: str | Path) -> Path:
        """Write the weights as JSON."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.to_weights().model_dump_json(indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def from_weights(cls, saved: ClassifierWeights) -> TrajectoryClassifier:
        """A classifier with saved parameters."""
        model = cls(saved.features, l2=saved.l2)
        model.weights = np.array(saved.weights, dtype=float)
        model.intercept = saved.intercept
        model.mean = np.array(saved.mean, dtype=float)
        model.scale = np.array(saved.scale, dtype=float)
        model.trained_on = saved.trained_on
        model.train_accuracy = saved.train_accuracy
        return model

    @classmethod
    def load(cls, path: str | Path) -> TrajectoryClassifier:
        """Read a classifier written by :meth:`save`."""
        return cls.from_weights(ClassifierWeights.model_validate_json(Path(path).read_text(encoding="utf-8")))


def classifier_component(path: str | Path) -> RewardFn:
    """A reward component scoring P(good) with the classifier saved at ``path``."""
    return TrajectoryClassifier.load(path).component
