"""Does a reply fit the turn it answers? A coherence model fitted on human (agent turn, reply) pairs.

:class:`CoherenceModel` is an L2 logistic regression (numpy; Adam on blocks of :data:`BATCH`
examples) that tells a human user's reply to an agent turn from the same reply paired with
another agent turn. Positives are the human pairs
given to :meth:`CoherenceModel.fit`; negatives are drawn inside, seeded: each reply paired with
the agent turn of another pair, once at random (mostly another dialogue act) and once among the
agent turns of the same act (:func:`~envsim.user.transcript.text.agent_act`), where only what is
asked for and the content tell them apart. The features are hashed (:data:`BUCKETS` buckets): the
words and the act of the agent turn, the words and the *shape* of the reply (an email, a phone-like or short number, a
date, a time, yes/no/thanks openers, a question mark, its length), and every pair of an agent
feature with a reply feature, the only ones that can tell a pair from a shuffled one.

:attr:`CoherenceModel.threshold` is chosen on the fitting data: the :data:`MISFIT_SHARE`
quantile of the scores of human pairs left out of the fit (a seeded :data:`VALIDATION_SHARE` of
the pairs, drawn by pair, not by dialogue; with fewer than 10 pairs, all are fitted and the
threshold is taken on them), so that about that share of human replies are misfits on unseen
pairs.
:func:`corpus_pairs` reads (agent turn, next human reply) pairs from canonical transcripts
(:class:`~envsim.transcripts.schema.Conversation`).

Example:
    >>> asks = [("What is your email address?", "it's ann@x.org"), ("Can I have your phone number?", "555-0142"),
    ...         ("Is there anything else I can help you with?", "no thanks, bye"),
    ...         ("What time would you like?", "around 5 pm please")] * 30
    >>> model = CoherenceModel.fit(asks, seed=0)
    >>> model.score("What is your email?", "sure, bob@y.com") > model.score("What is your email?", "no thanks, bye")
    True
    >>> model.misfit("Anything else I can help you with?", "555-0199")
    True
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from envsim.transcripts.schema import Conversation
from envsim.user.transcript.text import agent_act

BUCKETS = 1 << 18
"""Hashed feature buckets."""

L2 = 1e-4
"""Ridge penalty per example (on the mean log-loss)."""

ITERATIONS = 100
"""Adam steps of the fit, each on one block of :data:`BATCH` examples (the blocks taken in turn)."""

BATCH = 16384
"""Examples per Adam step."""

LEARNING_RATE = 0.1
"""Adam's step size."""

MISFIT_SHARE = 0.05
"""Share of held-out human pairs below the threshold (:attr:`CoherenceModel.threshold`)."""

VALIDATION_SHARE = 0.2
"""Share of the pairs left out of the fit to choose the threshold on (at least one pair)."""

MAX_AGENT_WORDS = 10
"""Agent words used (the last ones: the question is usually at the end)."""

MAX_REPLY_WORDS = 6
"""Reply words used (the first ones: the answer is usually at the start)."""

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\d[\d\-. ()]{5,}\d")
_DIGITS = re.compile(r"\d+")
_DATE = re.compile(
    r"(?i)\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}\b"
    r"|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\b(?:today|tomorrow|tonight|yesterday)\b"
)
_TIME = re.compile(r"(?i)\b\d{1,2}(?::\d{2})?\s?(?:am|pm)\b|\b\d{1,2}:\d{2}\b|\b(?:noon|midnight)\b")
_OPENER = re.compile(
    r"^\W*(?:(?P<yes>yes|yeah|yep|yup|sure|ok|okay|correct|right|alright|please)|(?P<no>no|nope|nah)"
    r"|(?P<thanks>thanks?|thank you|bye|goodbye|that'?s all|that is all))\b"
)
_LENGTHS = (1, 3, 6, 12, 24)
_STOP = frozenset(
    ("a", "an", "the", "to", "of", "in", "on", "at", "for", "and", "or", "is", "are", "was", "be", "it", "this",
     "that", "i", "me", "my", "you", "your", "we", "us", "our", "can", "could", "would", "will", "do", "so", "just")
)  # fmt: skip


