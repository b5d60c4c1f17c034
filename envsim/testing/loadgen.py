"""A light load generator for the test server: how many chat completions per second it serves.

It speaks plain HTTP/1.1 with keep-alive over asyncio streams (no litellm, no HTTP library), so
that the client costs little CPU and the number measured is the server's. Run it in a process of
its own, next to a server started with ``python -m envsim.testing.server``:

    python -m envsim.testing.loadgen http://127.0.0.1:PORT/v1 --concurrency 64 --requests 5000

It prints a :class:`LoadReport` as JSON. The default request is one agent turn of a shipped
scenario (system prompt, opening line, tool schemas), as :class:`~envsim.agents.llm.LLMAgent`
sends it; ``--body FILE`` sends a request body of your own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field


class LoadReport(BaseModel):
    """What a load run measured."""

    model_config = ConfigDict(extra="forbid")

    requests: int = Field(ge=0, description="Requests sent.")
    ok: int = Field(ge=0, description="Responses with status 200.")
    failed: int = Field(ge=0, description="Requests with another status or a connection error.")
    concurrency: int = Field(ge=1, description="Connections used, each with one request in flight.")
    seconds: float = Field(ge=0, description="Wall-clock time of the run.")
    requests_per_s: float = Field(ge=0, description="Completed requests per second.")
    latency_p50_ms: float = Field(ge=0, description="Median request latency.")
    latency_p99_ms: float = Field(ge=0, description="99th-percentile request latency.")
    statuses: dict[str, int] = Field(default_factory=dict, description="Responses by status ('error': no response).")


def agent_request(scenario_id: str = "RetailCancelPendingOrder", seed: int = 0) -> bytes:
    """The body of the first agent turn of ``scenario_id``, as LLMAgent sends it."""
    from envsim.env import ScenarioEnv

    env = ScenarioEnv(scenario_id)
    _, info = env.reset(seed=seed)
    body = {"model": "envsim-agent", "messages": info["messages"], "tools": info["tools"], "temperature": 0.0}
    return json.dumps(body).encode()


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def run_load(url: str, *, requests: int = 2000, concurrency: int = 64, body: bytes | None = None) -> LoadReport:
    """Send ``requests`` chat completions to ``url`` over ``concurrency`` keep-alive connections."""
    if concurrency < 1 or requests < 1:
        raise ValueError("requests and concurrency must be >= 1")
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + "/chat/completions"
    payload = body if body is not None else agent_request()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                try:
                    status = await _one(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    statuses["error"] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - start)
                statuses[str(status)] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
    seconds = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    ok = statuses.get("200", 0)
    return LoadReport(
        requests=requests,
        ok=ok,
        failed=requests - ok,
        concurrency=concurrency,
        seconds=seconds,
        requests_per_s=len(latencies) / seconds if seconds > 0 else 0.0,
        latency_p50_ms=pct(0.5),
        latency_p99_ms=pct(0.99),
        statuses=dict(statuses),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """The command line (``--help`` lists the options); prints the report as JSON."""
    parser = argparse.ArgumentParser(prog="python -m envsim.testing.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("url", help="The server's base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--body", type=Path, help="A JSON request body to send instead of an agent turn.")
    parser.add_argument("--scenario", default="RetailCancelPendingOrder", help="Scenario of the default agent turn.")
    args = parser.parse_args(argv)
    body = args.body.read_bytes() if args.body else agent_request(args.scenario)
    report = asyncio.run(run_load(args.url, requests=args.requests, concurrency=args.concurrency, body=body))
    print(report.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
