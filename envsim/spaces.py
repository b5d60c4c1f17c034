"""The text space of chat observations and actions.

Gymnasium's ``spaces.Text`` accepts only letters and digits by default; a chat carries any
Unicode. :class:`ChatText` contains every ``str`` (and, for actions, an OpenAI assistant
message ``dict``), and samples short printable strings.

Example:
    >>> space = ChatText()
    >>> space.contains("Hello! {\\"name\\": 1} ✓")
    True
    >>> space.contains(3)
    False
"""

from __future__ import annotations

import functools
import string
from typing import Any

import numpy as np
from gymnasium import spaces

_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "


@functools.cache
def _charset_state(max_length: int) -> dict[str, Any]:
    """What ``spaces.Text.__init__`` sets up for the sampling charset and lengths, built once per ``max_length``.

    Gymnasium indexes the charset on every construction (tens of microseconds, twice per
    environment); those tables never change after construction, so every :class:`ChatText`
    of a length shares one set of them.
    """
    return dict(vars(spaces.Text(max_length=max_length, min_length=0, charset=_SAMPLE_CHARSET)))


class ChatText(spaces.Text):
    """A text space that contains any string of at most ``max_length`` characters."""

    def __init__(self, max_length: int = 1_000_000, *, seed: int | np.random.Generator | None = None) -> None:
        # Text.__init__'s charset tables, shared (see _charset_state); the space's own RNG, shape and dtype
        # are then set by Space.__init__, as Text.__init__ sets them
        vars(self).update(_charset_state(max_length))
        spaces.Space.__init__(self, dtype=str, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A short random printable string (a valid message action)."""
        length = int(self.np_random.integers(1, 64))
        chars = self.np_random.choice(list(_SAMPLE_CHARSET), size=length)
        return "".join(chars)

    def contains(self, x: Any) -> bool:
        """True for any string not longer than ``max_length``."""
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"ChatText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatText) and other.max_length == self.max_length
