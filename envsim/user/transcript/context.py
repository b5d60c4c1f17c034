"""Which corpus agent turns read like the agent's message: an inverted index of their content words.

The transcript user retrieves a human reply by the agent (wizard) turn it originally answered
(:mod:`envsim.user.transcript`). :class:`ContentIndex` holds the content words of those turns
(lower-cased, 3+ letters, stop words aside) as posting lists, built once per corpus; a query
scores every row by the cosine of idf-weighted word sets, adding only over the rows that share a
word with it (its posting lists; no text is read per reply). Words the index has never seen
count for nothing.

Example:
    >>> index = ContentIndex.build(["What is your email address?", "Your table is booked.", ""])
    >>> index.similarity("Could I have your email address please?").round(2).tolist()
    [1.0, 0.0, 0.0]
    >>> index.similarity("Is the table for two booked?").round(2).tolist()
    [0.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"[a-z]{3,}")
_STOP = frozenset(
    ("the", "and", "for", "with", "you", "your", "are", "was", "were", "this", "that", "can", "could", "would",
     "will", "have", "has", "had", "not", "but", "what", "when", "where", "which", "who", "how", "there", "here",
     "then", "than", "please", "okay", "just", "also", "may", "might", "let", "get", "got", "its", "our", "from",
     "about", "any", "some", "all", "one", "like", "need", "want", "sure", "thank", "thanks", "yes")
)  # fmt: skip
MAX_WORDS = 24
"""Content words kept per turn (the last ones: the question is usually at the end)."""

MAX_DF_SHARE = 0.05
"""A word in more than this share of the turns ('help', 'anything') is left out of the index: it says little
about what a turn asks, and its long posting list would cost the most per query."""


def content_words(text: str) -> list[str]:
    """The distinct content words of ``text``, in order of last use, at most :data:`MAX_WORDS`.

    Example:
        >>> content_words("What is your email address? The email, please.")
        ['address', 'email']
    """
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    seen: dict[str, None] = {}
    for word in reversed(words):
        seen.setdefault(word, None)
    return sorted(list(seen)[:MAX_WORDS])


@dataclass(frozen=True)
class ContentIndex:
    """Posting lists of the content words of a list of turns (one row per turn).

    Attributes:
        postings: Per word, the rows whose turn has it.
        idf: Per word, ``log(1 + rows / rows with it)``.
        norms: Per row, the idf-weighted norm of its word set (0 for a turn without content words).
    """

    postings: dict[str, np.ndarray]
    idf: dict[str, float]
    norms: np.ndarray

    @classmethod
    def build(cls, texts: Sequence[str]) -> ContentIndex:
        """Index ``texts``."""
        rows: dict[str, list[int]] = {}
        words_of = [content_words(t) for t in texts]
        for row, words in enumerate(words_of):
            for word in words:
                rows.setdefault(word, []).append(row)
        n = max(1, len(texts))
        rows = {w: r for w, r in rows.items() if len(r) <= max(1.0, MAX_DF_SHARE * n)}
        idf = {w: math.log(1 + n / len(r)) for w, r in rows.items()}
        norms = np.array([math.sqrt(sum(idf.get(w, 0.0) ** 2 for w in words)) for words in words_of], dtype=float)
        return cls({w: np.array(r, dtype=np.int64) for w, r in rows.items()}, idf, norms)

    def similarity(self, text: str) -> np.ndarray:
        """Per row, the cosine of ``text``'s idf-weighted content words with the row's (0..1)."""
        scores = np.zeros(len(self.norms))
        words = [w for w in content_words(text) if w in self.postings]
        if not words:
            return scores
        for word in words:
            scores[self.postings[word]] += self.idf[word] ** 2
        query = math.sqrt(sum(self.idf[w] ** 2 for w in words))
        return np.divide(scores, self.norms * query, out=np.zeros_like(scores), where=self.norms > 0)
