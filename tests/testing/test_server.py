"""The local OpenAI-compatible test server, over real HTTP and through litellm (envsim.llm)."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from envsim.env import ScenarioEnv
from envsim.llm import ModelCallError, complete, litellm
from envsim.testing.server import ServerError, ServerOptions, parse_args, server_stats, start_server


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """One server for the module; faults are forced per request with the X-Envsim-Fault header."""
    with start_server(timeout_sleep_s=30) as base:
        yield base


def _post(base: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("POST", f"{parts.path}/chat/completions", json.dumps(body), {**(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _agent_request() -> dict[str, Any]:
    _, info = ScenarioEnv("RetailCancelPendingOrder").reset(seed=0)
    return {"model": "gpt-4o", "messages": info["messages"], "tools": info["tools"]}


def _call(base: str, fault: str, **kwargs: Any) -> Any:
    body = _agent_request()
    return complete(
        "openai/gpt-4o",
        body["messages"],
        tools=body["tools"],
        api_base=base,
        api_key="test",
        max_retries=0,
        num_retries=0,
        extra_headers={"X-Envsim-Fault": fault},
        _skip_mcp_handler=True,
        **kwargs,
    )


# -- plain HTTP ---------------------------------------------------------------------------------


def test_reply_is_an_openai_chat_completion_with_usage(url: str) -> None:
    status, headers, payload = _post(url, _agent_request())
    data = json.loads(payload)
    assert status == 200 and headers["content-type"] == "application/json"
    assert data["object"] == "chat.completion" and data["model"] == "gpt-4o"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "To help you, could you give me your email address, order number?"
    assert choice["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["prompt_tokens"] > 1000 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_both_paths_and_keep_alive_on_one_connection(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        for path in ("/v1/chat/completions", "/chat/completions", "/v1/chat/completions"):
            conn.request("POST", path, json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]}))
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["choices"][0]["message"]["content"] == "OK."
    finally:
        conn.close()


def test_other_routes(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", "/v1/models")
        models = json.loads(conn.getresponse().read())
        assert {m["id"] for m in models["data"]} >= {"envsim-agent", "envsim-user", "envsim-judge"}
        conn.request("GET", "/health")
        assert json.loads(conn.getresponse().read()) == {"ok": True}
        conn.request("GET", "/v1/nothing")
        response = conn.getresponse()
        assert response.status == 404 and "no route" in json.loads(response.read())["error"]["message"]
        conn.request("POST", "/v1/chat/completions", "not json")
        response = conn.getresponse()
        assert response.status == 400 and "not JSON" in json.loads(response.read())["error"]["message"]
        conn.request("POST", "/v1/chat/completions", json.dumps({"model": "x"}))
        response = conn.getresponse()
        assert response.status == 400 and "messages" in json.loads(response.read())["error"]["message"]
    finally:
        conn.close()


def test_stream_is_one_event_chunk_then_done(url: str) -> None:
    body = {**_agent_request(), "stream": True, "stream_options": {"include_usage": True}}
    status, headers, payload = _post(url, body)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = [line.removeprefix("data: ") for line in payload.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    first, last = json.loads(events[0]), json.loads(events[1])
    assert first["choices"][0]["delta"]["content"].startswith("To help you")
    assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["completion_tokens"] > 0


def test_stats_count_roles_faults_and_statuses(url: str) -> None:
    before = server_stats(url)
    _post(url, {"model": "envsim-judge", "messages": [{"role": "user", "content": "x"}]})
    _post(url, {"model": "x", "messages": [{"role": "user", "content": "x"}]}, {"X-Envsim-Fault": "500"})
    after = server_stats(url)
    assert after["requests"] == before["requests"] + 2
    assert after["by_role"]["judge"] == before["by_role"].get("judge", 0) + 1
    assert after["by_fault"]["500"] == before["by_fault"].get("500", 0) + 1
    assert after["by_status"]["500"] == before["by_status"].get("500", 0) + 1


# -- faults through litellm ---------------------------------------------------------------------


def test_429_reaches_litellm_as_a_rate_limit_error_with_retry_after(url: str) -> None:
    before = server_stats(url)["requests"]
    with pytest.raises(ModelCallError) as caught:
        _call(url, "429")
    assert isinstance(caught.value.error, litellm().RateLimitError)
    assert caught.value.error.litellm_response_headers["retry-after"] == "1"
    assert server_stats(url)["requests"] == before + 1  # litellm did not retry


def test_500_reaches_litellm_as_an_internal_server_error(url: str) -> None:
    with pytest.raises(ModelCallError) as caught:
        _call(url, "500")
    assert isinstance(caught.value.error, litellm().InternalServerError)


def test_timeout_fault_outlasts_the_client_timeout(url: str) -> None:
    start = time.monotonic()
    with pytest.raises(ModelCallError) as caught:
        _call(url, "timeout", timeout=0.5)
    assert isinstance(caught.value.error, litellm().Timeout)
    assert time.monotonic() - start < 10


def test_empty_fault_is_an_empty_reply(url: str) -> None:
    completion = _call(url, "empty")
    assert completion.text == "" and completion.tool_calls == []


def test_malformed_tool_json_reaches_the_env_as_an_error_observation(url: str) -> None:
    env = ScenarioEnv("RetailCancelPendingOrder")
    env.reset(seed=0)
    completion = _call(url, "malformed_tool_json")
    [call] = completion.tool_calls
    with pytest.raises(json.JSONDecodeError):
        json.loads(call["function"]["arguments"])
    observation, *_ = env.step(completion.raw_message)
    assert json.loads(observation)["error"]["type"] == "invalid_arguments"


def test_malformed_tool_json_breaks_a_planned_tool_call(url: str) -> None:
    body = _agent_request()
    body["messages"] = [
        *body["messages"],
        {"role": "assistant", "content": "To help you, could you give me your email address, order number?"},
        {"role": "user", "content": "My email is x@y.z and my order number is #W1."},
    ]
    _, _, good = _post(url, body)
    _, _, bad = _post(url, body, {"X-Envsim-Fault": "malformed_tool_json"})
    good_call = json.loads(good)["choices"][0]["message"]["tool_calls"][0]["function"]
    bad_call = json.loads(bad)["choices"][0]["message"]["tool_calls"][0]["function"]
    assert bad_call["name"] == good_call["name"]
    assert bad_call["arguments"] == good_call["arguments"][:-1]


def test_latency_is_added() -> None:
    with start_server(latency_ms=300) as base:
        start = time.monotonic()
        _post(base, {"model": "x", "messages": [{"role": "user", "content": "hi"}]})
        assert time.monotonic() - start >= 0.3


def test_fault_rates_are_seeded_by_body_not_by_arrival_order() -> None:
    options = {"seed": 7, "fault_429": 0.2, "fault_500": 0.2, "fault_empty": 0.2, "retry_after_s": 0}
    bodies = [{"model": "x", "messages": [{"role": "user", "content": f"hello {i}"}]} for i in range(150)]

    def outcomes(order: list[int]) -> dict[int, str]:
        seen = {}
        with start_server(**options) as base:
            for i in order:
                status, _, payload = _post(base, bodies[i])
                seen[i] = (
                    "empty"
                    if status == 200 and not json.loads(payload)["choices"][0]["message"]["content"]
                    else str(status)
                )
        return seen

    forward = outcomes(list(range(150)))
    backward = outcomes(list(reversed(range(150))))
    assert forward == backward
    counts = {kind: list(forward.values()).count(kind) for kind in ("200", "429", "500", "empty")}
    # each fault has probability 0.2 over 150 requests: mean 30, 4 sigma ~ 20
    assert all(10 <= counts[kind] <= 50 for kind in ("429", "500", "empty")), counts
    assert 40 <= counts["200"] <= 80, counts


def test_a_repeated_body_draws_afresh() -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "same"}]}
    with start_server(seed=1, fault_500=0.5) as base:
        statuses = {_post(base, body)[0] for _ in range(30)}
    assert statuses == {200, 500}


def test_fault_roles_limit_faults() -> None:
    with start_server(fault_500=1.0, fault_roles=["judge"]) as base:
        assert _post(base, {"model": "envsim-user", "messages": [{"role": "user", "content": "x"}]})[0] == 200
        assert _post(base, {"model": "envsim-judge", "messages": [{"role": "user", "content": "x"}]})[0] == 500


def test_hundreds_of_concurrent_connections() -> None:
    from envsim.testing.loadgen import run_load

    with start_server(latency_ms=200) as base:
        body = json.dumps({"model": "x", "messages": [{"role": "user", "content": "hi"}]}).encode()
        report = asyncio.run(run_load(base, requests=600, concurrency=300, body=body))
        stats = server_stats(base)
    assert report.ok == 600
    assert stats["max_in_flight"] >= 200  # requests really overlapped in the server
    assert report.seconds < 60


# -- options, CLI and process -------------------------------------------------------------------


def test_options_round_trip_through_the_command_line() -> None:
    options = ServerOptions(
        port=8123,
        latency_ms=5,
        fault_429=0.1,
        fault_timeout=0.05,
        retry_after_s=2,
        timeout_sleep_s=9,
        fault_roles=["agent", "judge"],
        judge_score="min",
        scenarios=["a.yaml", "b.yaml"],
        agent_error_rate=0.3,
    )
    assert parse_args(options.argv()) == options


def test_fault_rates_must_sum_to_at_most_one() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        ServerOptions(fault_429=0.6, fault_500=0.6)
    with pytest.raises(ValueError, match="Extra inputs"):
        ServerOptions(fault_404=0.1)  # type: ignore[call-arg]


def test_cli_prints_the_port_first() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "envsim.testing.server", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        status, _, payload = _post(f"http://127.0.0.1:{port}/v1", {"model": "envsim-checker", "messages": []})
        assert status == 200
        assert json.loads(json.loads(payload)["choices"][0]["message"]["content"]) == {"ok": True, "faults": []}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0  # SIGTERM stops it cleanly
        assert process.stdout is not None
        process.stdout.close()


def test_start_server_reports_a_failed_start() -> None:
    with pytest.raises(ServerError, match="did not report its port"), start_server(scenarios=["/no/such/file.yaml"]):
        pass


# -- no socket left open --------------------------------------------------------------------------


def test_closing_litellm_clients_leaves_no_socket_open(url: str) -> None:
    import gc
    import warnings

    from tests.llm_clients import close_litellm_clients

    _call(url, "empty")  # the sync path caches an openai.OpenAI client holding a keep-alive connection
    cache = litellm().in_memory_llm_clients_cache
    assert any(type(client).__name__ == "OpenAI" for client in cache.cache_dict.values())
    gc.collect()  # garbage of earlier tests is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert close_litellm_clients() >= 1
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert cache.cache_dict == {}
    assert close_litellm_clients() == 0  # idempotent: litellm builds new clients on the next call


def test_an_event_loop_closes_the_litellm_sessions_it_opened(url: str) -> None:
    import gc
    import warnings

    from envsim.llm import acomplete
    from tests.llm_clients import litellm_sessions

    body = _agent_request()
    asyncio.run(acomplete("openai/gpt-4o", body["messages"], api_base=url, api_key="test", num_retries=0))
    sessions = list(litellm_sessions())
    assert sessions and all(session.closed for session in sessions)  # closed with the loop that opened them
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        litellm().in_memory_llm_clients_cache.flush_cache()  # the clients become garbage
        del sessions
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    asyncio.run(acomplete("openai/gpt-4o", body["messages"], api_base=url, api_key="test", num_retries=0))  # again
