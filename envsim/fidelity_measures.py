"""The measures of ``envsim fidelity`` that can fail: copy rate, context-aware and dialogue-level discriminators.

- :class:`NearDuplicates`: whether a turn is within normalised edit distance :data:`COPY_DISTANCE`
  of a pool turn (Levenshtein distance over the longer length, on lower-cased text with spaces
  collapsed). The *copy rate* is the share of turns that are.
- :func:`context_features`: one row per (agent turn, reply): the reply's own style features
  (:func:`envsim.fidelity_classifier.turn_features` but its hashed unigrams), the agent turn's
  (length, question mark, question and request words, closing and greeting words), and their
  interaction: content-word overlap, the length ratio, the agent turn's act (:func:`agent_act_of`)
  crossed with what the reply holds (:func:`reply_classes`: yes, no, thanks, a number, a time, a
  name...), and for each topic the agent asks about (name, time, number, email, place...) whether
  the reply holds that kind of answer. Nothing here is shared with the mock users or the coherence model.
- :func:`pair_accuracy`: the dialogue-level test. Each pair is a human dialogue and a simulated
  one of the same task (the same wizard turns); a logistic regression on the difference of their
  mean :func:`context_features` says which one is human; grouped cross-validation by pair.
- the chance baselines: the same procedures with the labels shuffled (seeded; :func:`pair_accuracy`
  with ``shuffle=True``), near 0.5 when nothing leaks.

Example:
    >>> dups = NearDuplicates(["I need a taxi please", "yes"])
    >>> dups.within("i need a taxi, please"), dups.within("no"), dups.within("Yes")
    (True, False, True)
    >>> edit_distance("kitten", "sitting")
    3
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from envsim.fidelity_classifier import FEATURES, fit_logistic, turn_features
from envsim.user.affect_scorer import AffectScorer

COPY_DISTANCE = 0.2
"""A turn within this normalised edit distance of a pool turn is a (near) copy."""

PAIR_L2 = 10.0
"""Ridge penalty of the dialogue-level classifier (few pairs, many features)."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 "
_BAG = {c: i for i, c in enumerate(_ALPHABET)}
_STOP = frozenset(
    [
        "the", "a", "an", "and", "or", "but", "to", "of", "in", "on", "at", "for", "with", "is", "are", "was", "were",
        "be", "been", "it", "its", "this", "that", "i", "me", "my", "you", "your", "we", "our", "us", "he", "she",
        "they", "them", "do", "does", "did", "can", "could", "would", "will", "should", "have", "has", "had", "not",
        "so", "just", "there", "here", "then", "than", "please", "ok", "okay", "am", "im", "i'm", "i'd", "i'll",
    ]
)  # fmt: skip
_WH = re.compile(r"\b(?:what|when|where|which|who|whom|whose|how|why)\b")
_REQUEST = re.compile(r"\b(?:provide|tell|give|spell|confirm|enter|describe|verify|need)\b")
_CLOSING = re.compile(r"anything else|\bbye\b|goodbye|you(?:'re| are) welcome|have a (?:nice|good|great)")
_GREETING = re.compile(r"^\W*(?:hello|hi|hey|good (?:morning|afternoon|evening))\b|how (?:can|may) i help")
_APOLOGY = re.compile(r"\b(?:sorry|unfortunately|unable|unavailable|cannot|can't|not available)\b")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_TIME = re.compile(r"\b\d{1,2}(?::\d{2})?\s?(?:am|pm)\b|\b\d{1,2}:\d{2}\b")


def normalise(text: str) -> str:
    """Lower case, spaces collapsed: the text edit distances are taken on."""
    return " ".join(text.lower().split())


def edit_distance(a: str, b: str) -> int:
    """The Levenshtein distance (insertions, deletions, substitutions) between two strings."""
    return int(_distances(a, [b])[0])


def _codes(texts: Sequence[str]) -> np.ndarray:
    """The texts as a padded matrix of code points (``-1`` past each end)."""
    width = max((len(t) for t in texts), default=0)
    codes = np.full((len(texts), width), -1, dtype=np.int32)
    for i, text in enumerate(texts):
        codes[i, : len(text)] = np.frombuffer(text.encode("utf-32-le"), dtype=np.int32)
    return codes


