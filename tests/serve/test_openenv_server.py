"""``envsim serve``: envsim scenarios over OpenEnv's protocol, driven by OpenEnv's own client.

Each server runs in this process (a uvicorn thread on 127.0.0.1, a free port) and is always shut
down; raw frames (bad input) are sent with the ``websockets`` package, as any client would.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from openenv.core import GenericEnvClient
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.errors import UnknownNameError
from envsim.registration import load_registered
from envsim.rollout import run_episode
from envsim.serve.openenv_client import EnvsimEnvClient
from envsim.serve.openenv_server import Catalog, EnvsimEnvironment, ServeConfig, ServeError, ServeStats, make_server
from envsim.serve.openenv_types import EnvsimAction, EnvsimObservation, EnvsimState

REPO = Path(__file__).resolve().parents[2]
PANIC = "MedicalSupplyPanicCaller"
CANCEL = "RetailCancelPendingOrder"
SERVED = [PANIC, CANCEL, "BankingLostCardReplacement"]
DEADLINE = 10.0


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.resolve(SERVED)


@contextmanager
def running(catalog: Catalog, **options: Any) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """A server for ``catalog`` in a thread on a free port: its base URL and a reader of its ``/stats``."""
    server = make_server(catalog, ServeConfig(port=0, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        yield url, lambda: http_json(f"{url}/stats")
    finally:
        server.should_exit = True
        thread.join(DEADLINE)
    assert not thread.is_alive(), "the server did not stop"


@pytest.fixture(scope="module")
def served(catalog: Catalog) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    with running(catalog) as found:
        yield found


def http_json(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def ws(url: str, **options: Any) -> ClientConnection:
    return connect(url.replace("http://", "ws://") + "/ws", open_timeout=DEADLINE, **options)


def exchange(conn: ClientConnection, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
    conn.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))
    answer: dict[str, Any] = json.loads(conn.recv(timeout=DEADLINE))
    return answer


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def wire(action: str | dict[str, Any]) -> dict[str, Any]:
    """An envsim agent's action as an OpenEnv action: a string travels as ``text``, a dict as it is."""
    return {"text": action} if isinstance(action, str) else action


# -- a whole episode through OpenEnv's own client ---------------------------------------------------


def test_a_full_episode_through_openenv_client_equals_the_same_episode_in_process(
    served: tuple[str, Callable[[], dict[str, Any]]],
) -> None:
    url, _ = served
    reference, breakdown = run_episode(ScenarioEnv(CANCEL), ScriptedAgent(), seed=11)

    async def play() -> tuple[list[Any], dict[str, Any]]:
        agent = ScriptedAgent()
        agent.reset(load_registered(CANCEL), np.random.default_rng(0))  # error_rate 0: the plan draws nothing
        results = []
        async with GenericEnvClient(base_url=url) as env:
            result = await env.reset(seed=11, scenario=CANCEL, episode_id="ep-1")
            results.append(result)
            while not result.done:
                result = await env.step(wire(agent.act(result.observation["text"], {})))
                results.append(result)
            state = await env.state()
        return results, state

    results, state = asyncio.run(play())
    first, last = results[0], results[-1]
    assert first.observation["text"] == reference.messages[1]["content"]
    assert first.observation["messages"] == reference.messages[:2]
    assert {t["function"]["name"] for t in first.observation["tools"]} >= {"get_order", "cancel_order"}
    assert [r.done for r in results] == [False] * (len(results) - 1) + [True]
    assert [r.reward for r in results[1:-1]] == [0.0] * (len(results) - 2)
    assert last.reward == breakdown.total == 1.0
    assert last.observation["reward_breakdown"] == breakdown.model_dump()
    assert last.observation["outcome"] == "success"
    assert last.observation["end_reason"] == reference.end_reason
    assert last.observation["carries_reward"] is True
    assert state["messages"] == reference.messages
    assert (state["episode_id"], state["step_count"], state["scenario_id"]) == ("ep-1", reference.turns, CANCEL)


