"""Affect scoring: how afraid, nervous, angry, annoyed or confused a user turn sounds.

The scorer is a smoothed per-token log-odds lexicon fitted on the GoEmotions train split
(Reddit comments labelled by raters; see ``../shared/transcripts/README.md``). For each affect,
a token's weight is the log-odds of the token appearing in a comment with that label versus in
any other comment, shrunk towards zero by a Dirichlet prior on the token's overall rate. A
text's raw score is the sum of its distinct tokens' weights divided by the square root of the
number of distinct tokens; a one-dimensional logistic squash fitted on the dev split turns it
into an intensity in [0, 1], the estimated probability that a rater would give the label.
``distress`` is fitted the same way on the union of the five labels.

The fitted statistics ship in ``envsim/data/affect_lexicon.json`` (token → weights, no corpus
text) and ``envsim calibrate affect`` regenerates them. Held-out quality (rank AUC on the test
split) is recorded in the file.

Example:
    >>> scorer = default_scorer()
    >>> calm = scorer.score("Thanks, that works for me.")
    >>> angry = scorer.score("This is ridiculous, I am so angry. Stop wasting my time!")
    >>> angry["anger"] > calm["anger"] and angry["distress"] > calm["distress"]
    True
    >>> rank_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import EnvsimError

AFFECTS: tuple[str, ...] = ("fear", "nervousness", "anger", "annoyance", "confusion", "distress")
"""The affects the scorer reports, in the order of the lexicon's weight vectors."""

GOEMOTIONS_LABELS: dict[str, tuple[str, ...]] = {
    "fear": ("fear",),
    "nervousness": ("nervousness",),
    "anger": ("anger",),
    "annoyance": ("annoyance",),
    "confusion": ("confusion",),
    "distress": ("fear", "nervousness", "anger", "annoyance", "confusion"),
}
"""The GoEmotions labels each affect is fitted on: a comment is positive if it has any of them."""

LEXICON_FORMAT: Literal["envsim.affect_lexicon/1"] = "envsim.affect_lexicon/1"
"""The format tag written into the lexicon file."""

LEXICON_RESOURCE = "affect_lexicon.json"
"""The shipped lexicon's file name inside the ``envsim.data`` package."""

DEFAULT_MIN_DOC_FREQ = 10
"""A token enters the lexicon when it occurs in at least this many train comments."""

DEFAULT_PRIOR_STRENGTH = 3000.0
"""Pseudo-comments of the Dirichlet prior that shrinks rare tokens' log-odds towards zero."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")
_SHOUT = re.compile(r"\b[A-Z]{3,}\b")
SHOUT_TOKEN = "<caps>"
"""Pseudo-token added when a text contains a word of three or more capital letters."""

Split = Literal["train", "dev", "test"]


def tokenize(text: str) -> list[str]:
    """The distinct tokens of ``text`` the lexicon scores: lower-case words, ``!``, ``?``, shouting.

    Example:
        >>> tokenize("Why is this NOT working?? Why!")
        ['!', '<caps>', '?', 'is', 'not', 'this', 'why', 'working']
    """
    tokens = set(_WORD.findall(text.lower()))
    if _SHOUT.search(text):
        tokens.add(SHOUT_TOKEN)
    return sorted(tokens)


def _explode(texts: Sequence[str]) -> pd.DataFrame:
    """One row per (document index, distinct token)."""
    series = pd.Series(list(texts), dtype=object)
    tokens = series.map(tokenize)
    lengths = tokens.map(len).to_numpy()
    flat = [tok for toks in tokens for tok in toks]
    return pd.DataFrame({"doc": np.repeat(np.arange(len(series)), lengths), "tok": pd.Series(flat, dtype=object)})


class LexiconProvenance(BaseModel):
    """Where a lexicon's numbers come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: str = Field(description="The corpus the lexicon is fitted on.")
    weights_split: str = Field(description="Split the token weights are fitted on.")
    calibration_split: str = Field(description="Split the logistic squash is fitted on.")
    evaluation_split: str = Field(description="Split the held-out AUC is measured on.")
    documents: dict[str, int] = Field(description="Comments per split.")
    positives: dict[str, int] = Field(description="Train comments with each affect's labels.")
    command: str = Field(description="The command that regenerates the file.")


