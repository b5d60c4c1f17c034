"""The GoEmotions affect scorer: held-out quality, the shipped lexicon, the rank AUC, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envsim.errors import EnvsimError
from envsim.transcripts.corpus import corpus_dir
from envsim.user.affect_scorer import (
    AFFECTS,
    AffectLexicon,
    AffectScorer,
    default_scorer,
    evaluate,
    fit_lexicon,
    load_lexicon,
    rank_auc,
    tokenize,
    write_lexicon,
)
from tests.conftest import REPO

CORPUS = corpus_dir()
GOEMOTIONS = CORPUS / "goemotions" if CORPUS is not None else None
needs_goemotions = pytest.mark.skipif(
    GOEMOTIONS is None or not GOEMOTIONS.is_dir(), reason="GoEmotions is not on this machine (../shared/transcripts)"
)

# Measured on the GoEmotions test split (5,427 comments) with the shipped lexicon: fear 0.934,
# nervousness 0.884 (only 23 positives), anger 0.885, annoyance 0.797, confusion 0.901,
# distress 0.827. The floors sit a little below, so a refit that loses quality fails.
AUC_FLOORS = {"fear": 0.90, "nervousness": 0.80, "anger": 0.85, "annoyance": 0.75, "confusion": 0.85, "distress": 0.80}


@pytest.fixture(scope="module")
def refit() -> AffectLexicon:
    """The lexicon fitted afresh from the corpus (about two seconds)."""
    assert GOEMOTIONS is not None
    return fit_lexicon(GOEMOTIONS)


@needs_goemotions
def test_heldout_auc_of_the_shipped_scorer_meets_the_floors() -> None:
    assert GOEMOTIONS is not None
    auc = evaluate(default_scorer(), GOEMOTIONS, "test")
    assert set(auc) == set(AFFECTS)
    for affect, floor in AUC_FLOORS.items():
        assert auc[affect] >= floor, (affect, auc[affect])
    assert min(auc["anger"], auc["annoyance"], auc["fear"]) >= 0.7
    assert auc == pytest.approx(default_scorer().lexicon.heldout_auc, abs=1e-3)  # the file records what it scores


@needs_goemotions
def test_shipped_lexicon_is_what_a_refit_produces(refit: AffectLexicon) -> None:
    shipped = load_lexicon()
    assert shipped.tokens.keys() == refit.tokens.keys()
    got = np.array(list(shipped.tokens.values()))
    want = np.array(list(refit.tokens.values()))
    assert np.abs(got - want).max() <= 1e-3
    for affect in AFFECTS:
        assert shipped.calibration[affect] == pytest.approx(refit.calibration[affect], abs=1e-4)
        assert shipped.heldout_auc[affect] == pytest.approx(refit.heldout_auc[affect], abs=1e-3)
    assert shipped.provenance == refit.provenance
    assert shipped.provenance.documents == {"train": 43410, "dev": 5426, "test": 5427}


@needs_goemotions
def test_written_lexicon_loads_back_equal(refit: AffectLexicon, tmp_path: Path) -> None:
    path = write_lexicon(refit, tmp_path / "lexicon.json")
    assert load_lexicon(path) == refit
    assert path.stat().st_size < 300_000  # statistics only: a few thousand tokens with six weights each


def test_shipped_lexicon_holds_statistics_not_text() -> None:
    lexicon = load_lexicon()
    assert all(len(weights) == len(AFFECTS) for weights in lexicon.tokens.values())
    assert all(" " not in token for token in lexicon.tokens)  # single tokens, no phrases or sentences
    assert lexicon.min_doc_freq >= 10  # every token occurs in at least ten comments


def _pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The definition: P(positive scores above negative), ties counting half."""
    positives, negatives = scores[labels], scores[~labels]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(positives, negatives))
    return wins / (len(positives) * len(negatives))


@pytest.mark.parametrize("seed", range(5))
def test_rank_auc_equals_pairwise_counting_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=60).astype(float)  # many ties
    labels = rng.random(60) < 0.3
    assert rank_auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels))


