"""Persona calibration from STAR: the command, the fitted differences, the shipped library."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from envsim.calibrate import (
    CALM,
    GROUPS,
    HELDOUT_BUCKETS,
    Spread,
    classify,
    is_heldout,
    shipped_library_path,
    turns_to_first,
)
from envsim.transcripts.corpus import corpus_dir
from envsim.transcripts.schema import Conversation, Turn
from envsim.user.persona import Persona, persona_library
from tests.conftest import REPO

CORPUS = corpus_dir()
needs_star = pytest.mark.skipif(
    CORPUS is None or not (CORPUS / "star").is_dir(), reason="STAR is not on this machine (../shared/transcripts)"
)
REQUIRED = {"star_annoyed", "star_confused", "star_panicked", "star_calm"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from envsim.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


def _load(path: Path) -> dict[str, Persona]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {p.name: p for p in (Persona.model_validate(entry) for entry in raw)}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Persona], str]:
    """``envsim calibrate --json`` on the shared corpus, once: its JSON, the personas it wrote, its stdout."""
    assert CORPUS is not None
    target = tmp_path_factory.mktemp("calibrate") / "calibrated.yaml"
    result = _cli("calibrate", "--corpus", str(CORPUS), "--out", str(target), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), _load(target), result.stdout


@needs_star
def test_cli_json_reports_the_fit(run: tuple[dict[str, Any], dict[str, Persona], str]) -> None:
    payload, personas, stdout = run
    assert payload["corpus"] == "star" and payload["dialogues"] == 6652
    assert payload["fitting_dialogues"] + payload["heldout_dialogues"] == payload["dialogues"]
    assert 0.15 < payload["heldout_dialogues"] / payload["dialogues"] < 0.25
    assert set(payload["groups"]) == set(personas)
    assert all(name in stdout for name in personas)  # the table comes before the JSON line
    for fit in payload["groups"].values():
        assert fit["dialogues"] >= 40 and fit["heldout"]["dialogues"] >= 10
        assert 0 < fit["latency_seconds"]["median"] < 120


@needs_star
def test_at_least_six_personas_including_annoyed_confused_panicked_calm(
    run: tuple[dict[str, Any], dict[str, Persona], str],
) -> None:
    _, personas, _ = run
    assert len(personas) >= 6 and set(personas) >= REQUIRED
    for persona in personas.values():
        assert persona.provenance is not None and persona.provenance.corpus == "star"
        assert persona.provenance.n_dialogues >= len(persona.provenance.dialogue_ids) > 0
        assert persona.provenance.command == "envsim calibrate"
        assert len(persona.exemplars) == 3


@needs_star
def test_annoyed_users_score_higher_than_calm_users_on_heldout_dialogues(
    run: tuple[dict[str, Any], dict[str, Persona], str],
) -> None:
    groups = run[0]["groups"]
    annoyed, calm = groups["star_annoyed"]["heldout"], groups[CALM]["heldout"]
    for affect in ("distress", "annoyance", "anger", "hostility"):
        assert annoyed["mean"][affect] > 1.3 * calm["mean"][affect], affect
    # Per dialogue, not only on average: an annoyed held-out dialogue out-scores a calm one 3 times in 4.
    assert annoyed["distress_auc_vs_calm"] >= 0.7
    # The panicked and confused groups differ from calm on held-out dialogues too.
    assert groups["star_panicked"]["heldout"]["mean"]["panic"] > 1.5 * calm["mean"]["panic"]
    assert groups["star_panicked"]["heldout"]["distress_auc_vs_calm"] >= 0.7
    assert groups["star_confused"]["heldout"]["mean"]["confusion"] > 1.5 * calm["mean"]["confusion"]


@needs_star
def test_fitted_traits_differ_where_the_data_differs(run: tuple[dict[str, Any], dict[str, Persona], str]) -> None:
    payload, personas, _ = run
    annoyed, calm = personas["star_annoyed"], personas[CALM]
    panicked, confused = personas["star_panicked"], personas["star_confused"]
    assert (annoyed.initial_affect, confused.initial_affect, panicked.initial_affect, calm.initial_affect) == (
        "frustrated",
        "confused",
        "panicked",
        "calm",
    )
    assert annoyed.escalation_propensity > 2 * calm.escalation_propensity
    assert annoyed.patience < calm.patience and panicked.patience < calm.patience
    assert panicked.panic_intensity > 0.3 and calm.panic_intensity == annoyed.panic_intensity == 0
    assert confused.question_rate > annoyed.question_rate
    assert personas["star_typo_prone"].typo_rate > 5 * calm.typo_rate  # "Make lots of typos" shows
    # The numbers behind the traits: annoyed users' turns are angrier than calm users' in the fit too.
    groups = payload["groups"]
    assert groups["star_annoyed"]["affect"]["lift"]["anger"] > 2
    assert groups[CALM]["affect"]["lift"]["anger"] == 1


@needs_star
def test_shipped_library_is_what_the_command_regenerates(
    run: tuple[dict[str, Any], dict[str, Persona], str],
) -> None:
    shipped = _load(shipped_library_path())
    regenerated = run[1]
    assert list(shipped) == list(regenerated)
    for name, persona in shipped.items():
        _assert_close(persona.model_dump(mode="json"), regenerated[name].model_dump(mode="json"), name)


def _assert_close(got: Any, want: Any, where: str) -> None:
    """Equal, except that floats may differ by 1e-3 (numeric libraries may round differently)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-3), where
    else:
        assert got == want, where


