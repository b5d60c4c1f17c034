"""The text space of chat observations and actions.

Gymnasium's ``spaces.Text`` accepts only letters and digits by default; a chat carries any
Unicode. :class:`ChatText` contains every ``str`` (and, for actions, an OpenAI assistant
message ``dict``), and samples short printable strings.

Gymnasium's space utilities dispatch on the space's class, and what they do for ``Text``
(index every character in the sampling charset) cannot hold a chat. This module registers
:class:`ChatText`'s own implementations, which store **Unicode code points**:

- ``spaces.flatten`` / ``unflatten`` / ``flatdim`` / ``flatten_space``: an ``int32`` vector of
  ``max_length`` code points, padded with :data:`PAD` (one past the last code point);
- the shared memory of ``gymnasium.vector.AsyncVectorEnv`` (its default, ``shared_memory=True``):
  per environment, the length and the code points; the batch of observations reads them back
  as real strings (a :class:`SharedTexts` view, copied to a ``tuple`` when the vector env copies).

Example:
    >>> space = ChatText()
    >>> space.contains("Hello! {\\"name\\": 1} ✓")
    True
    >>> space.contains(3)
    False
    >>> small = ChatText(max_length=4)
    >>> flat = spaces.flatten(small, "né✓")
    >>> flat.tolist(), spaces.unflatten(small, flat)
    ([110, 233, 10003, 1114112], 'né✓')
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any, overload

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import shared_memory
from numpy.typing import NDArray

_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "

PAD = 0x110000
"""The filler of a flattened text after its last character: one past the last Unicode code point."""

_CODEC = "utf-32-le"
_ERRORS = "surrogatepass"  # a lone surrogate is still a str, and round-trips


@functools.cache
def _charset_state(max_length: int) -> dict[str, Any]:
    """What ``spaces.Text.__init__`` sets up for the sampling charset and lengths, built once per ``max_length``.

    Gymnasium indexes the charset on every construction (twice per environment); those tables
    never change after construction, so every :class:`ChatText` of a length shares one set of them.
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


def encode(space: ChatText, text: str) -> NDArray[np.int32]:
    """The code points of ``text``; ``ValueError`` when it is not a string the space contains."""
    if not isinstance(text, str):
        raise ValueError(f"{space!r} holds strings, got {type(text).__name__}")
    if len(text) > space.max_length:
        raise ValueError(f"a text of {len(text)} characters does not fit {space!r}")
    return np.frombuffer(text.encode(_CODEC, _ERRORS), dtype="<i4").astype(np.int32, copy=False)


def decode(codes: NDArray[Any]) -> str:
    """The text of a vector of code points (every value outside ``[0, PAD)`` is padding and skipped)."""
    values = np.asarray(codes)
    kept = values[(values >= 0) & (values < PAD)]
    return kept.astype("<i4").tobytes().decode(_CODEC, _ERRORS)


# -- flattening -------------------------------------------------------------------------------


@spaces.flatdim.register(ChatText)
def _flatdim(space: ChatText) -> int:
    return space.max_length


@spaces.flatten.register(ChatText)
def _flatten(space: ChatText, x: str) -> NDArray[np.int32]:  # type: ignore[misc]  # gymnasium's fallback: Space[T]
    codes = encode(space, x)
    flat = np.full(space.max_length, PAD, dtype=np.int32)
    flat[: codes.size] = codes
    return flat


@spaces.unflatten.register(ChatText)
def _unflatten(space: ChatText, x: NDArray[np.int32]) -> str:  # type: ignore[misc]  # as for flatten
    return decode(x)


@spaces.flatten_space.register(ChatText)
def _flatten_space(space: ChatText) -> spaces.Box:
    return spaces.Box(low=0, high=PAD, shape=(space.max_length,), dtype=np.int32)


# -- shared memory of AsyncVectorEnv ----------------------------------------------------------


class SharedTexts(Sequence[str]):
    """The observations of a vector env's ``ChatText`` space, read live from its shared memory.

    Each environment's slot holds the text's length, then its code points. ``copy.deepcopy``
    (what ``AsyncVectorEnv`` does by default before returning the observations) and pickling give
    a ``tuple`` of the texts as they are now.
    """

    def __init__(self, buffer: Any, n: int, max_length: int) -> None:
        self._slots = np.frombuffer(buffer.get_obj(), dtype=np.int32).reshape((n, max_length + 1))

    def __len__(self) -> int:
        return int(self._slots.shape[0])

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        slot = self._slots[index]
        return decode(slot[1 : 1 + int(slot[0])])

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (tuple, SharedTexts)) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # it changes with every step

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __reduce__(self) -> tuple[type[tuple[str, ...]], tuple[tuple[str, ...]]]:
        return tuple, (tuple(self),)

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


@shared_memory.create_shared_memory.register(ChatText)
def _create_shared_memory(space: ChatText, n: int = 1, ctx: ModuleType | Any = None) -> Any:
    import multiprocessing

    return (ctx or multiprocessing).Array(np.dtype(np.int32).char, n * (space.max_length + 1))


@shared_memory.read_from_shared_memory.register(ChatText)
def _read_from_shared_memory(space: ChatText, shared: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared, n, space.max_length)


@shared_memory.write_to_shared_memory.register(ChatText)
def _write_to_shared_memory(space: ChatText, index: int, values: str, shared: Any) -> None:
    codes = encode(space, values)
    slots = np.frombuffer(shared.get_obj(), dtype=np.int32)
    start = index * (space.max_length + 1)
    slots[start] = codes.size
    slots[start + 1 : start + 1 + codes.size] = codes