def test_rank_auc_extremes_and_errors() -> None:
    assert rank_auc([0.1, 0.2, 0.9, 0.8], [False, False, True, True]) == 1.0
    assert rank_auc([0.9, 0.8, 0.1, 0.2], [False, False, True, True]) == 0.0
    assert rank_auc([0.5, 0.5, 0.5], [True, False, False]) == 0.5
    with pytest.raises(ValueError, match="positive and one negative"):
        rank_auc([0.1, 0.2], [True, True])


def test_scores_are_intensities_and_rank_sensibly() -> None:
    scorer = default_scorer()
    texts = [
        "",
        "Thanks, that works for me.",
        "I'm terrified, there are explosions everywhere and I'm so scared!",
        "This is ridiculous. I'm furious, stop wasting my time!",
        "I'm confused, what do you mean? I don't understand.",
    ]
    frame = scorer.score_many(texts)
    assert list(frame.columns) == list(AFFECTS)
    assert ((frame >= 0) & (frame <= 1)).all().all()
    empty, calm, scared, angry, confused = (frame.iloc[i] for i in range(5))
    assert scared["fear"] > 5 * calm["fear"]
    assert angry["anger"] > 5 * calm["anger"] and angry["annoyance"] > calm["annoyance"]
    assert confused["confusion"] > 5 * calm["confusion"]
    for row in (scared, angry, confused):
        assert row["distress"] > 3 * calm["distress"]
    # With no tokens the raw score is 0, so the intensity is the squash's base rate.
    slope_intercept = scorer.lexicon.calibration
    for affect in AFFECTS:
        assert empty[affect] == pytest.approx(1 / (1 + np.exp(-slope_intercept[affect][1])))
    assert scorer.score(texts[3]) == pytest.approx(frame.iloc[3].to_dict())


def test_scoring_ignores_repeats_and_unknown_words() -> None:
    scorer = default_scorer()
    once = scorer.score("I am so angry")
    assert scorer.score("angry, I am so so angry") == pytest.approx(once)  # distinct tokens only
    assert scorer.score("I am so ANGRY") != once  # shouting (3+ capitals) adds a token of its own
    assert tokenize("Qwzxv ANGRY!") == ["!", "<caps>", "angry", "qwzxv"]


def test_a_tiny_lexicon_scores_by_its_weights() -> None:
    lexicon = load_lexicon().model_copy(
        update={"tokens": {"bad": [1.0] * len(AFFECTS)}, "calibration": {a: (1.0, 0.0) for a in AFFECTS}}
    )
    scorer = AffectScorer(lexicon)
    raw = scorer.raw_many(["bad", "bad day", "good day", ""])
    assert raw[:, 0] == pytest.approx([1.0, 1 / np.sqrt(2), 0.0, 0.0])
    assert scorer.score("bad")["fear"] == pytest.approx(1 / (1 + np.exp(-1.0)))


def test_fit_without_goemotions_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EnvsimError, match=r"no GoEmotions train\.tsv"):
        fit_lexicon(tmp_path)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from envsim.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)


@needs_goemotions
def test_cli_calibrate_affect_json(tmp_path: Path) -> None:
    assert CORPUS is not None
    target = tmp_path / "lexicon.json"
    result = _cli("calibrate", "affect", "--corpus", str(CORPUS), "--out", str(target), "--json")
    assert result.returncode == 0, result.stderr
    payload: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert payload["out"] == str(target) and payload["tokens"] == len(load_lexicon(target).tokens)
    assert payload["heldout_auc"] == load_lexicon(target).heldout_auc
    assert all(payload["heldout_auc"][a] >= floor for a, floor in AUC_FLOORS.items())
    assert "anger" in result.stdout  # the human-readable table comes first


def test_cli_calibrate_affect_without_corpus_exits_2(tmp_path: Path) -> None:
    result = _cli("calibrate", "affect", "--corpus", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no such folder" in result.stderr