def test_the_sync_wrapper_of_openenv_client_plays_too(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, _ = served
    with GenericEnvClient(base_url=url).sync() as env:
        result = env.reset(seed=7, scenario=PANIC)
        result = env.step({"name": "lookup_patient", "arguments": {"phone": "555-0142"}})
    assert '"id":"PT-9001"' in result.observation["text"]
    assert (result.done, result.reward, result.observation["turn"]) == (False, 0.0, 1)


def test_the_typed_client_reads_envsim_types(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, _ = served
    dispatch = EnvsimAction(
        name="dispatch_emergency_services",
        arguments={"patient_id": "PT-9001", "emergency": "breathing_difficulty", "address_confirmed": True},
    )

    async def play() -> tuple[list[Any], EnvsimState]:
        async with EnvsimEnvClient(base_url=url) as env:
            results = [await env.reset(seed=7, scenario=PANIC)]
            results.append(await env.step('{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}'))
            results.append(await env.step({"content": "An ambulance is on its way, help is on the way."}))
            results.append(
                await env.step(dispatch.model_copy(update={"arguments": {**dispatch.arguments, "details": "x"}}))
            )
            return results, await env.state()

    results, state = asyncio.run(play())
    assert all(isinstance(r.observation, EnvsimObservation) for r in results)
    assert '"id":"PT-9001"' in results[1].observation.text
    last = results[-1]
    assert last.done and last.observation.done and last.observation.end_reason == "agent_ended"
    assert last.reward == last.observation.reward == last.observation.reward_breakdown["total"]
    assert isinstance(state, EnvsimState) and state.step_count == 3 and state.scenario_id == PANIC
    with pytest.raises(ValidationError):  # refused before it is sent
        EnvsimEnvClient(base_url=url)._step_payload({"text": "hi", "name": "x"})


def test_a_reset_without_a_scenario_draws_one_from_the_seed(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, _ = served

    async def drawn(seed: int) -> str:
        async with GenericEnvClient(base_url=url) as env:
            scenario: str = (await env.reset(seed=seed)).observation["scenario_id"]
            return scenario

    picks = [asyncio.run(drawn(seed)) for seed in (1, 1, 2, 3, 4, 5)]
    assert picks[0] == picks[1]
    assert set(picks) <= set(SERVED) and len(set(picks)) > 1


def test_the_http_routes_openenv_defines(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, stats = served
    assert http_json(f"{url}/health") == {"status": "healthy"}
    schema = http_json(f"{url}/schema")
    assert {"text", "name", "arguments", "content", "tool_calls"} <= set(schema["action"]["properties"])
    assert {"text", "reward_breakdown", "done", "reward"} <= set(schema["observation"]["properties"])
    meta = http_json(f"{url}/metadata")
    assert meta["name"] == "envsim" and all(s in meta["description"] for s in SERVED)
    assert stats()["max_sessions"] == 256
    with pytest.raises(urllib.error.HTTPError) as stateless:  # production mode: no episode across HTTP requests
        http_json(f"{url}/step", {"action": {"text": "hi"}})
    stateless.value.close()
    assert stateless.value.code in (404, 405)


# -- sessions are isolated --------------------------------------------------------------------------


def test_two_concurrent_sessions_each_have_their_own_world(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, _ = served
    get = {"name": "get_order", "arguments": {"order_id": "#W0001"}}
    cancel = {"name": "cancel_order", "arguments": {"order_id": "#W0001", "reason": "no_longer_needed"}}

    async def both() -> tuple[str, str, str]:
        async with GenericEnvClient(base_url=url) as a, GenericEnvClient(base_url=url) as b:
            await asyncio.gather(a.reset(seed=1, scenario=CANCEL), b.reset(seed=1, scenario=CANCEL))
            cancelled = await a.step(cancel)
            seen_by_a, seen_by_b = await asyncio.gather(a.step(get), b.step(get))
            return cancelled.observation["text"], seen_by_a.observation["text"], seen_by_b.observation["text"]

    cancelled, seen_by_a, seen_by_b = asyncio.run(both())
    assert "error" not in json.loads(cancelled)
    assert json.loads(seen_by_a)["order"]["status"] == "cancelled"
    assert json.loads(seen_by_b)["order"]["status"] == "pending"


def test_sessions_get_distinct_environments() -> None:
    catalog = Catalog.resolve([CANCEL])
    stats = ServeStats()
    one, two = EnvsimEnvironment(catalog, stats), EnvsimEnvironment(catalog, stats)
    one.reset(seed=1), two.reset(seed=1)
    assert one._env is not None and two._env is not None
    assert one._env.unwrapped is not two._env.unwrapped
    assert one._env.unwrapped.session.world is not two._env.unwrapped.session.world
    assert one._env.unwrapped.user is not two._env.unwrapped.user
    one.close(), two.close()
    assert (stats.sessions_made, stats.sessions_closed) == (2, 2)


# -- bad input: an error frame or a closed session, never a stopped server ------------------------


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        ("{not json", "INVALID_JSON", "Invalid JSON"),
        (b"\x00\x01binary", "INVALID_JSON", "binary frame"),
        ("[1, 2]", "INVALID_JSON", "a frame must be a JSON object"),
        ('"reset"', "INVALID_JSON", "a frame must be a JSON object"),
        ("", "INVALID_JSON", "a frame must be a JSON object"),
        ({"type": "teleport"}, "UNKNOWN_TYPE", "teleport"),
        ({"type": "step", "data": {"text": "hi", "name": "x"}}, "VALIDATION_ERROR", "Invalid message"),
        ({"type": "step", "data": {"colour": "red"}}, "VALIDATION_ERROR", "Invalid message"),
        ({"type": "step", "data": {"text": "hi"}}, "EXECUTION_ERROR", "no episode in this session"),
        ({"type": "reset", "data": {"scenario": "MedicalSupplyPanicCall"}}, "EXECUTION_ERROR", "did you mean"),
        ({"type": "reset", "data": {"seed": 1, "level": 3}}, "EXECUTION_ERROR", "unknown reset keys ['level']"),
        ({"type": "reset", "data": {"seed": "x"}}, "EXECUTION_ERROR", "seed must be an integer"),
    ],
)
def test_a_bad_frame_gets_an_error_frame_and_the_session_goes_on(
    served: tuple[str, Callable[[], dict[str, Any]]], frame: Any, code: str, words: str
) -> None:
    url, _ = served
    with ws(url) as conn:
        error = exchange(conn, frame)
        assert error["type"] == "error"
        assert error["data"]["code"] == code
        assert words in json.dumps(error["data"])
        answer = exchange(conn, {"type": "reset", "data": {"seed": 3, "scenario": PANIC}})
        assert answer["type"] == "observation" and answer["data"]["observation"]["scenario_id"] == PANIC


def test_a_step_after_the_end_is_refused_until_the_next_reset(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, _ = served
    with ws(url) as conn:
        exchange(conn, {"type": "reset", "data": {"seed": 3, "scenario": PANIC}})
        dispatch = {
            "name": "dispatch_emergency_services",
            "arguments": {
                "patient_id": "PT-9001",
                "emergency": "breathing_difficulty",
                "address_confirmed": True,
                "details": "Collapsed.",
            },
        }
        ended = exchange(conn, {"type": "step", "data": dispatch})
        assert ended["data"]["done"] is True, ended
        refused = exchange(conn, {"type": "step", "data": {"text": "hello?"}})
        assert refused["data"]["code"] == "EXECUTION_ERROR" and "has ended" in refused["data"]["message"]
        again = exchange(conn, {"type": "reset", "data": {"seed": 3}})
        assert again["data"]["done"] is False


def test_an_unknown_session_gets_a_json_rpc_error(served: tuple[str, Callable[[], dict[str, Any]]]) -> None:
    url, stats = served
    for method, params in [
        ("tools/call", {"session_id": "no-such-session", "name": "get_order", "arguments": {}}),
        ("openenv/session/close", {"session_id": "no-such-session"}),
    ]:
        answer = http_json(f"{url}/mcp", {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert "Unknown session_id: no-such-session" in answer["error"]["message"]
    assert http_json(f"{url}/health")["status"] == "healthy"


def test_an_oversized_frame_closes_its_session_only(catalog: Catalog) -> None:
    with running(catalog, max_message_bytes=4096) as (url, stats), ws(url) as other:
        exchange(other, {"type": "reset", "data": {"seed": 1, "scenario": PANIC}})
        with ws(url) as big:
            exchange(big, {"type": "reset", "data": {"seed": 1, "scenario": PANIC}})
            big.send(json.dumps({"type": "step", "data": {"text": "x" * 10_000}}))
            with pytest.raises(ConnectionClosed) as closed:
                big.recv(timeout=DEADLINE)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
        wait_for(lambda: stats()["active_sessions"] == 1, "the oversized session was not destroyed")
        step = exchange(other, {"type": "step", "data": {"name": "lookup_patient", "arguments": {"phone": "555-0142"}}})
        assert '"id":"PT-9001"' in step["data"]["observation"]["text"]


class _SlowCatalog(Catalog):
    """A catalog whose environments take half a second over the message ``"slow"``."""

    def make(self, scenario_id: str) -> gym.Env[str, Any]:
        env = super().make(scenario_id)
        scenario_env = env.unwrapped
        assert isinstance(scenario_env, ScenarioEnv)
        astep = scenario_env.astep

        async def slow_step(action: Any) -> Any:
            if action == "slow":
                await asyncio.sleep(0.5)
            return await astep(action)

        scenario_env.astep = slow_step  # type: ignore[method-assign]
        return env


def test_a_client_that_disconnects_mid_step_loses_only_its_own_session(catalog: Catalog) -> None:
    slow = _SlowCatalog(catalog.scenarios)
    with running(slow) as (url, stats), ws(url) as other:
        exchange(other, {"type": "reset", "data": {"seed": 1, "scenario": CANCEL}})
        exchange(other, {"type": "step", "data": {"name": "get_order", "arguments": {"order_id": "#W0001"}}})
        with ws(url) as leaving:
            exchange(leaving, {"type": "reset", "data": {"seed": 1, "scenario": CANCEL}})
            leaving.send(json.dumps({"type": "step", "data": {"text": "slow"}}))
            time.sleep(0.1)  # the step has begun
            leaving.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame
        wait_for(lambda: stats()["active_sessions"] == 1, "the departed session was not destroyed")
        wait_for(lambda: stats()["sessions_closed"] == stats()["sessions_made"] - 1, "its environment was not closed")
        step = exchange(other, {"type": "step", "data": {"name": "get_order", "arguments": {"order_id": "#W0001"}}})
        assert json.loads(step["data"]["observation"]["text"])["order"]["status"] == "pending"
        assert step["data"]["observation"]["turn"] == 2


def test_max_sessions_bounds_the_sessions(catalog: Catalog) -> None:
    with running(catalog, max_sessions=2) as (url, stats), ws(url), ws(url) as second:
        with ws(url) as third:
            refused = json.loads(third.recv(timeout=DEADLINE))
            assert refused["data"]["code"] == "CAPACITY_REACHED"
            with pytest.raises(ConnectionClosed):
                third.recv(timeout=DEADLINE)
        second.close()
        wait_for(lambda: stats()["active_sessions"] == 1, "the closed session kept its slot")
        with ws(url) as fourth:
            assert exchange(fourth, {"type": "reset", "data": {"seed": 1}})["type"] == "observation"


def test_an_idle_session_is_closed(catalog: Catalog) -> None:
    with running(catalog, idle_timeout=0.3) as (url, stats), ws(url) as idle:
        exchange(idle, {"type": "reset", "data": {"seed": 1, "scenario": PANIC}})
        with pytest.raises(ConnectionClosed) as closed:
            idle.recv(timeout=DEADLINE)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        wait_for(lambda: stats()["active_sessions"] == 0, "the idle session was kept")
        assert stats()["sessions_closed"] == stats()["sessions_made"]


def test_a_closed_environment_refuses_every_request() -> None:
    env = EnvsimEnvironment(Catalog.resolve([PANIC]), ServeStats())
    env.reset(seed=1)
    env.close()
    with pytest.raises(ServeError, match="this session was closed"):
        env.step(EnvsimAction(text="hi"))
    with pytest.raises(ServeError, match="this session was closed"):
        _ = env.state


# -- no leak ---------------------------------------------------------------------------------------


def test_many_sessions_opened_and_closed_leave_nothing_behind(catalog: Catalog) -> None:
    sessions, concurrency = 400, 16
    with running(catalog) as (url, stats):
        threads_before = threading.active_count()

        async def one(i: int) -> None:
            async with GenericEnvClient(base_url=url) as env:
                result = await env.reset(seed=i, scenario=SERVED[i % len(SERVED)])
                await env.step({"text": "Hello, how can I help?"})
                assert result.observation["scenario_id"] == SERVED[i % len(SERVED)]

        async def all_of_them() -> None:
            for start in range(0, sessions, concurrency):
                await asyncio.gather(*(one(i) for i in range(start, start + concurrency)))

        started = time.monotonic()
        asyncio.run(all_of_them())
        assert time.monotonic() - started < 30
        wait_for(lambda: stats()["active_sessions"] == 0, "sessions were left open")
        counts = stats()
        assert counts["sessions_made"] == counts["sessions_closed"] >= sessions
        assert counts["episodes"] == sessions and counts["steps"] == sessions
        wait_for(lambda: threading.active_count() <= threads_before + 1, "session threads were left running")


# -- the command line --------------------------------------------------------------------------------


def envsim_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the ``envsim`` entry point in this process; its exit status."""
    from envsim.cli import main

    monkeypatch.setattr(sys, "argv", ["envsim", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def test_the_help_says_which_openenv_is_served(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert envsim_main(monkeypatch, "serve", "--help") == 0
    shown = capsys.readouterr().out
    assert "openenv-core 0.3.0" in shown and "127.0.0.1" in shown and "--max-sessions" in shown


def test_an_unknown_scenario_exits_2_before_serving(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert envsim_main(monkeypatch, "serve", "NoSuchScenario", "--port", "0") == 2
    shown = capsys.readouterr().err
    assert "unknown scenario 'NoSuchScenario'" in shown and "Traceback" not in shown


def test_a_port_in_use_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert envsim_main(monkeypatch, "serve", PANIC, "--port", str(port)) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_envsim_serve_as_a_user_runs_it(tmp_path: Path) -> None:
    log = tmp_path / "stderr.txt"
    with log.open("w") as sink:
        server = subprocess.Popen(  # no --host: the default
            [sys.executable, "-c", "from envsim.cli import main; main()", "serve", PANIC, "--port", "0"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while (
            found := re.search(r"on ws://127\.0\.0\.1:(\d+)/ws \(openenv-core 0\.3\.0 protocol", log.read_text())
        ) is None:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{found.group(1)}"
        assert http_json(f"{url}/health")["status"] == "healthy"
        with GenericEnvClient(base_url=url).sync() as env:
            result = env.reset(seed=7)
            result = env.step({"name": "lookup_patient", "arguments": {"phone": "555-0142"}})
        assert '"id":"PT-9001"' in result.observation["text"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=DEADLINE)
        finally:
            server.kill()
    assert "Traceback" not in log.read_text()


def test_a_suite_is_served_by_reference() -> None:
    banking = REPO / "scenarios" / "banking"
    catalog = Catalog.resolve([str(banking)])
    assert len(catalog.scenarios) >= 2 and all(s.startswith("Banking") for s in catalog.scenarios)
    env = EnvsimEnvironment(catalog, ServeStats())
    chosen = sorted(catalog.scenarios)[-1]
    assert env.reset(seed=2, scenario=chosen).scenario_id == chosen
    assert env.reset(seed=2).scenario_id in catalog.scenarios
    with pytest.raises(UnknownNameError, match="is not served here"):
        env.reset(seed=2, scenario=PANIC)
    env.close()


def test_catalog_refuses_an_unknown_user_before_serving() -> None:
    with pytest.raises(UnknownNameError):
        Catalog.resolve([PANIC], user="telepathic")
