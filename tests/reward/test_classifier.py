"""The learned-reward seam: a logistic regression on trajectory features, trained on labelled episodes.

Training episodes come from the scenarios *not* in the shipped labels file (scripted agent,
error rates 0, 0.3 and 0.6, seeds 10–13), labelled by the calibration tests' stated rule; the
held-out set is the shipped labels file itself (other scenarios, other seeds).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from envsim.env import ScenarioEnv
from envsim.errors import EnvsimError
from envsim.reward.base import ComponentScore, RewardContext
from envsim.reward.classifier import (
    FEATURES,
    ClassifierWeights,
    TrajectoryClassifier,
    affect_change,
    classifier_component,
    trajectory_features,
)
from envsim.reward.judge_calibration import load_labels
from envsim.trajectory import Trajectory
from tests.conftest import DISPATCH, LOOKUP
from tests.reward.test_judge_calibration import LABELS, RUNS, label_by_rule


def rank_auc(scores: np.ndarray, good: np.ndarray) -> float:
    """P(a good trajectory scores above a bad one), ties counting half."""
    pos, neg = scores[good][:, None], scores[~good][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


@pytest.fixture(scope="module")
def training() -> tuple[list[Trajectory], list[bool]]:
    """Labelled episodes of the scenarios the labels file does not use."""
    from envsim.agents import ScriptedAgent
    from envsim.registration import discover
    from envsim.rollout import run_episode

    held_out = {scenario for scenario, _, _ in RUNS}
    trajectories, labels = [], []
    for name in sorted(set(discover()) - held_out):
        env = ScenarioEnv(name)
        for rate in (0.0, 0.3, 0.6):
            for seed in range(10, 14):
                trajectory, _ = run_episode(env, ScriptedAgent(rate), seed=seed)
                trajectories.append(trajectory)
                labels.append(label_by_rule(trajectory)[0] == "good")
    return trajectories, labels


@pytest.fixture(scope="module")
def fitted(training: tuple[list[Trajectory], list[bool]]) -> TrajectoryClassifier:
    """The classifier fitted on the training episodes."""
    return TrajectoryClassifier().fit_trajectories(*training)


def test_features_of_good_and_bad_episodes(tiny_env: ScenarioEnv) -> None:
    context = RewardContext(tiny_env.runtime)
    tiny_env.reset(seed=0)
    tiny_env.step(LOOKUP)
    tiny_env.step(
        {
            "role": "assistant",
            "content": "Help is on the way.",
            "tool_calls": [{"id": "x", "function": json.loads(DISPATCH)}],
        }
    )
    good = trajectory_features(tiny_env.trajectory(), context)
    assert good == {
        "turns": 2.0,
        "tool_calls": 2.0,
        "tool_error_rate": 0.0,
        "forbidden_action": 0.0,
        "escalated": 1.0,
        "escalation_correct": 1.0,
        "statements_said": 1.0,
        "final_state_match": 1.0,
        "affect_change": 0.0,
        "max_turns_reached": 0.0,
    }
    tiny_env.reset(seed=0)
    tiny_env.step('{"name": "get_patient", "arguments": {"patient_id": "nobody"}}')
    tiny_env.step('{"name": "create_equipment_order", "arguments": {"patient_id": "PT-9001", "prescription_id": "x"}}')
    bad = trajectory_features(tiny_env.trajectory(), context)
    assert bad["tool_error_rate"] > 0 and bad["forbidden_action"] == 1.0 and bad["escalated"] == 0.0
    assert bad["escalation_correct"] == 0.0 and bad["statements_said"] == 0.0 and bad["final_state_match"] == 0.0
    assert list(good) == list(FEATURES)


def test_affect_change_reads_the_recorded_affects() -> None:
    def trajectory(affects: list[str]) -> Trajectory:
        return Trajectory(scenario_id="X", seed=0, messages=[], affects=affects)

    assert affect_change(trajectory(["calm", "frustrated", "angry"])) == pytest.approx(0.8)
    assert affect_change(trajectory(["panicked", "relieved"])) == pytest.approx(-0.8)
    assert affect_change(trajectory(["calm"])) == 0.0 and affect_change(trajectory([])) == 0.0


def test_separates_good_from_bad_on_held_out_trajectories(
    training: tuple[list[Trajectory], list[bool]], fitted: TrajectoryClassifier
) -> None:
    _, labels = training
    assert 0.2 < np.mean(labels) < 0.8  # both classes well represented in training
    rows = load_labels(LABELS)
    good = np.array([r.label == "good" for r in rows])
    scores = fitted.predict_proba(fitted.featurize_many([r.trajectory for r in rows]))
    accuracy = float(np.mean((scores >= 0.5) == good))
    majority = max(np.mean(good), 1 - np.mean(good))
    assert accuracy >= 0.9 and accuracy > majority
    assert rank_auc(scores, good) >= 0.95


def test_irls_reaches_the_penalised_optimum() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x @ np.array([1.5, -2.0, 0.0]) + rng.normal(size=200) > 0).astype(float)  # overlapping classes
    model = TrajectoryClassifier(features=FEATURES[:3], l2=2.0).fit(x, y)
    z = (x - model.mean) / model.scale
    p = model.predict_proba(x)
    assert model.weights is not None
    # first-order optimality of the penalised log-likelihood: the gradient vanishes
    assert abs(float(np.sum(p - y))) < 1e-6
    assert np.allclose(z.T @ (p - y) + 2.0 * model.weights, 0.0, atol=1e-6)
    assert model.weights[0] > 0 > model.weights[1] and abs(model.weights[2]) < 0.3


def test_save_load_round_trip(fitted: TrajectoryClassifier, tmp_path: Path) -> None:
    path = fitted.save(tmp_path / "reward.json")
    saved = json.loads(path.read_text())
    assert saved["format"] == "envsim.reward_classifier/1" and saved["features"] == list(FEATURES)
    loaded = TrajectoryClassifier.load(path)
    rows = load_labels(LABELS)
    x = fitted.featurize_many([r.trajectory for r in rows])
    assert np.array_equal(loaded.predict_proba(x), fitted.predict_proba(x))
    saved["weights"] = saved["weights"][:-1]
    with pytest.raises(ValidationError, match="one per feature"):
        ClassifierWeights.model_validate(saved)
    saved["features"] = ["turns", "mood"]
    with pytest.raises(ValidationError, match="unknown features: mood"):
        ClassifierWeights.model_validate(saved)


def test_component_has_the_reward_signature(
    fitted: TrajectoryClassifier, tiny_env: ScenarioEnv, tmp_path: Path
) -> None:
    rows = load_labels(LABELS)
    good = next(r for r in rows if r.label == "good").trajectory
    bad = next(r for r in rows if r.label == "bad").trajectory
    component = classifier_component(fitted.save(tmp_path / "reward.json"))
    high = component(good, RewardContext(ScenarioEnv(good.scenario_id).runtime))
    low = component(bad, RewardContext(ScenarioEnv(bad.scenario_id).runtime))
    assert isinstance(high, ComponentScore) and high.score > 0.5 > low.score
    assert high.explanation.startswith("classifier P(good)=") and "largest: " in high.explanation
    assert math.isclose(high.score, fitted.probability(good))


def test_misuse_raises() -> None:
    with pytest.raises(EnvsimError, match="not fitted"):
        TrajectoryClassifier().predict_proba(np.zeros((1, len(FEATURES))))
    with pytest.raises(EnvsimError, match="both good and bad"):
        TrajectoryClassifier(features=("turns",)).fit(np.array([[1.0], [2.0]]), np.array([1, 1]))
    with pytest.raises(ValueError, match="unknown: \\['mood'\\]"):
        TrajectoryClassifier(features=("turns", "mood"))
    with pytest.raises(ValueError, match="shape"):
        TrajectoryClassifier(features=("turns",)).fit(np.zeros((2, 2)), np.array([0, 1]))
