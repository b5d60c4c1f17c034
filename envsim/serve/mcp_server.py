"""A scenario's mocked tools as an MCP server (``envsim mcp``), on the ``mcp`` package's 2.x low-level API.

- **Tools**: the scenario's tools, with envsim's own JSON schemas (:attr:`envsim.tools.ToolSpec.openai_schema`:
  built from the tools' signatures and docstrings) as ``inputSchema``; ``readOnlyHint`` is set for
  read tools, and ``_meta`` carries envsim's flags (``envsim/write``, ``envsim/ends_episode``,
  ``envsim/escalation``) and the toolkit.
- **One world per MCP session**: each session gets its own :class:`~envsim.serve.mcp_episode.McpEpisode`,
  a copy-on-write fork of the scenario's initial world. Over stdio the process serves one client, so
  the process holds one episode. Over streamable HTTP each ``Mcp-Session-Id`` (the ``initialize``
  handshake) holds one, in the connection's own state, and it goes with the session (closed or timed
  out). The 2026-07-28 protocol has no sessions (every request stands alone), so over HTTP this
  server answers ``server/discover`` with the handshake versions only: clients in ``auto`` mode (the
  default) then connect with the handshake. A request in the 2026-07-28 envelope is refused.
- **Errors are tool errors**: an unknown tool, arguments that do not fit the schema, a missing record
  or a business rule the mock enforces give ``isError`` true, with envsim's typed error as text and as
  ``structuredContent``: ``{"error": {"type": ..., "message": ...}}`` (the observation the
  environment shows an agent), so the agent can correct itself.
- **Reward**: the read-only resource ``envsim://episode/reward`` (JSON) holds the scenario's reward
  over the session's calls so far (:meth:`~envsim.serve.mcp_episode.McpEpisode.reward`): a harness
  reads it to score an agent framework; it is a resource, not a tool, so the agent under test is
  not offered its own score.

HTTP binds 127.0.0.1 unless told otherwise, and then also checks the ``Host`` and ``Origin`` headers
(the ``mcp`` package's DNS-rebinding protection); :class:`HttpLimits` bounds the open sessions, their
idle time and the request size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, INVALID_REQUEST
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette

from envsim import __version__
from envsim.prompts import render
from envsim.serve.mcp_episode import McpEpisode, McpScenario
from envsim.tools import ToolResult, ToolSpec

Transport = Literal["stdio", "http"]

REWARD_URI = "envsim://episode/reward"
"""The resource holding the session's reward breakdown so far (JSON)."""

MCP_PATH = "/mcp"
"""Where the streamable HTTP endpoint is served."""

_EPISODE_KEY = "envsim.episode"


@dataclass(frozen=True)
class HttpLimits:
    """What bounds an HTTP server's memory (enforced by the ``mcp`` package's session manager).

    Args:
        max_sessions: Most open sessions; a client opening one more gets HTTP 503.
        idle_timeout: Seconds a session may go without a request before it is closed (its world freed).
        max_message_bytes: Largest request body; a larger one gets HTTP 413.
    """

    max_sessions: int = 256
    idle_timeout: float = 300.0
    max_message_bytes: int = 1 << 20


def mcp_tool(spec: ToolSpec) -> types.Tool:
    """An envsim tool as an MCP tool: its schema is envsim's own (see the module docstring).

    Example:
        >>> from tools_mock.retail import RetailToolkit
        >>> tool = mcp_tool(RetailToolkit.tool_specs["get_order"])
        >>> tool.input_schema["required"], tool.annotations.read_only_hint
        (['order_id'], True)
    """
    function = spec.openai_schema["function"]
    return types.Tool(
        name=spec.name,
        description=function["description"],
        input_schema=function["parameters"],
        annotations=types.ToolAnnotations(read_only_hint=not spec.flags.write, open_world_hint=False),
        _meta={
            "envsim/toolkit": spec.toolkit,
            "envsim/write": spec.flags.write,
            "envsim/ends_episode": spec.flags.ends_episode,
            "envsim/escalation": spec.flags.escalation,
        },
    )


def call_result(result: ToolResult) -> types.CallToolResult:
    """A tool's result as MCP's: the JSON text, structured too when it is an object; ``isError`` when it failed."""
    structured = json.loads(result.content)
    return types.CallToolResult(
        content=[types.TextContent(text=result.content)],
        structured_content=structured if isinstance(structured, dict) else None,
        is_error=not result.ok,
    )