def _hash(token: str) -> int:
    return zlib.crc32(token.encode("utf-8"))


@lru_cache(maxsize=65536)
def agent_features(text: str) -> tuple[int, ...]:
    """The hashed features of an agent turn: its act, a question mark, and its last words.

    Example:
        >>> len(agent_features("What is your email?")) == len(set(agent_features("What is your email?")))
        True
    """
    low = " ".join(text.lower().split())
    words = [w for w in _WORD.findall(low) if w not in _STOP][-MAX_AGENT_WORDS:]
    tokens = {f"a:{w}" for w in words}
    tokens.add(f"a:act={agent_act(text)}")
    if "?" in low:
        tokens.add("a:?")
    if not words:
        tokens.add("a:<empty>")
    return tuple(sorted({_hash(t) for t in tokens}))


@lru_cache(maxsize=65536)
def reply_features(text: str) -> tuple[int, ...]:
    """The hashed features of a reply: its first words, its opener and its shape (entities, ``?``, length).

    Example:
        >>> reply_features("it's ann@x.org") != reply_features("it's 555-0142")
        True
    """
    low = " ".join(text.lower().split())
    words = _WORD.findall(_EMAIL.sub(" ", low))
    tokens = {f"r:{w}" for w in [w for w in words if w not in _STOP][:MAX_REPLY_WORDS]}
    if words:
        tokens.add(f"r:^{words[0]}")
    opener = _OPENER.match(low)
    if opener is not None:
        tokens.add(f"r:open={opener.lastgroup}")
    shapes = {
        "email": _EMAIL.search(low) is not None,
        "phone": _PHONE.search(_EMAIL.sub(" ", low)) is not None,
        "date": _DATE.search(low) is not None,
        "time": _TIME.search(low) is not None,
        "digits": _DIGITS.search(_EMAIL.sub(" ", low)) is not None,
        "question": "?" in low,
        "exclaim": "!" in low,
    }
    tokens.update(f"r:<{name}>" for name, on in shapes.items() if on)
    n = len(low.split())
    tokens.add(f"r:len={sum(n >= edge for edge in _LENGTHS)}")
    return tuple(sorted({_hash(t) for t in tokens}))


_MIX = np.uint64(0x9E3779B97F4A7C15)
_REPLY_SALT = np.uint64(0xABCDEF)


