"""The real-vs-simulated classifier of ``envsim fidelity``: per-turn features, logistic regression, grouped CV.

The classifier is an L2 logistic regression (Newton's method, numpy) over per-turn features
(:func:`turn_features`: length, punctuation, question and exclamation marks, capitals, digits,
type-token ratio, affect scores and :data:`HASH_BUCKETS` hashed unigrams), standardised on the
training folds; :func:`cv_auc` is its rank AUC on :data:`FOLDS`-fold cross-validation with folds
by group (a dialogue's turns are never split between training and test), averaged over
:data:`CV_REPEATS` splits.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

import numpy as np

from envsim.user.affect_scorer import AFFECTS, AffectScorer, default_scorer, rank_auc

FOLDS = 5
"""Cross-validation folds of the real-vs-simulated classifier."""

HASH_BUCKETS = 64
"""Hashed unigram features of the classifier."""

L2 = 1.0
"""Ridge penalty of the classifier (on standardised features)."""

CV_REPEATS = 5
"""Cross-validation splits the classifier AUC is averaged over."""


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# -- the classifier --------------------------------------------------------------------------

FEATURES: tuple[str, ...] = (
    "log_words", "log_chars", "word_length", "type_token", "questions", "exclamations", "commas", "periods",
    "capitals", "lower_start", "digits", "ellipsis", *AFFECTS,
    *(f"hash_{i}" for i in range(HASH_BUCKETS)),
)  # fmt: skip
"""The classifier's per-turn features, in column order."""


def turn_features(texts: Sequence[str], scorer: AffectScorer | None = None) -> np.ndarray:
    """One row of :data:`FEATURES` per text (hashed unigrams use CRC-32, so they are the same in every process).

    Example:
        >>> turn_features(["Hi there?", "no"]).shape == (2, len(FEATURES))
        True
    """
    scorer = scorer or default_scorer()
    rows = np.zeros((len(texts), len(FEATURES)))
    affects = scorer.score_many(list(texts)).to_numpy() if texts else np.zeros((0, len(AFFECTS)))
    first_hash = FEATURES.index("hash_0")
    for i, text in enumerate(texts):
        words = text.split()
        tokens = _WORD.findall(text.lower())
        letters = [c for c in text if c.isalpha()]
        rows[i, :12] = (
            math.log1p(len(words)),
            math.log1p(len(text)),
            float(np.mean([len(w) for w in words])) if words else 0.0,
            len(set(tokens)) / len(tokens) if tokens else 0.0,
            min(text.count("?"), 3),
            min(text.count("!"), 3),
            min(text.count(","), 5),
            min(text.count("."), 5),
            sum(c.isupper() for c in letters) / len(letters) if letters else 0.0,
            float(bool(re.match(r"\s*[a-z]", text))),
            float(any(c.isdigit() for c in text)),
            float("..." in text),
        )
        for token in set(tokens):
            rows[i, first_hash + zlib.crc32(token.encode()) % HASH_BUCKETS] = 1.0
    rows[:, 12 : 12 + len(AFFECTS)] = affects
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> np.ndarray:
    """Weights (intercept last) of an L2-penalised logistic regression, by Newton's method.

    Example:
        >>> w = fit_logistic(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1]))
        >>> bool(w[0] > 0)
        True
    """
    design = np.column_stack([x, np.ones(len(x))])
    beta = np.zeros(design.shape[1])
    penalty = l2 * np.eye(design.shape[1])
    penalty[-1, -1] = 1e-8  # the intercept is not shrunk
    target = y.astype(float)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        gradient = design.T @ (target - p) - penalty @ beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if float(np.abs(step).max()) < 1e-6:
            break
    return beta


def cv_scores(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], repeat: int, folds: int = FOLDS, l2: float = L2
) -> np.ndarray:
    """Out-of-fold classifier scores of one split (``repeat`` salts it; NaN where a fold could not be fitted).

    Groups go to folds by a CRC-32 hash of their name and the repeat, so the split is the same
    in every process. Each fold's features are standardised with the training folds' means and spreads.
    """
    labels = np.asarray(y, dtype=int)
    fold_of = np.array([zlib.crc32(f"{repeat}/{g}".encode()) % folds for g in groups])
    scores = np.full(len(labels), np.nan)
    for k in range(folds):
        test = fold_of == k
        train = ~test
        if not test.any() or len(set(labels[train])) < 2:
            continue
        mean = x[train].mean(axis=0)
        spread = x[train].std(axis=0)
        spread[spread == 0] = 1.0
        beta = fit_logistic((x[train] - mean) / spread, labels[train], l2)
        scores[test] = ((x[test] - mean) / spread) @ beta[:-1] + beta[-1]
    return scores


def cv_auc(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], folds: int = FOLDS, l2: float = L2, repeats: int = CV_REPEATS
) -> float:
    """Rank AUC of out-of-fold classifier scores (:func:`cv_scores`), folds by ``groups``, averaged over ``repeats``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.array([0, 1] * 50)
        >>> cv_auc((y + 0.1 * rng.normal(size=100))[:, None], y, [str(i // 2) for i in range(100)])
        1.0
    """
    return float(np.mean(cv_aucs_by(x, y, groups, [""] * len(y), folds, l2, repeats)["*"]))


def cv_aucs_by(
    x: np.ndarray,
    y: np.ndarray,
    groups: Sequence[str],
    parts: Sequence[str],
    folds: int = FOLDS,
    l2: float = L2,
    repeats: int = CV_REPEATS,
) -> dict[str, list[float]]:
    """One classifier cross-validated over every row; the rank AUC of its out-of-fold scores within each part.

    Returns, per part (in order of first appearance), the AUC of each repeat (NaN where the part
    lacks a class), and under ``"*"`` the AUC over every row.

    Example:
        >>> y = np.array([0, 1] * 40)
        >>> x = np.c_[y + np.r_[np.zeros(40), 5 * np.ones(40)]]  # part b is shifted: the fit sees both
        >>> {p: round(float(np.mean(a)), 2) for p, a in cv_aucs_by(x, y, [str(i // 2) for i in range(80)],
        ...     ["a"] * 40 + ["b"] * 40).items()}
        {'a': 1.0, 'b': 1.0, '*': 0.75}
    """
    labels = np.asarray(y, dtype=int)
    names = list(dict.fromkeys(parts))
    where = np.asarray(parts)
    out: dict[str, list[float]] = {p: [] for p in names}
    out["*"] = []
    for repeat in range(repeats):
        scores = cv_scores(x, labels, groups, repeat, folds, l2)
        done = ~np.isnan(scores)
        out["*"].append(rank_auc(scores[done], labels[done].astype(bool)))
        for part in names:
            mask = (where == part) & ~np.isnan(scores)
            present = labels[mask]
            ok = 0 < int(present.sum()) < len(present)
            out[part].append(rank_auc(scores[mask], present.astype(bool)) if ok else float("nan"))
    return out
