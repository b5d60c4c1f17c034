"""A persona's traits applied to retrieved text: typos over the category's rate, register, verbosity."""

from __future__ import annotations

import numpy as np

from envsim.user.persona import Persona, load_persona
from envsim.user.transcript.style import PERSON_SPREAD, Style, length_tilt, talkativeness

LENGTH_BINS = (1, 2, 3, 5, 8, 12, 18, 27)


def test_a_category_persona_gets_no_change() -> None:
    style = Style.for_persona(load_persona("star_calm"), "star_calm")
    assert style == Style()
    assert style.apply("i lost my card. can u help", np.random.default_rng(0)) == "i lost my card. can u help"
    assert (style.length_factors(LENGTH_BINS) == 1).all()


def test_typos_only_above_the_category_rate_and_seeded() -> None:
    text = "please cancel the backpack order because it arrived broken and useless"
    below = Style.for_persona(load_persona("annoyed"), "star_annoyed")  # 0.02 < 0.0296
    assert below.typo_rate == 0 and below.apply(text, np.random.default_rng(0)) == text
    heavy = Style.for_persona(Persona(name="typist", typo_rate=0.9), "star_calm")
    first = heavy.apply(text, np.random.default_rng(1), protected=["backpack"])
    assert first != text and "backpack" in first
    assert first == heavy.apply(text, np.random.default_rng(1), protected=["backpack"])


def test_register() -> None:
    formal = Style(register="formal")
    assert formal.apply("yes i did. the card is gone", np.random.default_rng(0)) == "Yes I did. The card is gone."
    casual = Style(register="casual")
    assert casual.apply("Yes, that works.", np.random.default_rng(0)) == "yes, that works"
    assert casual.apply("I did. ATM ate it.", np.random.default_rng(0)) == "I did. ATM ate it"


def test_verbosity_prefers_the_persona_lengths() -> None:
    wordy = Persona.model_validate({"name": "wordy", "verbosity": {"mean_words": 30, "std_words": 10}})
    factors = Style.for_persona(wordy, "star_calm").length_factors(LENGTH_BINS)
    assert factors[-1] > 1 > factors[0]  # long turns preferred, one-word turns avoided


def test_length_tilt_moves_a_lognormal_median_by_the_shift() -> None:
    edges = (1, 2, 4, 8, 16, 32, 64, 128)
    words = np.exp(np.random.default_rng(0).normal(2.0, 0.8, 20_000))  # lognormal(2.0, 0.8) word counts
    bins = np.clip(np.searchsorted(edges, words, side="right") - 1, 0, len(edges) - 1)
    for shift in (-0.5, 0.5):
        weights = length_tilt(shift, 0.8, edges)[bins]
        order = np.argsort(words)
        median = words[order][np.searchsorted(np.cumsum(weights[order]), weights.sum() / 2)]
        assert abs(np.log(median) - (2.0 + shift)) < 0.2  # binned: the shift is kept to within a bin's width
    assert np.allclose(length_tilt(0.0, 0.8, edges), 1.0)


def test_talkativeness_is_seeded_and_spread_like_people() -> None:
    draws = np.array([talkativeness(np.random.default_rng(seed)) for seed in range(400)])
    assert talkativeness(np.random.default_rng(3)) == talkativeness(np.random.default_rng(3))
    assert abs(draws.std() - PERSON_SPREAD) < 0.1 and abs(draws.mean()) < 0.1
    assert talkativeness(np.random.default_rng(3), spread=0.0) == 0.0
