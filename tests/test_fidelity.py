"""``envsim fidelity``: distances, the real-vs-simulated AUC, replays, and the command on held-out dialogues."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from envsim.cli import app
from envsim.fidelity import (
    FEATURES,
    Replay,
    cv_auc,
    evaluate,
    fit_logistic,
    js_divergence,
    ks_distance,
    persona_figures,
    replay,
    replay_scenario,
    task_facts,
    turn_features,
    wasserstein,
)
from envsim.scenario import Scenario
from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
from envsim.transcripts.schema import Conversation, ToolEvent, Turn
from envsim.user.affect_scorer import rank_auc
from envsim.user.base import UserSimulator, UserTurn
from tests.conftest import REPO


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The transcript corpus folder; fails (never skips) when it is missing."""
    folder = corpus_dir()
    assert folder is not None and folder.is_dir(), f"transcript corpus not found: set {CORPUS_ENV}"
    return folder


# -- numbers ---------------------------------------------------------------------------------


def test_auc_against_a_hand_computed_case() -> None:
    # positives 0.35, 0.8; negatives 0.1, 0.4: of the 4 pairs, 3 rank the positive higher -> 3/4
    assert rank_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # a tie counts half: positive 0.5 vs negatives 0.5 and 0.2 -> (0.5 + 1) / 2
    assert rank_auc([0.5, 0.5, 0.2], [True, False, False]) == 0.75


def test_cross_validated_auc_separable_and_indistinguishable() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 100)
    groups = [f"d{i // 4}" for i in range(200)]
    separable = (labels + 0.05 * rng.normal(size=200))[:, None]
    assert cv_auc(separable, labels, groups) == 1.0
    noise = rng.normal(size=(200, 5))
    assert 0.35 < cv_auc(noise, labels, groups) < 0.65
    assert cv_auc(-separable, labels, groups) == 1.0  # the classifier learns the sign


def test_logistic_regression_is_symmetric() -> None:
    x = np.array([[-2.0], [-1.0], [1.0], [2.0], [-0.5], [0.5]])
    y = np.array([0, 0, 1, 1, 1, 0])
    beta = fit_logistic(x, y)
    assert beta[0] > 0 and abs(beta[1]) < 1e-6  # slope positive, intercept 0 by symmetry


