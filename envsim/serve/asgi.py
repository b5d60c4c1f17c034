"""An ASGI middleware around OpenEnv's WebSocket sessions: an idle bound, and a quiet close.

OpenEnv's server (``openenv-core`` 0.3.0) keeps a session as long as its WebSocket is open, and its
idle reaper closes the session's environment but not the socket. :class:`WebSocketGuard` ends the
connection itself: when no frame arrives for ``idle_timeout`` seconds, the application receives a
``websocket.disconnect`` (code 1001, "going away"), so OpenEnv's handler destroys the session and the
server closes the socket. Time spent inside a step does not count: only waiting for the client does.

OpenEnv's handler reads text frames holding a JSON object: a binary frame, or JSON that is no object
(``[1]``), would end the session with an obscure error (``'text'``, ``'list' object has no attribute
'get'``). The guard answers either with an ``INVALID_JSON`` error frame instead, and the session goes on.

OpenEnv's handler also closes the socket when a session ends, after the client has gone; with
Starlette 1.x that close raises (OpenEnv expects a ``RuntimeError``, Starlette raises
``WebSocketDisconnect``) and the server logs a traceback for every ordinary disconnect. The guard
lets closing an already closed connection succeed quietly: there is nothing left to close.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

IDLE_CLOSE_CODE = 1001
"""The WebSocket close code an idle session gets ("going away")."""

BINARY_FRAME_ERROR = json.dumps(
    {"type": "error", "data": {"message": "a binary frame: send JSON text frames", "code": "INVALID_JSON"}}
)
"""The error frame (OpenEnv's ``WSErrorResponse`` shape) that answers a binary frame; the session goes on."""

NOT_AN_OBJECT_ERROR = json.dumps(
    {"type": "error", "data": {"message": "a frame must be a JSON object {...}", "code": "INVALID_JSON"}}
)
"""The error frame that answers a text frame that is no JSON object (``[1]``, ``"x"``, ``5``, ...)."""

_OBJECT_START = re.compile(r"\s*\{")


class WebSocketGuard:
    """Wrap ``app``: a WebSocket idle for ``idle_timeout`` seconds is disconnected (None: never), a binary frame is
    answered with an error frame, and closing a connection the client already closed is no error.

    Example:
        >>> async def app(scope, receive, send):
        ...     print((await receive())["type"], (await receive())["type"])
        ...     await send({"type": "websocket.close"})
        >>> async def receive():
        ...     await asyncio.sleep(10 if seen else 0)
        ...     seen.append(1)
        ...     return {"type": "websocket.connect"}
        >>> async def send(message):
        ...     raise OSError("the client has gone")
        >>> seen = []
        >>> asyncio.run(WebSocketGuard(app, idle_timeout=0.05)({"type": "websocket"}, receive, send))
        websocket.connect websocket.disconnect
    """

    def __init__(self, app: ASGIApp, idle_timeout: float | None) -> None:
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"the idle timeout must be positive, got {idle_timeout}")
        self.app = app
        self.idle_timeout = idle_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application, its ``receive`` bounded in time and its closing ``send`` quiet, for a WebSocket."""
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        seconds = self.idle_timeout

        async def bounded() -> Message:
            while True:
                try:
                    async with asyncio.timeout(seconds):
                        message = await receive()
                except TimeoutError:
                    return {"type": "websocket.disconnect", "code": IDLE_CLOSE_CODE, "reason": "idle timeout"}
                if message["type"] != "websocket.receive":
                    return message
                text = message.get("text")
                if text is not None and _OBJECT_START.match(text):
                    return message
                error = BINARY_FRAME_ERROR if text is None else NOT_AN_OBJECT_ERROR
                await send({"type": "websocket.send", "text": error})  # and wait for the next frame

        async def quiet_close(message: Message) -> None:
            try:
                await send(message)
            except OSError:  # the server's "client disconnected": raised for what is sent after the client left
                if message["type"] != "websocket.close":
                    raise

        await self.app(scope, bounded, quiet_close)
