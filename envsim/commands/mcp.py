"""``envsim mcp``: a scenario's mocked tools as an MCP server.

* ``envsim mcp SCENARIO [--transport stdio|http] [--host 127.0.0.1] [--port 8000] [--max-sessions 256]
  [--idle-timeout 300] [--max-message-bytes 1048576]`` serves the scenario's tools over stdio (the
  default: an MCP client launches the command) or streamable HTTP (at ``http://HOST:PORT/mcp``;
  ``--port 0`` picks a free port, and the URL is printed on stderr; the limits bound the server's
  memory). Each MCP session has its own world; the resource ``envsim://episode/reward`` holds the
  reward so far. See :mod:`envsim.serve.mcp_server`.

Needs the ``serve`` extra (``pip install 'envsim[serve]'``). An unknown scenario exits with status 2.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from envsim.cli_common import err, require_serve_extra

MCP_EXTRA = ("mcp", "anyio", "uvicorn")
"""Modules ``envsim mcp`` needs."""


class McpTransport(StrEnum):
    """How the MCP server is reached."""

    stdio = "stdio"
    http = "http"


def _announce(url: str) -> None:
    """Say on stderr where the HTTP server listens (stdout stays free)."""
    err.print(f"envsim mcp: serving on {url}")


def register(app: typer.Typer) -> None:
    """Add ``mcp`` to the main CLI."""

    @app.command()
    def mcp(
        scenario: Annotated[str, typer.Argument(help="Scenario id or file.")],
        transport: Annotated[McpTransport, typer.Option(help="stdio (launched by the client) or http.")] = (
            McpTransport.stdio
        ),
        host: Annotated[str, typer.Option(help="Address to bind (http).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=0, max=65535, help="Port (http); 0 picks a free one.")] = 8000,
        max_sessions: Annotated[int, typer.Option(min=1, help="Most open MCP sessions (http).")] = 256,
        idle_timeout: Annotated[
            float, typer.Option(min=0.001, help="Seconds a session may stay silent before it is closed (http).")
        ] = 300.0,
        max_message_bytes: Annotated[
            int, typer.Option(min=1024, help="Largest request body (http); a larger one is refused.")
        ] = 1 << 20,
    ) -> None:
        """Serve a scenario's mocked tools over MCP: one world per session, the reward as a resource."""
        require_serve_extra("envsim mcp", MCP_EXTRA)
        import anyio

        from envsim.serve.mcp_episode import McpScenario
        from envsim.serve.mcp_server import HttpLimits, serve_http, serve_stdio

        shared = McpScenario.load(scenario)
        if transport is McpTransport.stdio:
            anyio.run(serve_stdio, shared)
        else:
            limits = HttpLimits(max_sessions, idle_timeout, max_message_bytes)
            anyio.run(lambda: serve_http(shared, host, port, limits=limits, ready=_announce))
