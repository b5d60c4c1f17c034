"""The chat text space."""

from __future__ import annotations

import copy
import pickle

import pytest
from gymnasium import spaces
from gymnasium.vector.utils import shared_memory

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


CHAT = 'Ça va? ✓ 你好 \U0001f600 \ud800 {"a": 1}\n'  # accents, CJK, an emoji, a lone surrogate, JSON


def test_flatten_round_trips_any_unicode() -> None:
    space = ChatText(max_length=64)
    flat = spaces.flatten(space, CHAT)
    assert flat.shape == (spaces.flatdim(space),) == (64,)
    assert spaces.flatten_space(space).contains(flat)
    assert spaces.unflatten(space, flat) == CHAT
    assert spaces.unflatten(space, spaces.flatten(space, "")) == ""


def test_flatten_refuses_a_text_longer_than_the_space() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        spaces.flatten(ChatText(max_length=3), "four")


def test_shared_memory_holds_the_real_texts() -> None:
    space = ChatText(max_length=64)
    buffer = shared_memory.create_shared_memory(space, n=2)
    view = shared_memory.read_from_shared_memory(space, buffer, n=2)
    shared_memory.write_to_shared_memory(space, 0, CHAT, buffer)
    shared_memory.write_to_shared_memory(space, 1, "second", buffer)
    assert tuple(view) == (CHAT, "second")
    shared_memory.write_to_shared_memory(space, 0, "shorter", buffer)
    assert view[0] == "shorter" and view[:] == ("shorter", "second")  # a live view, as for Box spaces
    snapshot = copy.deepcopy(view)
    assert snapshot == ("shorter", "second") and type(snapshot) is tuple
    assert pickle.loads(pickle.dumps(view)) == ("shorter", "second")
