"""The load generator, against the test server in its own process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from envsim.testing.loadgen import agent_request, run_load
from envsim.testing.server import server_stats, start_server


def test_agent_request_is_a_first_agent_turn() -> None:
    body = json.loads(agent_request("MedicalSupplyPanicCaller"))
    assert body["messages"][0]["content"].startswith("You are a customer-service agent")
    assert body["tools"] and body["model"] == "envsim-agent"


def test_run_load_counts_statuses_and_measures() -> None:
    with start_server(fault_500=0.5, seed=3) as url:
        report = asyncio.run(run_load(url, requests=200, concurrency=16))
        stats = server_stats(url)
    assert report.requests == 200 and report.ok + report.failed == 200
    assert report.statuses == {"200": report.ok, "500": report.failed}
    assert 60 <= report.failed <= 140  # p = 0.5, 200 requests: about 4 sigma either side
    assert stats["by_role"] == {"agent": 200}
    assert report.requests_per_s > 0 and 0 < report.latency_p50_ms <= report.latency_p99_ms


def test_cli_prints_a_json_report() -> None:
    with start_server() as url:
        out = subprocess.run(
            [sys.executable, "-m", "envsim.testing.loadgen", url, "--requests", "50", "--concurrency", "5"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert json.loads(out.stdout)["ok"] == 50


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        asyncio.run(run_load("http://127.0.0.1:9/v1", requests=0))