def _distances(query: str, candidates: Sequence[str], limit: float | None = None) -> np.ndarray:
    """Levenshtein distances from ``query`` to each candidate, one DP row per query character, vectorised.

    The insertion step along a row is a running minimum: ``D[j] = j + min_{k <= j}(E[k] - k)``.
    With ``limit``, a candidate whose row minimum exceeds it (a lower bound of its distance) is
    dropped early and reported as ``limit + 1``.
    """
    if not candidates:
        return np.zeros(0, dtype=np.int64)
    codes = _codes(candidates)
    lengths = np.array([len(c) for c in candidates])
    result = np.full(len(candidates), -1, dtype=np.int64)
    alive = np.arange(len(candidates))
    columns = np.arange(codes.shape[1] + 1)
    row = np.tile(columns, (len(candidates), 1))
    for i, ch in enumerate(np.frombuffer(query.encode("utf-32-le"), dtype=np.int32), 1):
        cost = codes != ch
        best = np.empty_like(row)
        best[:, 0] = i
        best[:, 1:] = np.minimum(row[:, 1:] + 1, row[:, :-1] + cost)
        row = np.minimum.accumulate(best - columns, axis=1) + columns
        if limit is not None and i % 4 == 0:
            keep = row.min(axis=1) <= limit
            if not keep.all():
                result[alive[~keep]] = int(limit) + 1
                alive, row, codes = alive[keep], row[keep], codes[keep]
                if not len(alive):
                    return result
    result[alive] = row[np.arange(len(alive)), lengths[alive]]
    return result


def _bag(text: str) -> np.ndarray:
    counts = np.zeros(len(_ALPHABET) + 1, dtype=np.int32)
    for ch in text:
        counts[_BAG.get(ch, len(_ALPHABET))] += 1
    return counts


class NearDuplicates:
    """The turns of a pool, indexed to tell whether a text is within :data:`COPY_DISTANCE` of one of them.

    Exact copies are found by set lookup; otherwise only pool turns of a compatible length and
    character multiset (a lower bound of the edit distance) are compared exactly.
    """

    def __init__(self, pool: Iterable[str], distance: float = COPY_DISTANCE) -> None:
        texts = sorted({t for t in map(normalise, pool) if t}, key=len)
        self.distance = distance
        self.texts = texts
        self._exact = set(texts)
        self._lengths = np.array([len(t) for t in texts], dtype=np.int64)
        self._bags = np.array([_bag(t) for t in texts], dtype=np.int32).reshape(len(texts), len(_ALPHABET) + 1)
        self._seen: dict[str, bool] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def within(self, text: str) -> bool:
        """Whether ``text`` is within the distance of a pool turn."""
        query = normalise(text)
        if not query:
            return False
        if query in self._exact:
            return True
        if query not in self._seen:
            self._seen[query] = self._near(query)
        return self._seen[query]

    def _near(self, query: str) -> bool:
        size = len(query)
        low = int(np.searchsorted(self._lengths, math.ceil((1 - self.distance) * size - 1e-9), side="left"))
        high = int(np.searchsorted(self._lengths, math.floor(size / (1 - self.distance) + 1e-9), side="right"))
        if low >= high:
            return False
        longest = np.maximum(self._lengths[low:high], size)
        diff = self._bags[low:high] - _bag(query)
        bound = np.maximum(np.clip(diff, 0, None).sum(axis=1), np.clip(-diff, 0, None).sum(axis=1))
        near = np.nonzero(bound <= self.distance * longest)[0]
        if not len(near):
            return False
        limits = self.distance * longest[near] + 1e-9
        order = np.argsort(bound[near], kind="stable")
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            candidates = [self.texts[low + int(near[i])] for i in batch]
            distances = _distances(query, candidates, float(limits[batch].max()))
            if np.any(distances <= limits[batch]):
                return True
        return False

    def rate(self, texts: Sequence[str]) -> float:
        """The share of ``texts`` within the distance of a pool turn (NaN for none)."""
        return float(np.mean([self.within(t) for t in texts])) if texts else float("nan")


# -- context-aware features -------------------------------------------------------------------

REPLY_FEATURES: tuple[str, ...] = tuple(f"reply_{name}" for name in FEATURES[: FEATURES.index("hash_0")])
"""The reply's columns of :func:`context_features`: :data:`~envsim.fidelity_classifier.FEATURES` but hashed unigrams."""

AGENT_ACTS: tuple[str, ...] = ("greet", "close", "ask_info", "ask_yesno", "apology", "inform")
"""What an agent turn does (:func:`agent_act_of`), one a turn."""