def test_distances() -> None:
    assert ks_distance([1, 2, 3, 4], [1, 2, 3, 4]) == 0.0
    assert ks_distance([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert wasserstein([1, 2, 3], [2, 3, 4]) == pytest.approx(1.0)
    assert js_divergence({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert js_divergence({"a": 1, "b": 3}, {"a": 2, "b": 6}) == 0.0
    # half-overlapping: p = (1/2, 1/2, 0), q = (0, 1/2, 1/2) -> JS = 1/2 bit
    assert js_divergence({"a": 1, "b": 1}, {"b": 1, "c": 1}) == pytest.approx(0.5)


def test_turn_features_are_stable_across_processes() -> None:
    rows = turn_features(["Hi there?!", "my PIN is 4321"])
    assert rows.shape == (2, len(FEATURES))
    code = "from envsim.fidelity import turn_features; print(turn_features(['Hi there?!', 'my PIN is 4321']).sum())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert float(other.stdout) == pytest.approx(rows.sum())  # hashed unigrams use CRC-32, not hash()


# -- replay (a made-up dialogue) -------------------------------------------------------------


def _made_up() -> Conversation:
    return Conversation(
        corpus="star",
        id="42",
        labels={"user_task": "Your name is Ann Lee. Book a table for 4 people at 7 pm.", "domains": ["restaurant"]},
        turns=[
            Turn(role="user", text="hi, I need a table"),
            Turn(role="agent", text="Sure."),
            Turn(role="agent", text="What time?"),
            Turn(role="user", text="7 pm please"),
            Turn(role="tool", tool=ToolEvent(name="restaurant_book", arguments={}, result={"ok": True})),
            Turn(role="agent", text="Booked. Anything else?"),
            Turn(role="user", text="no thanks"),
            Turn(role="user", text="bye"),
        ],
    )


class Echo(UserSimulator):
    """Says back what it was told, and records the messages it saw."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        self.scenario = scenario
        return scenario.user.opening

    def reply(self, agent_message: str, messages: Any) -> UserTurn:
        self.seen.append([dict(m) for m in messages])
        return UserTurn(f"echo: {agent_message}", done="Anything else" in agent_message)


def test_task_facts_and_replay_scenario() -> None:
    conversation = _made_up()
    facts = {f.key: f for f in task_facts(conversation)}
    assert facts["name"].value == "Ann Lee" and facts["time_1"].value == "7 pm"
    assert "how many" in facts["quantity_1"].asked_by
    scenario = replay_scenario(conversation, "star_calm", list(facts.values()))
    assert scenario.user.opening == "hi, I need a table" and scenario.domain == "restaurant"
    assert scenario.user.persona.ref == "star_calm"


def test_replay_feeds_the_agent_side_and_collects_both_sides() -> None:
    user = Echo()
    conversation = _made_up()
    result = replay(user, conversation, replay_scenario(conversation, "star_calm", []), np.random.default_rng(0))
    assert result.human == ["7 pm please", "no thanks", "bye"]  # every human turn after the opening
    assert result.simulated == ["echo: Sure. What time?", "echo: Booked. Anything else?"]  # merged agent turns
    tool_calls = [m for m in user.seen[-1] if m.get("tool_calls")]
    assert tool_calls and tool_calls[0]["tool_calls"][0]["function"]["name"] == "restaurant_book"
    assert user.seen[-1][-2]["role"] == "tool"


def test_persona_figures_in_range() -> None:
    replays = [
        Replay(str(i), human=["yes please", "my name is Ann, 4 people"], simulated=["ok", "4 people please"])
        for i in range(10)
    ]
    figures = persona_figures("star_calm", replays)
    assert figures.human_turns == figures.simulated_turns == 20
    assert 0 <= figures.auc <= 1 and 0 <= figures.length_ks <= 1 and 0 <= figures.lexical_js <= 1
    assert figures.question_rate_human == figures.question_rate_sim == 0.0


# -- the command -----------------------------------------------------------------------------


def test_fidelity_command_json(corpus: Path, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    args = ["fidelity", "--json", "--dialogues", "6", "--personas", "star_annoyed,star_calm", "--personas", "annoyed",
            "--outcome-episodes", "0"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--plot-dir", str(plots)])  # in process: the index is built once
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.splitlines()[-1])
    assert set(figures) == {"star_annoyed", "star_calm", "annoyed"}
    assert figures["annoyed"]["category"] == "star_annoyed"  # a hand-written persona: its STAR category
    for name, f in figures.items():
        assert f["dialogues"] == 6 and f["human_turns"] > 0 and f["simulated_turns"] > 0
        assert 0 <= f["auc"] <= 1 and 0 <= f["length_ks"] <= 1 and f["length_wasserstein"] >= 0
        assert 0 <= f["lexical_js"] <= 1 and all(0 <= v <= 1 for v in f["affect_ks"].values())
        assert 0 <= f["question_rate_human"] <= 1 and 0 <= f["question_rate_sim"] <= 1
        svg = ElementTree.parse(plots / f"{name}.svg").getroot()
        assert svg.tag.endswith("svg") and f["plot"] == str(plots / f"{name}.svg")


def test_evaluate_is_deterministic(corpus: Path) -> None:
    first = evaluate(personas=["star_riddler"], dialogues=5, corpus=corpus)
    second = evaluate(personas=["star_riddler"], dialogues=5, corpus=corpus)
    assert first.personas == second.personas
    assert first.split.startswith("held out: sha256('star/<dialogue id>') % 5 == 0")


def test_fidelity_without_corpus_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from envsim.cli import main; main()", "fidelity", "--corpus", str(tmp_path / "x")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such folder" in result.stderr


def test_llm_user_path_and_a_constant_user_is_caught(corpus: Path) -> None:
    options = {"completion_options": {"mock_response": "Sure, go ahead please."}, "max_retries": 0}
    report = evaluate("llm", model="openai/gpt-4o-mini", personas=["star_riddler"], dialogues=4, user_options=options)
    figures = report.personas["star_riddler"]
    assert report.model == "openai/gpt-4o-mini" and figures.simulated_turns > 0
    assert figures.auc > 0.9 and figures.words_sim == 4.0  # the same line every turn: easy to tell apart
