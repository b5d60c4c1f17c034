"""``envsim serve``: scenarios as an OpenEnv environment server (the ``serve`` extra).

``envsim serve SCENARIO|SUITE... [--host 127.0.0.1] [--port 8000] [--max-sessions N]`` serves the named
scenarios (ids, files, suites ``DIR`` or ``DIR:split``, or ``all``) over OpenEnv's protocol
(``openenv-core`` 0.3.0; see :mod:`envsim.serve.openenv_server`) until interrupted. Invalid input
(an unknown scenario, an invalid file, a missing extra) exits with status 2 before the server starts.
"""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from envsim.cli_common import err, require_serve_extra
from envsim.errors import EnvsimError

BACKLOG = 2048
"""Connections waiting to be accepted (uvicorn's default)."""

SERVE_EXTRA = ("openenv", "fastapi", "uvicorn", "websockets")
"""Modules ``envsim serve`` needs."""

_HELP = (
    "Serve scenarios as an OpenEnv environment server (openenv-core 0.3.0 protocol): WebSocket sessions at /ws "
    "(reset with seed, episode_id and scenario; step with an envsim action; state; close), /health, /schema, "
    "/metadata, /stats. One gym.make environment per session; the last step carries the reward and its "
    "breakdown. Binds 127.0.0.1 unless told otherwise."
)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the main CLI."""

    @app.command("serve", help=_HELP)
    def serve(
        scenarios: Annotated[
            list[str], typer.Argument(help="Scenario ids or files, suites (DIR or DIR:split); 'all': every registered.")
        ],
        host: Annotated[str, typer.Option(help="Address to bind (another than 127.0.0.1 exposes the server).")] = (
            "127.0.0.1"
        ),
        port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8000,
        max_sessions: Annotated[int, typer.Option(min=1, help="Most concurrent sessions (WebSockets).")] = 256,
        idle_timeout: Annotated[
            float, typer.Option(min=0.001, help="Seconds a session may stay silent before it is closed.")
        ] = 300.0,
        max_message_bytes: Annotated[
            int, typer.Option(min=1024, help="Longest frame read; a longer one closes its connection.")
        ] = 1 << 20,
        user: Annotated[str, typer.Option(help="The mock user of every session: scripted, transcript or llm.")] = (
            "scripted"
        ),
    ) -> None:
        require_serve_extra("envsim serve", SERVE_EXTRA)
        from envsim.serve.openenv_server import Catalog, ServeConfig, check_version, make_server

        version = check_version()
        catalog = Catalog.resolve(scenarios, user=user)
        config = ServeConfig(
            host=host,
            port=port,
            max_sessions=max_sessions,
            idle_timeout=idle_timeout,
            max_message_bytes=max_message_bytes,
        )
        server = make_server(catalog, config)
        listening = bind(host, port)  # bound here, so that the line below names the port (--port 0 picks one)
        bound_host, bound_port = listening.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        err.print(
            f"envsim serve: {len(catalog.scenarios)} scenarios on ws://{shown}:{bound_port}/ws "
            f"(openenv-core {version} protocol, at most {max_sessions} sessions)"
        )
        server.run(sockets=[listening])


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (the first address ``host`` resolves to), listening.

    Raises:
        EnvsimError: the address cannot be resolved or bound (in use, not local, not allowed).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, proto)
    except OSError as error:
        raise EnvsimError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(BACKLOG)  # connections made before the server runs wait in the backlog, not refused
    except OSError as error:
        listening.close()
        raise EnvsimError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listening
