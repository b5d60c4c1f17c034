"""Closing the HTTP clients litellm caches, so that a test session leaves no socket open.

litellm keeps one client per provider, key and base URL for the life of the process
(``litellm.in_memory_llm_clients_cache``). A sync client (``openai.OpenAI``, litellm's
``HTTPHandler``) keeps its keep-alive connection open, which Python reports as
``ResourceWarning: unclosed <socket ...>`` at interpreter exit, after pytest has stopped watching.
The async clients belong to event loops that ``asyncio.run`` has closed by then: they cannot be
closed from another loop (that leaks their transports instead), and dropping them leaks nothing.
"""

from __future__ import annotations

import inspect
import sys


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
