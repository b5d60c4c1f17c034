"""Closing the HTTP clients litellm caches, so that tests leave no socket open.

litellm keeps one client per provider, key and base URL for the life of the process
(``litellm.in_memory_llm_clients_cache``):

* a sync client (``openai.OpenAI``, litellm's ``HTTPHandler``) keeps its keep-alive connection
  open until the interpreter exits, where Python reports ``ResourceWarning: unclosed <socket ...>``
  after pytest has stopped watching: :func:`close_litellm_clients` closes them;
* an async client's connections live in an aiohttp session bound to the event loop that made the
  call. Once ``asyncio.run`` has closed that loop they cannot be closed any more (closing a
  transport needs its loop; litellm's own clean-up of such a session leaves the sockets open), so
  :class:`ClosingLoopPolicy` makes every event loop close the sessions bound to it just before it
  closes. litellm opens a new session on the next loop that calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import warnings
from collections.abc import Iterator
from typing import Any


def close_litellm_clients() -> int:
    """Close every sync client litellm has cached and empty its cache; return how many were closed.

    Nothing happens (0) when litellm was never imported. Anything the cache held that still owns
    an open socket is garbage from here on: under ``filterwarnings = error`` pytest reports it.
    """
    lib = sys.modules.get("litellm")
    if lib is None:
        return 0
    cache = lib.in_memory_llm_clients_cache
    closed = 0
    for client in list(cache.cache_dict.values()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
            closed += 1
    cache.flush_cache()
    return closed


def litellm_sessions() -> Iterator[Any]:
    """The aiohttp sessions (open or closed) of the async clients litellm has cached."""
    lib = sys.modules.get("litellm")
    if lib is None or "aiohttp" not in sys.modules:
        return
    from aiohttp import ClientSession

    for client in list(lib.in_memory_llm_clients_cache.cache_dict.values()):
        # litellm's AsyncHTTPHandler holds its httpx client as .client, openai.AsyncOpenAI as ._client
        for httpx_client in (getattr(client, "client", None), getattr(client, "_client", None)):
            session = getattr(getattr(httpx_client, "_transport", None), "client", None)
            if isinstance(session, ClientSession):
                yield session


def _open_sessions(loop: asyncio.AbstractEventLoop) -> list[Any]:
    return [session for session in litellm_sessions() if not session.closed and session._loop is loop]


async def close_litellm_sessions() -> int:
    """Close the aiohttp sessions of litellm's cached async clients bound to the running loop; return how many."""
    sessions = _open_sessions(asyncio.get_running_loop())
    for session in sessions:
        await session.close()
    if sessions:
        await asyncio.sleep(0)  # the transports' connection_lost callbacks close the sockets
    return len(sessions)


class ClosingEventLoop(asyncio.SelectorEventLoop):
    """An event loop that closes litellm's sessions bound to it (:func:`close_litellm_sessions`) when it closes."""

    def close(self) -> None:
        """Close litellm's sessions on this loop (unless a loop runs in this thread), then the loop."""
        if not self.is_closed() and not _a_loop_runs() and _open_sessions(self):
            self.run_until_complete(close_litellm_sessions())
        super().close()


def _a_loop_runs() -> bool:
    """Whether an event loop runs in this thread (then no other can run to close sessions)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


with warnings.catch_warnings():  # event loop policies are deprecated from Python 3.14 (removal planned in 3.16)
    warnings.simplefilter("ignore", DeprecationWarning)
    _DefaultPolicy = asyncio.DefaultEventLoopPolicy


class ClosingLoopPolicy(_DefaultPolicy):  # type: ignore[valid-type,misc]
    """The default policy, whose new loops (``asyncio.run``'s included) are :class:`ClosingEventLoop`."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """A new :class:`ClosingEventLoop`."""
        return ClosingEventLoop()


@contextlib.contextmanager
def closing_event_loops() -> Iterator[None]:
    """Within the block, every new event loop is a :class:`ClosingEventLoop`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        previous = asyncio.get_event_loop_policy()
        asyncio.set_event_loop_policy(ClosingLoopPolicy())
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(previous)
