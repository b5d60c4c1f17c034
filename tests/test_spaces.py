"""The chat text space."""

from __future__ import annotations

from gymnasium import spaces

from envsim.spaces import ChatText


def test_contains_any_string_within_the_length_and_nothing_else() -> None:
    space = ChatText(max_length=5)
    assert space.contains("héllo") and space.contains("") and not space.contains("toolong")
    assert not space.contains(3) and not space.contains(None)


def test_spaces_share_the_charset_tables_but_not_their_random_generators() -> None:
    a, b = ChatText(seed=3), ChatText(seed=3)
    assert a._char_index is b._char_index  # built once, never changed
    assert [a.sample() for _ in range(5)] == [b.sample() for _ in range(5)]
    c = ChatText()
    c.seed(7)
    assert c.np_random is not a.np_random and c.np_random is not ChatText().np_random


def test_set_up_as_gymnasium_sets_up_its_text_space() -> None:
    mine = ChatText(max_length=64)
    theirs = spaces.Text(max_length=64, min_length=0, charset=mine.character_set)
    assert (mine.min_length, mine.max_length, mine.dtype, mine.shape) == (
        theirs.min_length,
        theirs.max_length,
        theirs.dtype,
        theirs.shape,
    )
    assert mine.character_set == theirs.character_set
    sample = mine.sample()
    assert isinstance(sample, str) and 1 <= len(sample) <= 64 and set(sample) <= mine.character_set