@pytest.fixture(scope="module")
def star() -> dict[str, Conversation]:
    """The STAR dialogues by id."""
    from envsim.transcripts.importers import read

    assert CORPUS is not None
    return {c.id: c for c in read("star", CORPUS / "star")}


@needs_star
def test_exemplars_reference_fitting_user_turns_of_their_group_and_no_text_is_shipped(
    star: dict[str, Conversation],
) -> None:
    shipped_text = shipped_library_path().read_text(encoding="utf-8")
    for persona in _load(shipped_library_path()).values():
        for exemplar in persona.exemplars:
            conversation = star[exemplar.dialogue_id]
            turn = conversation.turns[exemplar.turn_index]
            assert turn.role == "user"
            assert classify(conversation) == persona.name
            assert not is_heldout("star", exemplar.dialogue_id)
            assert turn.text.strip() not in shipped_text
        assert persona.provenance is not None
        for dialogue_id in persona.provenance.dialogue_ids:
            assert classify(star[dialogue_id]) == persona.name and not is_heldout("star", dialogue_id)


def test_calibrated_personas_load_beside_the_core_library_without_clashes() -> None:
    library = persona_library()
    names = {}
    for entry in resources.files("envsim.personas").iterdir():
        if entry.name.endswith(".yaml"):
            names[entry.name] = {raw["name"] for raw in yaml.safe_load(entry.read_text(encoding="utf-8"))}
    calibrated = names.pop("calibrated.yaml")
    assert len(calibrated) >= 6 and calibrated >= REQUIRED and calibrated <= set(library)
    assert all(name.startswith("star_") for name in calibrated)
    for other in names.values():
        assert not calibrated & other
    assert all(library[name].provenance is not None for name in calibrated)


def test_heldout_split_is_stable_and_one_in_five() -> None:
    ids = [str(i) for i in range(1, 5001)]
    held = [i for i in ids if is_heldout("star", i)]
    assert held == [i for i in ids if is_heldout("star", i)]
    assert abs(len(held) / len(ids) - 1 / HELDOUT_BUCKETS) < 0.02
    assert is_heldout("star", "4") and not is_heldout("star", "1")


def _star(instructions: list[str], annoyed: bool | None = None, task: str = "") -> Conversation:
    labels: dict[str, Any] = {"persona_instructions": instructions, "user_task": task}
    if annoyed is not None:
        labels["annoyed"] = annoyed
    return Conversation(corpus="star", id="1", turns=[Turn(role="user", text="hi")], labels=labels)


GRUMPY = "In this dialogue, either act like a very annoying/grumpy person, or like a wise/serene person ..."


@pytest.mark.parametrize(
    ("conversation", "group"),
    [
        (_star([GRUMPY], annoyed=True), "star_annoyed"),
        (_star([GRUMPY], annoyed=False), "star_riddler"),
        (_star([GRUMPY]), None),  # not known which of the two the user played
        (_star(["Say hello."], task="Your spaceship is under attack! You must ..."), "star_panicked"),
        (_star(["Boom! You hear explosions all around you. [instruction 2 of 4]"]), "star_panicked"),
        (_star(["Make lots of typos"], task="The life support on your spaceship is failing!"), "star_typo_prone"),
        (_star(["You forget what you are doing (imagine you're 93 years old and ...)"]), "star_confused"),
        (_star(["Somebody has transferred $500. Quickly you contact the bank-system's AI assistant."]), "star_worried"),
        (_star(["Say hello.", "Keep going."], annoyed=False), CALM),
        (_star(["Say hello."]), CALM),
        (_star(["Say hello."], annoyed=True), None),  # annoyed without being asked to be: no group
        (_star(["either act confused, like a person with memory problems, or act concerned"]), None),
    ],
)
def test_classify_by_instruction_and_questionnaire(conversation: Conversation, group: str | None) -> None:
    assert classify(conversation) == group


def test_every_group_is_named_for_the_library() -> None:
    names = [g.name for g in GROUPS]
    assert len(names) == len(set(names)) and all(n.startswith("star_") for n in names) and CALM in names
    assert Counter(g.emergency for g in GROUPS)[True] >= 1


def test_turns_to_first_event_with_censoring_and_extrapolation() -> None:
    lengths = pd.Series([3, 3, 3, 3, 5, 5])
    # Turn 1: 1 of 6 at risk; turn 2: 2 of 5 -> survival 5/6 * 3/5 = 0.5.
    first = pd.Series([1.0, 2.0, 2.0, None, None, None])
    assert turns_to_first(first, lengths, min_at_risk=1) == 2.0
    # Never half: constant hazard over the observed turns, extrapolated. S(5) = 5/6 -> 5 * ln .5 / ln(5/6).
    rare = pd.Series([1.0, None, None, None, None, None])
    assert turns_to_first(rare, lengths, min_at_risk=1) == pytest.approx(19.01, abs=0.01)
    assert turns_to_first(pd.Series([None] * 6, dtype=float), lengths, min_at_risk=1) is None


def test_spread_fits_lognormal_parameters() -> None:
    spread = Spread.of(pd.Series([2.0, 8.0, 0.0, float("nan")]))
    assert spread.count == 2 and spread.median == 5.0 and spread.log_mean == pytest.approx(1.3863, abs=1e-4)
    assert Spread.of(pd.Series([], dtype=float)).count == 0


def test_cli_without_corpus_exits_2(tmp_path: Path) -> None:
    result = _cli("calibrate", "--corpus", str(tmp_path), "--out", str(tmp_path / "x.yaml"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no star/ folder" in result.stderr
    assert not (tmp_path / "x.yaml").exists()
