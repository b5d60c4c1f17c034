"""The coherence model: human (agent turn, reply) pairs told from mismatched ones.

The corpus tests fit on the fitting split of the shared STAR corpus and measure on the held-out
split (never text kept here); the rest use made-up pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envsim.calibrate import is_heldout
from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
from envsim.transcripts.schema import Conversation, Turn
from envsim.user.affect_scorer import rank_auc
from envsim.user.transcript.coherence import MISFIT_SHARE, CoherenceModel, corpus_pairs
from envsim.user.transcript.corpus import read_star

MADE_UP = [
    ("What is your email address?", "it's ann@x.org"),
    ("Could I get your email please?", "sure, bob.stone@example.com"),
    ("Can I have your phone number?", "555-0142"),
    ("What's the best number to reach you?", "call me at 720-555-0101"),
    ("Is there anything else I can help you with?", "no thanks, bye"),
    ("Anything else today?", "nope that's all, thank you"),
    ("What time would you like?", "around 5 pm please"),
    ("When should I book it for?", "7:30 pm tomorrow"),
]


def test_made_up_pairs_fit_and_mismatches_do_not() -> None:
    model = CoherenceModel.fit(MADE_UP * 20, seed=0)
    assert 0.0 <= model.threshold <= 1.0 and model.n_pairs == 160
    for agent, reply in MADE_UP:
        assert 0.0 <= model.score(agent, reply) <= 1.0
    assert model.score("What is your email?", "sure, carl@z.net") > model.score("What is your email?", "no thanks")
    assert model.misfit("Is there anything else I can help you with?", "555-0199")
    assert model.score("What time works?", "6 pm") > model.score("What time works?", "dan@q.org")


def test_fit_is_deterministic_per_seed() -> None:
    first, second = CoherenceModel.fit(MADE_UP * 5, seed=3), CoherenceModel.fit(MADE_UP * 5, seed=3)
    assert first.threshold == second.threshold and np.array_equal(first.weights, second.weights)
    other = CoherenceModel.fit(MADE_UP * 5, seed=4)
    assert not np.array_equal(first.weights, other.weights)


def test_fit_needs_two_agent_turns() -> None:
    with pytest.raises(ValueError, match="at least 2 distinct agent turns"):
        CoherenceModel.fit([("Your name?", "Ann")] * 3)


def test_corpus_pairs_pair_each_reply_with_the_turn_it_answers() -> None:
    turns = [
        Turn(role="instruction", text="be grumpy"),
        Turn(role="user", text="hi"),
        Turn(role="agent", text="Hello."),
        Turn(role="agent", text="Your name?"),
        Turn(role="tool", text=""),
        Turn(role="user", text="Ann"),
        Turn(role="user", text="Ann Lee, I mean"),
        Turn(role="agent", text="Thanks, bye."),
    ]
    conversations = [Conversation(corpus="plain", id=i, turns=turns) for i in ("1", "2")]
    assert corpus_pairs(conversations) == [("Your name?", "Ann")] * 2
    assert corpus_pairs(conversations, dialogue_ids={"2"}) == [("Your name?", "Ann")]


@pytest.fixture(scope="module")
def star() -> tuple[CoherenceModel, list[tuple[str, str]]]:
    """A model fitted on the fitting split, and the held-out split's human pairs."""
    folder = corpus_dir()
    assert folder is not None and Path(folder).is_dir(), f"transcript corpus not found: set {CORPUS_ENV}"
    conversations = list(read_star(folder))
    fitting = corpus_pairs(c for c in conversations if not is_heldout("star", c.id))
    heldout = corpus_pairs(c for c in conversations if is_heldout("star", c.id))
    return CoherenceModel.fit(fitting, seed=0), heldout


def test_on_held_out_dialogues_human_pairs_fit_and_shuffled_ones_do_not(
    star: tuple[CoherenceModel, list[tuple[str, str]]],
) -> None:
    model, heldout = star
    rng = np.random.default_rng(0)
    shuffled = [
        (heldout[int(j)][0], reply) for (_, reply), j in zip(heldout, rng.permutation(len(heldout)), strict=True)
    ]
    human = np.array([model.score(a, r) for a, r in heldout])
    mismatched = np.array([model.score(a, r) for a, r in shuffled])
    labels = np.r_[np.ones(len(human)), np.zeros(len(mismatched))]
    assert rank_auc(np.r_[human, mismatched], labels) > 0.85
    assert abs(float((human < model.threshold).mean()) - MISFIT_SHARE) < 0.02  # threshold set on unseen pairs
    assert model.quantile(MISFIT_SHARE) == model.threshold and model.quantile(0.01) < model.threshold
    assert abs(float((human < model.quantile(0.01)).mean()) - 0.01) < 0.01
    assert float((mismatched < model.threshold).mean()) > 0.4


def test_on_star_a_value_answers_a_request_for_it_and_not_a_closing(
    star: tuple[CoherenceModel, list[tuple[str, str]]],
) -> None:
    model, _ = star
    closing = "Is there anything else I can help you with?"
    assert model.misfit(closing, "720-555-0148")
    assert not model.misfit(closing, "No, that's all, thank you!")
    assert not model.misfit("What is your phone number?", "720-555-0148")
    assert model.score("What is your phone number?", "720-555-0148") > model.score(closing, "720-555-0148")
