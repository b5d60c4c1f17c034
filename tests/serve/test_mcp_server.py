"""``envsim mcp`` run as a user runs it (a subprocess), driven by the ``mcp`` package's own client.

Every check runs over stdio (the client launches ``envsim mcp``) and over streamable HTTP (one
server on 127.0.0.1 with a free port for the module, stopped at its end).
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from envsim.registration import load_registered
from envsim.runtime import ScenarioRuntime
from envsim.serve.mcp_episode import McpEpisode, McpScenario
from envsim.serve.mcp_server import HttpLimits, ScenarioMcpServer

REPO = Path(__file__).resolve().parents[2]
SCENARIO = "RetailCancelPendingOrder"
CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]
REWARD = "envsim://episode/reward"
CANCEL = {"order_id": "#W0001", "reason": "no_longer_needed"}
STARTUP_SECONDS = 60.0
SESSIONS = 10


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ``envsim mcp --transport http`` server with no --host (so: the default) on a free port; stopped after."""
    log = tmp_path_factory.mktemp("mcp") / "stderr.txt"
    with log.open("w") as sink:
        server = subprocess.Popen(
            [*CLI, "mcp", SCENARIO, "--transport", "http", "--port", "0"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        found = None
        while found is None:
            found = re.search(r"serving on (http://\S+)", log.read_text())
            if found is None:
                assert server.poll() is None, f"the server exited: {log.read_text()}"
                assert time.monotonic() < deadline, f"the server did not start: {log.read_text()}"
                time.sleep(0.05)
        yield found.group(1)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def _stdio() -> StdioServerParameters:
    """How an MCP client launches ``envsim mcp SCENARIO`` (stdio: one session per process)."""
    return StdioServerParameters(command=CLI[0], args=[*CLI[1:], "mcp", SCENARIO], cwd=str(REPO))


async def _reward(client: Client) -> dict[str, Any]:
    result = await client.read_resource(REWARD)
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


async def _status(client: Client) -> str:
    result = await client.call_tool("get_order", {"order_id": "#W0001"})
    assert not result.is_error, result.content
    return str(result.structured_content["order"]["status"])  # type: ignore[index]


async def _error_of(client: Client, name: str, arguments: dict[str, Any]) -> dict[str, str]:
    result = await client.call_tool(name, arguments)
    assert result.is_error, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content
    return result.structured_content["error"]  # type: ignore[no-any-return,index]


async def _tools_have_envsim_schemas(client: Client) -> None:
    """tools/list: every tool of the scenario, its input schema envsim's own, read tools marked read-only."""
    registry = ScenarioRuntime(load_registered(SCENARIO)).session().tools
    expected = {schema["function"]["name"]: schema["function"] for schema in registry.schemas()}
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == set(expected)
    for name, tool in tools.items():
        assert tool.input_schema == expected[name]["parameters"]
        assert tool.description == expected[name]["description"]
        write = registry.spec(name).flags.write  # type: ignore[union-attr]
        assert tool.annotations is not None and tool.annotations.read_only_hint is (not write)
    assert tools["transfer_to_human"].meta == {
        "envsim/toolkit": "retail",
        "envsim/write": True,
        "envsim/ends_episode": True,
        "envsim/escalation": True,
    }


async def _reference_solution_is_rewarded(client: Client) -> None:
    """The reward resource on a fresh session, then after the scenario's reference solution (its expected actions)."""
    scenario = load_registered(SCENARIO)
    listed = (await client.list_resources()).resources
    assert [str(r.uri) for r in listed] == [REWARD]
    before = await _reward(client)
    assert not before["expected_state_reached"] and before["tool_calls"] == 0
    assert before["breakdown"]["components"]["final_state"]["score"] == 0.0
    assert before["breakdown"]["total"] == 0.0  # final_state is a gate
    for action in scenario.expected.actions:
        result = await client.call_tool(action.name, action.arguments)
        assert not result.is_error, result.content
    after = await _reward(client)
    assert after["expected_state_reached"] and after["end_reason"] == "running"
    assert after["tool_calls"] == len(scenario.expected.actions)
    components = after["breakdown"]["components"]
    assert components["final_state"]["score"] == 1.0
    assert components["forbidden_actions"]["score"] == 1.0
    assert components["escalation"]["score"] == 1.0
    assert after["breakdown"]["total"] == 1.0  # over the components that can be judged from tool calls
    assert after["breakdown"]["outcome"] == "truncated"  # no user closed the conversation: still running
    assert set(after["not_applicable"]) == {"required_statements"}
    assert components["required_statements"]["ran"] is False
    assert components["required_statements"]["score"] == "NaN"
    assert after["breakdown"]["measures"]["resolution"] is None


async def _bad_calls_are_typed_tool_errors(client: Client) -> None:
    """Unknown tool, wrong arguments, a missing record, a business rule refused (the order is already cancelled in
    this session: its state persisted): isError, with envsim's typed error as text and as structured content."""
    calls = (await _reward(client))["tool_calls"]
    unknown = await _error_of(client, "cancel_ordr", {})
    assert unknown["type"] == "unknown_tool" and "cancel_order" in unknown["message"]
    wrong = await _error_of(client, "cancel_order", {"order_id": 7})
    assert wrong["type"] == "invalid_arguments" and "order_id" in wrong["message"]
    missing = await _error_of(client, "get_order", {"order_id": "#W9999"})
    assert missing["type"] == "not_found"
    assert await _status(client) == "cancelled"
    refused = await _error_of(client, "cancel_order", {"order_id": "#W0001", "reason": "no_longer_needed"})
    assert refused == {"type": "rule_violation", "message": "order #W0001 is already cancelled"}
    reward = await _reward(client)
    assert reward["tool_calls"] == calls + 5
    assert reward["breakdown"]["measures"]["tool_errors"] == 4


async def _one_session_then_another(first: Client, second: Client) -> None:
    """Two sessions open at once: all of the above in the first; the second still sees the initial world."""
    await _tools_have_envsim_schemas(first)
    await _reference_solution_is_rewarded(first)
    await _bad_calls_are_typed_tool_errors(first)
    assert await _status(second) == "pending"
    assert (await _reward(second))["tool_calls"] == 1


def test_stdio_sessions() -> None:
    """Over stdio: tools with envsim's schemas, state per session, typed tool errors, the reward resource."""

    async def main() -> None:
        async with Client(_stdio()) as first, Client(_stdio()) as second:
            await _one_session_then_another(first, second)

    anyio.run(main)


def test_http_sessions(http_url: str) -> None:
    """The same over streamable HTTP, two sessions on one server; a session opened later starts afresh."""

    async def main() -> None:
        async with Client(http_url) as first, Client(http_url) as second:
            await _one_session_then_another(first, second)
        async with Client(http_url) as third:
            assert await _status(third) == "pending"

    anyio.run(main)


def test_http_binds_loopback_and_refuses_sessionless_requests(http_url: str) -> None:
    """HTTP: 127.0.0.1 by default; a client pinned to the session-less 2026-07-28 protocol is told to use sessions."""
    assert http_url.startswith("http://127.0.0.1:")

    async def main() -> None:
        async with Client(http_url) as client:
            assert client.protocol_version == "2025-11-25"  # the auto client fell back to the handshake
            with pytest.raises(MCPError, match="unknown resource"):
                await client.read_resource("envsim://episode/other")
        async with Client(http_url, mode="2026-07-28") as sessionless:
            with pytest.raises(MCPError, match="one world per MCP session"):
                await sessionless.call_tool("get_order", {"order_id": "#W0001"})

    anyio.run(main)


@contextmanager
def _served(shared: McpScenario, limits: HttpLimits | None = None) -> Iterator[str]:
    """``shared`` served over HTTP by a server in this process (so the test can look inside), on a free port."""
    app = ScenarioMcpServer(shared, "http").http_app(limits=limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/mcp"
    finally:
        server.should_exit = True
        thread.join(10)


def test_closed_http_sessions_leave_no_world_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """10 HTTP sessions opened, each writing to its world, and closed: every session's episode is freed."""
    shared = McpScenario.load(SCENARIO)
    made: list[weakref.ref[McpEpisode]] = []
    new_episode = shared.episode

    def recorded() -> McpEpisode:
        episode = new_episode()
        made.append(weakref.ref(episode))
        return episode

    monkeypatch.setattr(shared, "episode", recorded)

    async def main(url: str) -> None:
        for _ in range(SESSIONS):
            async with Client(url) as client:
                result = await client.call_tool("cancel_order", CANCEL)
                assert not result.is_error, result.content

    with _served(shared) as url:
        anyio.run(main, url)
        assert len(made) == SESSIONS
        deadline = time.monotonic() + 10
        while any(ref() is not None for ref in made) and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.05)
        assert [ref() for ref in made] == [None] * SESSIONS


def test_http_limits_refuse_one_session_too_many_and_an_oversized_request() -> None:
    """--max-sessions: one more session is refused; --max-message-bytes: a larger request is refused; the open
    session goes on."""
    limits = HttpLimits(max_sessions=1, max_message_bytes=4096)

    async def main(url: str) -> None:
        async with Client(url) as client:
            with pytest.raises(ExceptionGroup) as refused:
                async with Client(url):
                    pass
            assert refused.group_contains(MCPError, match="Too many open sessions", depth=None)
            with pytest.raises(MCPError):
                await client.call_tool("get_order", {"order_id": "#" * 5000})
            assert await _status(client) == "pending"

    with _served(McpScenario.load(SCENARIO), limits) as url:
        anyio.run(main, url)


def test_unknown_scenario_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown scenario id: a message and exit status 2, no traceback (the CLI's entry point, in this process)."""
    from envsim.cli import main

    monkeypatch.setattr(sys, "argv", ["envsim", "mcp", "NoSuchScenario"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "unknown scenario 'NoSuchScenario'" in capsys.readouterr().err