class AffectLexicon(BaseModel):
    """The fitted affect lexicon: per-token weights, the squash, and held-out quality."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["envsim.affect_lexicon/1"] = LEXICON_FORMAT
    affects: list[str] = Field(description="Affect names, in the order of each token's weights.")
    labels: dict[str, list[str]] = Field(description="The GoEmotions labels each affect is fitted on.")
    min_doc_freq: int = Field(ge=1, description="Minimum train comments a token occurs in.")
    prior_strength: float = Field(gt=0, description="Pseudo-comments of the shrinkage prior.")
    calibration: dict[str, tuple[float, float]] = Field(
        description="Per affect, (slope, intercept) of the logistic squash on the raw score."
    )
    heldout_auc: dict[str, float] = Field(description="Rank AUC per affect on the evaluation split.")
    provenance: LexiconProvenance
    tokens: dict[str, list[float]] = Field(description="Token → log-odds weight per affect.")


ArrayLike = Sequence[float] | Sequence[bool] | np.ndarray | pd.Series
"""Anything :func:`numpy.asarray` turns into a one-dimensional array."""


def rank_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve from average ranks (the Mann-Whitney U statistic, ties count half).

    Raises :class:`ValueError` unless both classes are present.
    """
    ranks = pd.Series(np.asarray(scores, dtype=float)).rank(method="average").to_numpy()
    positive = np.asarray(labels, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("rank_auc needs at least one positive and one negative example")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def read_goemotions(folder: str | Path, split: Split) -> pd.DataFrame:
    """One GoEmotions split as a frame: ``text`` and ``labels`` (a set of label names per comment)."""
    folder = Path(folder)
    path = folder / f"{split}.tsv"
    names_path = folder / "labels.txt"
    if not path.is_file() or not names_path.is_file():
        raise EnvsimError(f"{folder}: no GoEmotions {split}.tsv and labels.txt here")
    names = names_path.read_text(encoding="utf-8").split()
    frame = pd.read_csv(
        path, sep="\t", header=None, names=["text", "ids", "id"], quoting=3, dtype=str, keep_default_na=False
    )
    frame["labels"] = frame["ids"].map(lambda ids: frozenset(names[int(i)] for i in ids.split(",")))
    return frame[["text", "labels"]]


def _targets(frame: pd.DataFrame) -> pd.DataFrame:
    """Boolean target per affect for each comment."""
    columns: dict[str, pd.Series] = {}
    for affect in AFFECTS:
        wanted = frozenset(GOEMOTIONS_LABELS[affect])
        columns[affect] = frame["labels"].map(wanted.isdisjoint).map(lambda disjoint: not disjoint).astype(bool)
    return pd.DataFrame(columns)


def _fit_squash(raw: np.ndarray, target: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Slope and intercept of a one-feature logistic regression, by Newton's method (tiny ridge)."""
    x = np.column_stack([raw, np.ones_like(raw)])
    y = target.astype(float)
    beta = np.zeros(2)
    ridge = 1e-6 * np.eye(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (y - p)
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if float(np.abs(step).max()) < 1e-10:
            break
    return float(beta[0]), float(beta[1])


class AffectScorer:
    """Scores texts with an :class:`AffectLexicon`: an intensity in [0, 1] per affect."""

    def __init__(self, lexicon: AffectLexicon) -> None:
        """Index the lexicon's weights for scoring."""
        self.lexicon = lexicon
        self.affects: tuple[str, ...] = tuple(lexicon.affects)
        self._vocab = pd.Index(list(lexicon.tokens))
        self._weights = np.asarray(list(lexicon.tokens.values()), dtype=float).reshape(len(self._vocab), -1)
        self._slope = np.asarray([lexicon.calibration[a][0] for a in self.affects])
        self._intercept = np.asarray([lexicon.calibration[a][1] for a in self.affects])

    def raw_many(self, texts: Sequence[str]) -> np.ndarray:
        """Raw scores, shape (len(texts), affects): summed token weights over sqrt(distinct tokens)."""
        pairs = _explode(texts)
        raw = np.zeros((len(texts), len(self.affects)))
        if pairs.empty:
            return raw
        rows = self._vocab.get_indexer(pd.Index(pairs["tok"]))
        known = rows >= 0
        np.add.at(raw, pairs["doc"].to_numpy()[known], self._weights[rows[known]])
        counts = np.bincount(pairs["doc"].to_numpy(), minlength=len(texts)).astype(float)
        scaled: np.ndarray = raw / np.sqrt(np.maximum(counts, 1.0))[:, None]
        return scaled

    def score_many(self, texts: Iterable[str]) -> pd.DataFrame:
        """Intensities, one row per text and one column per affect."""
        listed = list(texts)
        raw = self.raw_many(listed)
        intensity = 1.0 / (1.0 + np.exp(-(raw * self._slope + self._intercept)))
        return pd.DataFrame(intensity, columns=list(self.affects))

    def score(self, text: str) -> dict[str, float]:
        """Intensity per affect for one text."""
        row = self.score_many([text]).iloc[0]
        return {a: float(row[a]) for a in self.affects}


def fit_lexicon(
    goemotions_dir: str | Path,
    *,
    min_doc_freq: int = DEFAULT_MIN_DOC_FREQ,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    command: str = "envsim calibrate affect",
) -> AffectLexicon:
    """Fit the lexicon: weights on train, the squash on dev, AUC on test."""
    train = read_goemotions(goemotions_dir, "train")
    dev = read_goemotions(goemotions_dir, "dev")
    test = read_goemotions(goemotions_dir, "test")
    targets = _targets(train)
    pairs = _explode(train["text"].tolist())
    doc_freq = pairs["tok"].value_counts()
    vocab = doc_freq[doc_freq >= min_doc_freq].index.sort_values()
    pairs = pairs[pairs["tok"].isin(vocab)]
    total = doc_freq.reindex(vocab).to_numpy(dtype=float)
    background = total / len(train)
    columns = []
    for affect in AFFECTS:
        positive = targets[affect].to_numpy()
        in_positive = pairs["tok"][positive[pairs["doc"].to_numpy()]].value_counts().reindex(vocab, fill_value=0)
        pos = in_positive.to_numpy(dtype=float)
        neg = total - pos
        n_pos, n_neg = float(positive.sum()), float((~positive).sum())
        prior = prior_strength * background
        columns.append(
            np.log((pos + prior) / (n_pos + prior_strength)) - np.log((neg + prior) / (n_neg + prior_strength))
        )
    weights = np.round(np.column_stack(columns), 3)
    tokens = {str(tok): [float(w) for w in row] for tok, row in zip(vocab, weights, strict=True)}
    draft = AffectLexicon(
        affects=list(AFFECTS),
        labels={a: list(GOEMOTIONS_LABELS[a]) for a in AFFECTS},
        min_doc_freq=min_doc_freq,
        prior_strength=prior_strength,
        calibration={a: (1.0, 0.0) for a in AFFECTS},
        heldout_auc={},
        provenance=LexiconProvenance(
            corpus="goemotions",
            weights_split="train",
            calibration_split="dev",
            evaluation_split="test",
            documents={"train": len(train), "dev": len(dev), "test": len(test)},
            positives={a: int(targets[a].sum()) for a in AFFECTS},
            command=command,
        ),
        tokens=tokens,
    )
    dev_raw = AffectScorer(draft).raw_many(dev["text"].tolist())
    dev_targets = _targets(dev)
    calibration = {}
    for i, affect in enumerate(AFFECTS):
        slope, intercept = _fit_squash(dev_raw[:, i], dev_targets[affect].to_numpy())
        calibration[affect] = (round(slope, 6), round(intercept, 6))
    fitted = draft.model_copy(update={"calibration": calibration})
    auc = evaluate(AffectScorer(fitted), goemotions_dir, "test")
    return fitted.model_copy(update={"heldout_auc": {a: round(v, 4) for a, v in auc.items()}})


def evaluate(scorer: AffectScorer, goemotions_dir: str | Path, split: Split = "test") -> dict[str, float]:
    """Rank AUC of each affect's intensity against the GoEmotions labels of ``split``."""
    frame = read_goemotions(goemotions_dir, split)
    scores = scorer.score_many(frame["text"].tolist())
    targets = _targets(frame)
    return {a: rank_auc(scores[a], targets[a]) for a in scorer.affects}


def write_lexicon(lexicon: AffectLexicon, path: str | Path) -> Path:
    """Write the lexicon as compact JSON (one token per line, so diffs stay readable)."""
    path = Path(path)
    head = lexicon.model_dump(mode="json", exclude={"tokens"})
    lines = ["{"]
    for key, value in head.items():
        lines.append(f"{json.dumps(key)}: {json.dumps(value, sort_keys=True)},")
    lines.append('"tokens": {')
    entries = [f"{json.dumps(tok)}: {json.dumps(w)}" for tok, w in lexicon.tokens.items()]
    lines.append(",\n".join(entries))
    lines.append("}}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def shipped_lexicon_path() -> Path:
    """Where the shipped lexicon lives in the source tree (what ``envsim calibrate affect`` overwrites)."""
    return Path(__file__).resolve().parents[1] / "data" / LEXICON_RESOURCE


def load_lexicon(path: str | Path | None = None) -> AffectLexicon:
    """A lexicon file, or the shipped one when ``path`` is ``None``."""
    if path is None:
        text = resources.files("envsim.data").joinpath(LEXICON_RESOURCE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return AffectLexicon.model_validate_json(text)


@lru_cache(maxsize=1)
def default_scorer() -> AffectScorer:
    """The scorer with the shipped lexicon (loaded once)."""
    return AffectScorer(load_lexicon())