def _cross(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The bucket of each agent feature ``a`` paired elementwise with reply feature ``r``."""
    with np.errstate(over="ignore"):
        mixed = (a * _MIX) ^ (r + np.uint64(0x5BD1E995))
        return mixed ^ (mixed >> np.uint64(29))


def pair_features(agent_turn: str, reply: str) -> np.ndarray:
    """The feature buckets of a pair: each side's features and every agent x reply pair of them."""
    a = np.array(agent_features(agent_turn), dtype=np.uint64)
    r = np.array(reply_features(reply), dtype=np.uint64)
    every = np.concatenate([a, r ^ _REPLY_SALT, _cross(a[:, None], r[None, :]).ravel()])
    return (every & np.uint64(BUCKETS - 1)).astype(np.int64)


def _ragged(features: Sequence[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened values, lengths and start offsets of a list of feature tuples."""
    lengths = np.array([len(f) for f in features], dtype=np.int64)
    flat = np.fromiter((x for f in features for x in f), dtype=np.uint64, count=int(lengths.sum()))
    return flat, lengths, np.cumsum(lengths) - lengths


def _design(pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """The feature buckets of every pair, flattened in pair order, and the offset where each pair's start.

    The same buckets as :func:`pair_features`, built for all pairs at once (vectorised).
    """
    a_flat, a_len, a_start = _ragged([agent_features(a) for a, _ in pairs])
    r_flat, r_len, r_start = _ragged([reply_features(r) for _, r in pairs])
    n = len(pairs)
    a_row = np.repeat(np.arange(n), a_len)
    counts = r_len[a_row]  # each agent feature meets every reply feature of its pair
    a_rep = np.repeat(a_flat, counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    r_rep = r_flat[np.repeat(r_start[a_row], counts) + within]
    cross = _cross(a_rep, r_rep)
    sizes = a_len + r_len + a_len * r_len
    starts = np.cumsum(sizes) - sizes
    flat = np.empty(int(sizes.sum()), dtype=np.uint64)
    a_pos = np.repeat(starts, a_len) + (np.arange(len(a_flat)) - np.repeat(a_start, a_len))
    r_pos = np.repeat(starts + a_len, r_len) + (np.arange(len(r_flat)) - np.repeat(r_start, r_len))
    cross_len = a_len * r_len
    c_pos = np.repeat(starts + a_len + r_len, cross_len) + (
        np.arange(int(cross_len.sum())) - np.repeat(np.cumsum(cross_len) - cross_len, cross_len)
    )
    flat[a_pos] = a_flat
    flat[r_pos] = r_flat ^ _REPLY_SALT
    flat[c_pos] = cross  # pair order, agent-major: the order pair_features uses
    return (flat & np.uint64(BUCKETS - 1)).astype(np.int64), np.append(starts, flat.size)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=float)


def _negatives(pairs: Sequence[tuple[str, str]], rng: np.random.Generator) -> list[tuple[str, str]]:
    """Each reply with another pair's agent turn: one at random, one of the same agent act (when there is one)."""
    n = len(pairs)
    out: list[tuple[str, str]] = []
    shuffled = rng.permutation(n)
    for i, j in enumerate(shuffled):
        j = int(j) if int(j) != i else (i + 1) % n
        if pairs[j][0] != pairs[i][0]:
            out.append((pairs[j][0], pairs[i][1]))
    by_act: dict[str, list[int]] = {}
    for i, (agent, _) in enumerate(pairs):
        by_act.setdefault(agent_act(agent), []).append(i)
    for members in by_act.values():
        if len(members) < 2:
            continue
        order = np.array(members)
        other = order[rng.permutation(len(order))]
        for i, j in zip(order, other, strict=True):
            if pairs[int(j)][0] != pairs[int(i)][0]:
                out.append((pairs[int(j)][0], pairs[int(i)][1]))
    return out


@dataclass
class CoherenceModel:
    """A fitted coherence model: the probability that a reply fits the agent turn it answers (see the module).

    Attributes:
        weights: One weight per hashed bucket (:data:`BUCKETS`), the bias apart.
        bias: The intercept.
        threshold: Scores below it are misfits (:meth:`misfit`); chosen on held-out fitting pairs.
        n_pairs: Human pairs fitted.
        seed: The seed of the negatives and the validation split.
        reference: The sorted scores of the held-out human pairs the threshold was chosen on.
    """

    weights: np.ndarray
    bias: float
    threshold: float
    n_pairs: int
    seed: int = 0
    reference: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, pairs: Sequence[tuple[str, str]], *, seed: int = 0) -> CoherenceModel:
        """Fit on human ``(agent_turn, reply)`` pairs; negatives are drawn inside by shuffling, seeded.

        Raises:
            ValueError: With fewer than two distinct agent turns (no negative can be drawn).
        """
        pairs = [(str(a), str(r)) for a, r in pairs]
        if len({a for a, _ in pairs}) < 2:
            raise ValueError(f"a coherence model needs pairs with at least 2 distinct agent turns, got {len(pairs)}")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pairs))
        n_valid = max(1, round(VALIDATION_SHARE * len(pairs))) if len(pairs) >= 10 else 0
        valid = [pairs[int(i)] for i in order[:n_valid]]
        train = [pairs[int(i)] for i in order[n_valid:]]
        negatives = _negatives(train, rng)
        examples = train + negatives
        labels = np.concatenate([np.ones(len(train)), np.zeros(len(negatives))])
        shuffle = rng.permutation(len(examples))
        examples = [examples[int(i)] for i in shuffle]
        labels = labels[shuffle]
        flat, offsets = _design(examples)
        n = len(examples)
        blocks = max(1, -(-n // BATCH))
        w = np.zeros(BUCKETS)
        b = 0.0
        m_w, v_w = np.zeros_like(w), np.zeros_like(w)
        m_b = v_b = 0.0
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for step in range(1, ITERATIONS + 1):
            block = (step - 1) % blocks
            lo, hi = block * BATCH, min(n, (block + 1) * BATCH)
            cols = flat[offsets[lo] : offsets[hi]]
            rows = np.repeat(np.arange(hi - lo), np.diff(offsets[lo : hi + 1]))
            z = np.bincount(rows, weights=w[cols], minlength=hi - lo) + b
            residual = _sigmoid(z) - labels[lo:hi]
            grad = np.bincount(cols, weights=residual[rows], minlength=BUCKETS) / (hi - lo) + L2 * w
            grad_b = float(residual.mean())
            m_w = beta1 * m_w + (1 - beta1) * grad
            v_w = beta2 * v_w + (1 - beta2) * grad * grad
            m_b = beta1 * m_b + (1 - beta1) * grad_b
            v_b = beta2 * v_b + (1 - beta2) * grad_b * grad_b
            scale = LEARNING_RATE * np.sqrt(1 - beta2**step) / (1 - beta1**step)
            w -= scale * m_w / (np.sqrt(v_w) + eps)
            b -= scale * m_b / (np.sqrt(v_b) + eps)
        model = cls(weights=w.astype(np.float32), bias=float(b), threshold=0.5, n_pairs=len(pairs), seed=seed)
        scored = valid or train
        model.reference = np.sort(np.array([model.score(a, r) for a, r in scored], dtype=float))
        model.threshold = model.quantile(MISFIT_SHARE)
        return model

    def quantile(self, share: float) -> float:
        """The score below which ``share`` of the held-out human pairs fall (:attr:`reference`)."""
        return float(np.quantile(self.reference, share)) if len(self.reference) else 0.0

    def score(self, agent_turn: str, reply: str) -> float:
        """The probability that ``reply`` fits ``agent_turn``, in [0, 1]."""
        z = float(self.weights[pair_features(agent_turn, reply)].sum()) + self.bias
        return float(_sigmoid(np.array([z]))[0])

    def misfit(self, agent_turn: str, reply: str) -> bool:
        """Whether the reply's score is below :attr:`threshold`."""
        return self.score(agent_turn, reply) < self.threshold

    def misfit_rate(self, pairs: Iterable[tuple[str, str]]) -> float:
        """The share of ``pairs`` that are misfits (0.0 for none)."""
        flags = [self.misfit(a, r) for a, r in pairs]
        return sum(flags) / len(flags) if flags else 0.0


def corpus_pairs(
    conversations: Iterable[Conversation], *, dialogue_ids: Iterable[str] | None = None
) -> list[tuple[str, str]]:
    """The (agent turn, next human reply) pairs of canonical transcripts, in order.

    Each non-empty user turn that follows an agent turn is paired with the last agent turn before
    it (tool and instruction turns are skipped; a user turn right after another user turn is not
    a reply). ``dialogue_ids`` keeps only those dialogues.

    Example:
        >>> from envsim.transcripts.schema import Turn
        >>> c = Conversation(corpus="plain", id="1", turns=[Turn(role="user", text="hi"),
        ...     Turn(role="agent", text="Your name?"), Turn(role="tool"), Turn(role="user", text="Ann")])
        >>> corpus_pairs([c]), corpus_pairs([c], dialogue_ids=["2"])
        ([('Your name?', 'Ann')], [])
    """
    keep = None if dialogue_ids is None else set(dialogue_ids)
    pairs: list[tuple[str, str]] = []
    for conversation in conversations:
        if keep is not None and conversation.id not in keep:
            continue
        last: str | None = None
        for turn in conversation.turns:
            if turn.role == "agent":
                last = turn.text if turn.text.strip() else None
            elif turn.role == "user" and turn.text.strip():
                if last is not None:
                    pairs.append((last, turn.text))
                last = None
    return pairs
