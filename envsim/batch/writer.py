"""Group commit on a thread of its own: finished records reach the disk within ``GROUP_WAIT``.

The batch runner hands each finished episode's record to a :class:`GroupWriter` the moment it is
built; the writer's thread appends them in groups (one ``fsync`` per group) and reports each group
back. The thread does not depend on the event loop that plays the episodes getting a pass: a run
whose episodes never wait (scripted or transcript participants, a replay) keeps its loop busy from
the first episode to the last, and a writer on that loop would store nothing before the end, so
that a ``kill -9`` during the run would lose every episode. A crash loses at most one group: the
records that finished within the last ``GROUP_WAIT`` seconds (at most ``MAX_GROUP``), and the group
being written.

Example:
    >>> groups = []
    >>> writer = GroupWriter(groups.append, lambda group, error: None)
    >>> for n in range(5):
    ...     writer.put(n)
    >>> writer.close()
    >>> sum(groups, [])
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

MAX_GROUP = 256
"""Most records appended (and fsync'd) as one group: a group this big is written at once."""

GROUP_WAIT = 0.05
"""Seconds the writer waits, after a record arrives, for others to join its group.

Episodes that call models finish one at a time; writing each alone costs an ``fsync`` per episode
and a wake-up of the event loop that plays the others. Grouped, a run at hundreds of episodes a
second makes a few appends a second. An episode counts as stored only once its group is on disk,
so the wait loses nothing that was stored; a crash loses at most the episodes of one group."""

_T = TypeVar("_T")


class GroupWriter(Generic[_T]):
    """Appends items in groups on a daemon thread (see the module docstring).

    Args:
        append: Writes one group durably (called on the writer's thread; raising stops the writing).
        done: Called on the writer's thread after each group with the group and the error of its
            append (None: stored). After an error, later groups are not written and come with it.
        wait: Seconds a group stays open after its first item.
        max_group: Most items per group.
    """

    def __init__(
        self,
        append: Callable[[list[_T]], object],
        done: Callable[[list[_T], BaseException | None], object],
        *,
        wait: float = GROUP_WAIT,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._append = append
        self._done = done
        self._wait = wait
        self._max_group = max_group
        self._pending: list[_T] = []
        self._closing = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="envsim-writer", daemon=True)
        self._thread.start()

    def put(self, item: _T) -> None:
        """Hand an item over (from any thread); it is written within ``wait`` seconds."""
        with self._ready:
            self._pending.append(item)
            if len(self._pending) == 1 or len(self._pending) >= self._max_group:
                self._ready.notify()

    def close(self) -> None:
        """Write what is pending, then stop the thread (blocks until it has)."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()

    def _take(self) -> list[_T] | None:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._pending) or self._closing)
            if not self._pending:
                return None
            if self._wait > 0:
                self._ready.wait_for(lambda: len(self._pending) >= self._max_group or self._closing, self._wait)
            group, self._pending = self._pending[: self._max_group], self._pending[self._max_group :]
            return group

    def _run(self) -> None:
        while (group := self._take()) is not None:
            if self._error is None:
                try:
                    self._append(group)
                except BaseException as error:  # disk full, folder removed: nothing more is written
                    self._error = error
            self._done(group, self._error)