REPLY_CLASSES: tuple[str, ...] = (
    "yes", "no", "thanks", "greet", "question", "digits", "time", "name", "email", "short", "long",
)  # fmt: skip
"""What a reply holds (:func:`reply_classes`), any number a reply."""

TOPICS: dict[str, re.Pattern[str]] = {
    "name": re.compile(r"\bname\b"),
    "time": re.compile(r"\btime\b|\bwhen\b|what hour|o'clock"),
    "date": re.compile(r"\bdate\b|\bday\b|\bwhen\b"),
    "number": re.compile(r"\bnumber\b|how many|\bcode\b|\bpin\b|\bid\b|\baccount\b|\bdigits?\b"),
    "email": re.compile(r"e-?mail"),
    "place": re.compile(r"\bwhere\b|\baddress\b|\blocation\b|\bfrom\b|\bdestination\b"),
}
"""What an agent's question may ask for, each matched by a reply class (:data:`_ANSWERED_BY`)."""

_ANSWERED_BY: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "time": ("time", "digits"),
    "date": ("digits", "name"),
    "number": ("digits",),
    "email": ("email",),
    "place": ("name",),
}

AGENT_FEATURES: tuple[str, ...] = (
    "agent_log_words", "agent_question", "agent_digits", *(f"agent_{act}" for act in AGENT_ACTS),
)  # fmt: skip
"""The agent turn's own columns of :func:`context_features`."""

PAIR_FEATURES: tuple[str, ...] = (
    "overlap_share", "overlap_any", "log_length_ratio",
    *(f"{act}_x_{kind}" for act in AGENT_ACTS for kind in REPLY_CLASSES),
    *(f"asks_{topic}_{outcome}" for topic in TOPICS for outcome in ("answered", "unanswered")),
)  # fmt: skip
"""The interaction columns of :func:`context_features`: overlap, act x reply class, topic asked x answered."""


def _content(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) >= 3]


_QUESTION = re.compile(r"[^.?!]*\?")


def agent_act_of(text: str) -> str:
    """What an agent turn does, by rule: one of :data:`AGENT_ACTS`.

    Example:
        >>> agent_act_of("Hello, how can I help?"), agent_act_of("What is your name?"), agent_act_of("Shall I?")
        ('greet', 'ask_info', 'ask_yesno')
    """
    low = normalise(text)
    if _CLOSING.search(low):
        return "close"
    if _GREETING.search(low):
        return "greet"
    asked = " ".join(_QUESTION.findall(low))
    if asked or _REQUEST.search(low):
        return "ask_info" if _WH.search(asked or low) or _REQUEST.search(asked or low) else "ask_yesno"
    if _APOLOGY.search(low):
        return "apology"
    return "inform"


def reply_classes(text: str) -> set[str]:
    """What a reply holds, by rule: a subset of :data:`REPLY_CLASSES`.

    Example:
        >>> sorted(reply_classes("yes, 7 pm"))
        ['digits', 'short', 'time', 'yes']
    """
    low = normalise(text)
    words = _WORD.findall(low)
    first = words[0] if words else ""
    found = {
        "yes": first in ("yes", "yeah", "yep", "sure", "ok", "okay", "correct", "right", "great", "perfect"),
        "no": first in ("no", "nope", "nah", "not"),
        "thanks": re.search(r"\bthanks?\b|thank you|\bbye\b|goodbye|that'?s all", low) is not None,
        "greet": first in ("hi", "hello", "hey"),
        "question": "?" in low,
        "digits": any(c.isdigit() for c in low),
        "time": _TIME.search(low) is not None,
        "name": re.search(r"\w[\s,]+[A-Z][a-z]+", text) is not None
        or (0 < len(words) <= 3 and all(w[:1].isupper() for w in text.split())),
        "email": _EMAIL.search(low) is not None,
        "short": len(words) <= 3,
        "long": len(words) > 12,
    }
    return {kind for kind, hit in found.items() if hit}


