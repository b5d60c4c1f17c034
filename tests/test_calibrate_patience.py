"""Patience calibrated on STAR: the unhelpful runs STAR's humans sat through (envsim.calibrate_patience)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from envsim.calibrate import CALM, Calibration, persona_entries
from envsim.calibrate_patience import PATIENCE_QUANTILE, fit_patience, tolerated_streak
from envsim.errors import EnvsimError
from envsim.transcripts.corpus import corpus_dir
from envsim.transcripts.schema import Conversation, Turn
from envsim.user.persona import load_persona
from tests.conftest import REPO

CORPUS = corpus_dir()
needs_star = pytest.mark.skipif(
    CORPUS is None or not (CORPUS / "star").is_dir(), reason="STAR is not on this machine (../shared/transcripts)"
)
TASK = {"user_task": "Your name is Ann Lee. Book a table for 4 people at 7 pm.", "persona_instructions": []}


def _dialogue(opening: str) -> Conversation:
    """A booking dialogue: a greeting (no help), the name asked for, a wait, and a wait nobody answered."""
    turns = [
        ("user", opening),
        ("agent", "Hello."),
        ("user", "hi"),
        ("agent", "What is your full name?"),
        ("user", "Ann Lee"),
        ("agent", "One moment."),
        ("user", "ok"),
        ("agent", "Still checking."),  # after the human's last reply: sat through by nobody
    ]
    return Conversation(corpus="star", id="1", turns=[Turn(role=r, text=t) for r, t in turns], labels=TASK)


def test_the_run_counts_unhelpful_turns_the_human_answered_and_asking_for_the_missing_name_helps() -> None:
    calm = load_persona("star_calm")
    # Hello (1), the name not given yet is progress (0), One moment (1); the closing wait is not answered.
    assert tolerated_streak(_dialogue("Hi, I need a table."), calm) == 1


def test_a_detail_the_human_already_wrote_asked_again_is_no_help() -> None:
    calm = load_persona("star_calm")
    # The opening states the name: asking for it is asks_known_info, so Hello, the name, One moment run to 3.
    assert tolerated_streak(_dialogue("Hi, this is Ann Lee, I need a table."), calm) == 3


def test_patience_is_an_observed_run_at_the_quantile() -> None:
    runs = [1] * 99 + [8]
    assert fit_patience(runs).patience == 8  # the 0.99 quantile, taken as an observed run, not interpolated
    assert fit_patience(runs, quantile=0.5).patience == 1
    assert fit_patience([60]).patience == 50  # the most a persona may have
    with pytest.raises(EnvsimError, match="no dialogues"):
        fit_patience([])


@pytest.fixture(scope="module")
def payload() -> dict[str, Any]:
    """``envsim calibrate --json`` on the shared corpus (written to a scratch file)."""
    assert CORPUS is not None
    command = [sys.executable, "-c", "from envsim.cli import main; main()", "calibrate", "--corpus", str(CORPUS)]
    out = REPO / ".pytest-calibrate-patience.yaml"
    try:
        result = subprocess.run(
            [*command, "--out", str(out), "--json"], capture_output=True, text=True, cwd=REPO, timeout=300
        )
    finally:
        out.unlink(missing_ok=True)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return data


@needs_star
def test_every_group_is_fitted_on_its_fitting_dialogues_and_its_patience_is_what_they_sat_through(
    payload: dict[str, Any],
) -> None:
    for name, fit in payload["groups"].items():
        patience = fit["patience"]
        assert patience["dialogues"] == fit["dialogues"], name  # the fitting dialogues, never the held-out fifth
        assert patience["quantile"] == PATIENCE_QUANTILE
        assert patience["median"] <= patience["patience"] <= patience["longest"], name
    # The shipped library carries the fitted numbers.
    shipped = {p.name: p.patience for p in persona_entries(_calibration(payload))}
    for name, fit in payload["groups"].items():
        assert load_persona(name).patience == shipped[name] == fit["patience"]["patience"], name


@needs_star
def test_a_calibration_without_fitted_patience_is_an_error_naming_the_group(payload: dict[str, Any]) -> None:
    calibration = _calibration(payload)
    groups = {name: fit.model_copy(update={"patience": None}) for name, fit in calibration.groups.items()}
    with pytest.raises(EnvsimError, match="patience not fitted"):
        persona_entries(calibration.model_copy(update={"groups": groups}))
    assert {p.patience for p in persona_entries(calibration, patience=50)} == {50}
    assert calibration.groups[CALM].patience is not None


def _calibration(payload: dict[str, Any]) -> Calibration:
    return Calibration.model_validate({k: v for k, v in payload.items() if k not in ("out", "wall_seconds")})
