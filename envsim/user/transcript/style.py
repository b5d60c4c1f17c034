"""A persona's traits applied to the text of retrieved human turns (the transcript user's style).

A retrieved STAR turn already carries the style of the persona category it comes from (its
typos, length and register are those of the category's human role-players, the very turns its
calibrated persona was fitted on). A persona that differs from its category gets the difference:

- ``typo_rate``: typos at the *excess* of the persona's rate over its category persona's
  (the calibrated ``star_*`` persona of the same name), through the scripted user's
  :func:`~envsim.user.scripted.apply_typos` (seeded by the environment's generator; fact values
  never touched); a persona at or below its category's rate gets none added;
- ``verbosity``: :meth:`Style.length_factors` reweights retrieval by length bin, the persona's
  lognormal word-count distribution over the category's, so that longer or shorter human turns
  are drawn (whole turns: no sentence is cut from what a person wrote, none is invented);
- ``register`` (when it differs from the category's): ``formal`` capitalises sentence starts and
  a lone *i* and ends a sentence with a full stop; ``casual`` writes the first letter in lower case
  and drops a final full stop.

A person also keeps a length of their own through one conversation: some write long turns
throughout, others short ones (in STAR's pool, a dialogue's mean log word count spreads around its
category's by :data:`PERSON_SPREAD` beyond what its turns' own variation explains). Drawing every turn
independently from the category's lengths would give each simulated conversation the category's
average. :func:`talkativeness` draws one shift of the log-median per conversation and
:func:`length_tilt` turns it into factors per length bin, multiplied into the persona's.

Deterministic per seed: typos draw from the generator (only when the excess rate is above 0), and the
talkativeness once per conversation.

Example:
    >>> from envsim.user.persona import load_persona
    >>> style = Style.for_persona(load_persona("confused"), "star_confused")
    >>> style.register, style.apply("i lost my card. can you help", np.random.default_rng(0))
    ('formal', 'I lost my card. Can you help.')
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from envsim.user.persona import Persona, Register, Verbosity, persona_library
from envsim.user.scripted import apply_typos

_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")
_LONE_I = re.compile(r"\bi\b(?=['’ ]|$|[.,!?])")


def _bin_mass(verbosity: Verbosity, edges: Iterable[int]) -> np.ndarray:
    """The probability of each length bin (lower edges ``edges``, in words) under a lognormal verbosity."""
    lows = list(edges)

    def cdf(words: float) -> float:
        if words <= 0:
            return 0.0
        z = (math.log(words) - verbosity.mu) / max(verbosity.sigma, 1e-9)
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    bounds = [low - 0.5 for low in lows] + [math.inf]
    return np.array([max(cdf(b) - cdf(a), 1e-6) for a, b in itertools.pairwise(bounds)])


PERSON_SPREAD = 0.5
"""Standard deviation, in log words, of one conversation's median turn length around its category's: the spread of
the mean log word count of STAR pool dialogues (3+ user turns) beyond the sampling spread of their turns."""


def talkativeness(rng: np.random.Generator, spread: float = PERSON_SPREAD) -> float:
    """One conversation's shift of the log-median turn length (normal, mean 0, standard deviation ``spread``)."""
    return float(rng.normal(0.0, spread))


def length_tilt(shift: float, sigma: float, edges: Iterable[int]) -> np.ndarray:
    """Per length bin (lower edges ``edges``), the factor that moves a lognormal word count's log-median by ``shift``.

    The exponential tilt ``words ** (shift / sigma**2)`` turns lognormal(mu, sigma) into
    lognormal(mu + shift, sigma); each bin gets it at its geometric middle. Normalised to a mean of 1.

    Example:
        >>> longer = length_tilt(0.5, 0.8, (1, 2, 3, 5, 8, 12, 18, 27))
        >>> bool(np.all(np.diff(longer) > 0)), bool(np.all(length_tilt(0.0, 0.8, (1, 2, 3)) == 1))
        (True, True)
    """
    lows = list(edges)
    highs = [nxt - 1 for nxt in lows[1:]] + [2 * lows[-1]]
    middles = np.log([math.sqrt(low * max(low, high)) for low, high in zip(lows, highs, strict=True)])
    factors = np.exp(shift / max(sigma, 1e-3) ** 2 * (middles - middles.mean()))
    return np.asarray(factors / factors.mean(), dtype=float)


@dataclass(frozen=True)
class Style:
    """How a persona's replies differ from its category's human turns (see the module docstring)."""

    typo_rate: float = 0.0
    register: Register | None = None
    persona: Verbosity | None = None
    category: Verbosity | None = None

    @classmethod
    def for_persona(cls, persona: Persona, group: str) -> Style:
        """The style of ``persona`` relative to the category persona ``group`` (none known: all of its traits)."""
        base = persona_library().get(group)
        if base is None or base.name == persona.name:
            return cls()
        register = persona.speech_register if persona.speech_register != base.speech_register else None
        return cls(
            typo_rate=max(0.0, persona.typo_rate - base.typo_rate),
            register=register if register != "neutral" else None,
            persona=persona.verbosity,
            category=base.verbosity,
        )

    def length_factors(self, edges: Iterable[int]) -> np.ndarray:
        """Per length bin, the persona's probability over the category's (all 1 without a difference)."""
        lows = list(edges)
        if self.persona is None or self.category is None or self.persona == self.category:
            return np.ones(len(lows))
        return np.asarray(_bin_mass(self.persona, lows) / _bin_mass(self.category, lows), dtype=float)

    def apply(self, text: str, rng: np.random.Generator, protected: Iterable[str] = ()) -> str:
        """``text`` with the excess typos and the register applied; fact values (``protected``) untouched."""
        if not text:
            return text
        if self.typo_rate > 0:
            words = frozenset(w for value in protected for w in re.findall(r"[a-z]+", value.lower()))
            text = apply_typos(text, self.typo_rate, rng, words)
        if self.register == "formal":
            text = _LONE_I.sub("I", _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text))
            if text[-1].isalnum():
                text = f"{text}."
        elif self.register == "casual":
            if text[:1].isupper() and not re.match(r"I\b|[A-Z]{2}|[A-Z][a-z]*[A-Z]", text):
                text = text[0].lower() + text[1:]
            if text.endswith(".") and not text.endswith(".."):
                text = text[:-1]
        return text
