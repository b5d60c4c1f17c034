"""MCP ``tools/call`` round trip of ``envsim mcp``, over stdio and over streamable HTTP.

Starts ``envsim mcp SCENARIO`` as a user does (a subprocess: launched by the ``mcp`` client for
stdio; on 127.0.0.1 with a free port for HTTP, stopped at the end), connects the ``mcp`` package's
own client, and times ``calls`` sequential ``tools/call`` requests (a read, ``get_order``) after
``warmup`` untimed ones: p50 and p99 in milliseconds, per transport. As a reference it times the
same call on an episode in this process (:meth:`envsim.serve.mcp_episode.McpEpisode.call`): what
envsim itself costs per call, the rest being the protocol, the transport and the client.

Run: ``python bench/mcp_roundtrip.py [--calls N] [--warmup N] [--json]`` (with ``--json`` the last
line is one JSON object). ``bench/serve.py`` imports :func:`measure`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from envsim.serve.mcp_episode import McpScenario

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]
TOOL = "get_order"
ARGUMENTS = {"order_id": "#W0001"}


def _summary(samples: list[float]) -> dict[str, float | int]:
    """p50 and p99 (milliseconds) of ``samples`` (seconds)."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"calls": len(samples), "p50_ms": statistics.median(ordered) * 1e3, "p99_ms": p99 * 1e3}


async def _time_calls(target: Any, calls: int, warmup: int) -> list[float]:
    """Round trips of ``calls`` sequential tool calls on one session of ``target``, after ``warmup`` calls."""
    samples: list[float] = []
    async with Client(target) as client:
        for _ in range(warmup):
            await client.call_tool(TOOL, ARGUMENTS)
        for _ in range(calls):
            start = time.perf_counter()
            result = await client.call_tool(TOOL, ARGUMENTS)
            samples.append(time.perf_counter() - start)
            if result.is_error:
                raise RuntimeError(f"{TOOL} failed: {result.content}")
    return samples


def _http_server(scenario: str, log: Path, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """``envsim mcp SCENARIO --transport http --port 0``, and its URL once it listens."""
    with log.open("w") as sink:
        server = subprocess.Popen(
            [*CLI, "mcp", scenario, "--transport", "http", "--port", "0"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(r"serving on (http://\S+)", log.read_text())
        if found is not None:
            return server, found.group(1)
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            raise RuntimeError(f"envsim mcp --transport http did not start: {log.read_text()}")
        time.sleep(0.05)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def _in_process_us(scenario: str, calls: int) -> float:
    """Median microseconds of one call on an in-process episode (envsim's own share of a round trip)."""
    episode = McpScenario.load(scenario).episode()
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        episode.call(TOOL, ARGUMENTS)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e3


def measure(scenario: str = "RetailCancelPendingOrder", calls: int = 300, warmup: int = 30) -> dict[str, Any]:
    """Round-trip p50/p99 of MCP ``tools/call`` over stdio and HTTP (see the module docstring).

    Returns:
        ``{"mcp_version", "scenario", "tool", "stdio": {"calls", "p50_ms", "p99_ms"}, "http": {...},
        "envsim_call_us"}``.
    """
    stdio = StdioServerParameters(command=CLI[0], args=[*CLI[1:], "mcp", scenario], cwd=str(REPO))
    stdio_samples = anyio.run(_time_calls, stdio, calls, warmup)
    with tempfile.TemporaryDirectory() as folder:
        server, url = _http_server(scenario, Path(folder) / "stderr.txt")
        try:
            http_samples = anyio.run(_time_calls, url, calls, warmup)
        finally:
            _stop(server)
    return {
        "mcp_version": importlib.metadata.version("mcp"),
        "scenario": scenario,
        "tool": TOOL,
        "stdio": _summary(stdio_samples),
        "http": _summary(http_samples),
        "envsim_call_us": _in_process_us(scenario, calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="RetailCancelPendingOrder")
    parser.add_argument("--calls", type=int, default=300, help="Timed calls per transport.")
    parser.add_argument("--warmup", type=int, default=30, help="Untimed calls first.")
    parser.add_argument("--json", action="store_true", help="End with one JSON object.")
    args = parser.parse_args()
    result = measure(args.scenario, args.calls, args.warmup)
    print(f"envsim mcp {args.scenario}, mcp {result['mcp_version']}, {TOOL} x {args.calls} (sequential, one session)")
    for transport in ("stdio", "http"):
        row = result[transport]
        print(f"{transport:<6} tools/call round trip  p50 {row['p50_ms']:7.2f} ms   p99 {row['p99_ms']:7.2f} ms")
    print(f"in-process McpEpisode.call (envsim's share)  {result['envsim_call_us']:.1f} us")
    if args.json:
        print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