def _connection_state(ctx: Any) -> dict[str, Any]:
    """The per-connection scratch state of the request's connection (``mcp.server.connection.Connection.state``).

    mcp 2.3 hands low-level handlers the connection only through the request's session; a later
    2.x gives it on the context (the SDK's planned context rework): both are looked for.
    """
    connection = getattr(ctx, "connection", None) or getattr(ctx.session, "_connection", None)
    state = getattr(connection, "state", None)
    if not isinstance(state, dict):
        raise MCPError(INVALID_REQUEST, "this mcp version gives no per-connection state (envsim needs mcp>=2.3,<3)")
    return state


class ScenarioMcpServer:
    """The MCP server of one scenario: builds the ``mcp`` low-level :class:`~mcp.server.lowlevel.Server`.

    Args:
        scenario: What the sessions share (:class:`~envsim.serve.mcp_episode.McpScenario`).
        transport: ``"stdio"`` (one client: one episode for the process) or ``"http"`` (one per session).
    """

    def __init__(self, scenario: McpScenario, transport: Transport) -> None:
        self.scenario = scenario
        self.transport = transport
        self.tools = [mcp_tool(spec) for spec in scenario.tool_specs]
        self._stdio_episode = scenario.episode() if transport == "stdio" else None
        self.server: Server[Any] = Server(
            "envsim",
            version=__version__,
            title=f"envsim: {scenario.scenario.id}",
            instructions=render(
                "agent_system.j2", domain=scenario.scenario.domain, guidelines=scenario.scenario.agent.guidelines
            ),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
        )
        if transport == "http":
            self.server.add_request_handler("server/discover", types.RequestParams, self._discover)

    def episode(self, ctx: Any) -> McpEpisode:
        """The episode of the session ``ctx`` belongs to (made on its first use)."""
        if self._stdio_episode is not None:
            return self._stdio_episode
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise MCPError(
                INVALID_REQUEST,
                f"envsim keeps one world per MCP session, and protocol {ctx.protocol_version} has no sessions: "
                "connect with the initialize handshake (the mcp client's default 'auto' mode, or mode='legacy')",
            )
        state = _connection_state(ctx)
        episode = state.get(_EPISODE_KEY)
        if not isinstance(episode, McpEpisode):
            episode = state[_EPISODE_KEY] = self.scenario.episode()
        return episode

    async def _list_tools(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self.tools)

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return call_result(self.episode(ctx).call(params.name, params.arguments or {}))

    async def _list_resources(self, ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        reward = types.Resource(
            uri=REWARD_URI,
            name="reward",
            title="Reward so far",
            description="The scenario's reward breakdown over this session's tool calls so far (read-only).",
            mime_type="application/json",
        )
        return types.ListResourcesResult(resources=[reward])

    async def _read_resource(self, ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        if str(params.uri) != REWARD_URI:
            raise MCPError(INVALID_PARAMS, f"unknown resource {params.uri!r}; resources: {REWARD_URI}")
        text = json.dumps(self.episode(ctx).reward(), sort_keys=True)
        contents = types.TextResourceContents(uri=REWARD_URI, mime_type="application/json", text=text)
        return types.ReadResourceResult(contents=[contents])

    async def _discover(self, ctx: Any, params: types.RequestParams) -> types.DiscoverResult:
        """Over HTTP: the handshake versions only (sessions hold the worlds), so ``auto`` clients do the handshake."""
        return types.DiscoverResult(
            supported_versions=list(HANDSHAKE_PROTOCOL_VERSIONS),
            capabilities=self.server.get_capabilities(),
            instructions=self.server.instructions,
        )

    def http_app(self, host: str = "127.0.0.1", limits: HttpLimits | None = None) -> Starlette:
        """The streamable HTTP app (the ``mcp`` package's), its endpoint at :data:`MCP_PATH`, within ``limits``."""
        limits = limits or HttpLimits()
        return self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            json_response=True,
            host=host,
            max_sessions=limits.max_sessions,
            session_idle_timeout=limits.idle_timeout,
            max_request_body_size=limits.max_message_bytes,
        )


async def serve_stdio(scenario: McpScenario) -> None:
    """Serve ``scenario`` to one client on this process's stdin and stdout until the client closes them."""
    server = ScenarioMcpServer(scenario, "stdio").server
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(
    scenario: McpScenario,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    limits: HttpLimits | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``scenario`` over streamable HTTP at ``http://host:port/mcp`` until stopped.

    Args:
        scenario: The scenario.
        host: The address to bind (loopback by default).
        port: The port; 0 picks a free one.
        limits: Sessions, idle time and request size (:class:`HttpLimits`).
        ready: Called with the endpoint's URL once the server listens (with the port actually bound).
    """
    app = ScenarioMcpServer(scenario, "http").http_app(host, limits)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve)
        while not server.started:
            if server.should_exit:  # uvicorn could not bind: it says why, and serve() returns
                return
            await anyio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        if ready is not None:
            ready(f"http://{host}:{bound}{MCP_PATH}")
