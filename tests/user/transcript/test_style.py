"""A persona's traits applied to retrieved text: typos over the category's rate, register, verbosity."""

from __future__ import annotations

import numpy as np

from envsim.user.persona import Persona, load_persona
from envsim.user.transcript.style import Style

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