def context_features(
    agent_turns: Sequence[str], replies: Sequence[str], scorer: AffectScorer | None = None
) -> np.ndarray:
    """One row per (agent turn, reply): reply features, agent features, interaction (see the module docstring).

    Example:
        >>> rows = context_features(["What is your name?"], ["Ann Lee"])
        >>> rows.shape == (1, len(REPLY_FEATURES) + len(AGENT_FEATURES) + len(PAIR_FEATURES))
        True
        >>> names = REPLY_FEATURES + AGENT_FEATURES + PAIR_FEATURES
        >>> [n for n, v in zip(names, rows[0]) if v and n.startswith(("ask", "agent_ask"))]
        ['agent_ask_info', 'ask_info_x_name', 'ask_info_x_short', 'asks_name_answered']
    """
    if len(agent_turns) != len(replies):
        raise ValueError(f"{len(agent_turns)} agent turns for {len(replies)} replies")
    reply_rows = turn_features(list(replies), scorer)[:, : FEATURES.index("hash_0")]
    agent_rows = np.zeros((len(replies), len(AGENT_FEATURES)))
    pair_rows = np.zeros((len(replies), len(PAIR_FEATURES)))
    column = {name: i for i, name in enumerate(PAIR_FEATURES)}
    for i, (agent, reply) in enumerate(zip(agent_turns, replies, strict=True)):
        act = agent_act_of(agent)
        agent_rows[i, :3] = (
            math.log1p(len(agent.split())),
            float("?" in agent),
            float(any(c.isdigit() for c in agent)),
        )
        agent_rows[i, 3 + AGENT_ACTS.index(act)] = 1.0
        agent_words, reply_words = set(_content(agent)), set(_content(reply))
        shared = agent_words & reply_words
        pair_rows[i, 0] = len(shared) / len(reply_words) if reply_words else 0.0
        pair_rows[i, 1] = float(bool(shared))
        pair_rows[i, 2] = math.log1p(len(reply.split())) - math.log1p(len(agent.split()))
        kinds = reply_classes(reply)
        for kind in kinds:
            pair_rows[i, column[f"{act}_x_{kind}"]] = 1.0
        asked = " ".join(_QUESTION.findall(normalise(agent))) or (normalise(agent) if _REQUEST.search(agent) else "")
        for topic, pattern in TOPICS.items():
            if asked and pattern.search(asked):
                outcome = "answered" if kinds & set(_ANSWERED_BY[topic]) else "unanswered"
                pair_rows[i, column[f"asks_{topic}_{outcome}"]] = 1.0
    return np.hstack([reply_rows, agent_rows, pair_rows])


# -- chance baselines and the dialogue-level test --------------------------------------------


PAIR_REPEATS = 3
"""Random splits of the dialogue-level test (:func:`pair_accuracy`) its accuracy is averaged over."""

SHUFFLED_REPEATS = 2
"""Cross-validation splits of the shuffled-label baselines."""


def pair_accuracy(
    human: np.ndarray,
    simulated: np.ndarray,
    *,
    folds: int = 5,
    repeats: int = PAIR_REPEATS,
    seed: int = 0,
    shuffle: bool = False,
    l2: float = PAIR_L2,
) -> float:
    """Out-of-fold accuracy of telling which dialogue of each pair is human (row ``i`` of each side is a pair).

    The classifier is a logistic regression on the difference of the two dialogues' features
    (both orders, so it has no side to favour), standardised on the training folds; pairs go to
    folds at random (seeded), the accuracy is averaged over ``repeats`` splits. With ``shuffle``
    the two sides of each pair are swapped at random first: the chance baseline.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> h, s = rng.normal(size=(40, 3)) + 2.0, rng.normal(size=(40, 3))
        >>> pair_accuracy(h, s), 0.3 < pair_accuracy(h, s, shuffle=True) < 0.7
        (1.0, True)
    """
    if human.shape != simulated.shape or len(human) < folds:
        raise ValueError(f"pair_accuracy needs {folds}+ pairs of equal shape, got {human.shape} and {simulated.shape}")
    rng = np.random.default_rng(seed)
    first, second = human.copy(), simulated.copy()
    if shuffle:
        swap = rng.random(len(human)) < 0.5
        first[swap], second[swap] = simulated[swap], human[swap]
    diff = first - second
    scores = []
    for _ in range(repeats):
        fold_of = rng.permutation(len(diff)) % folds
        right = 0
        for k in range(folds):
            test, train = fold_of == k, fold_of != k
            both = np.vstack([diff[train], -diff[train]])
            spread = both.std(axis=0)
            spread[spread == 0] = 1.0
            labels = np.r_[np.ones(int(train.sum()), dtype=int), np.zeros(int(train.sum()), dtype=int)]
            beta = fit_logistic(both / spread, labels, l2)
            right += int(np.sum((diff[test] / spread) @ beta[:-1] > 0))
        scores.append(right / len(diff))
    return float(np.mean(scores))
