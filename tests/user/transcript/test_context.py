"""The inverted index of agent-turn content words the transcript user retrieves by."""

from __future__ import annotations

import numpy as np

from envsim.user.transcript.context import ContentIndex, content_words


def test_similarity_ranks_the_agent_turn_that_reads_like_the_message() -> None:
    turns = ["What is your email address?", "Which flight would you like to book?", "Your order has shipped.", ""]
    index = ContentIndex.build(turns)
    scores = index.similarity("Can you confirm the email address on the account?")
    assert int(np.argmax(scores)) == 0 and scores[3] == 0.0
    assert index.similarity("When does the flight leave?").argmax() == 1
    assert (index.similarity("hello there") == 0).all()  # nothing in common: no preference
    assert ((scores >= 0) & (scores <= 1 + 1e-9)).all()


def test_content_words_drop_stop_words() -> None:
    assert content_words("Could you please tell me your phone number?") == ["number", "phone", "tell"]
