"""``envsim serve`` under load, driven by OpenEnv's own client; and ``envsim mcp``'s round trip.

Starts ``envsim serve`` as a user does (a subprocess on 127.0.0.1, a free port, stopped at the end)
and measures, with ``openenv.core.GenericEnvClient`` sessions from this process:

1. **concurrent sessions**: ``--sessions`` sessions (default 256) opened at once, each reset, all
   open together (the server's ``/stats`` must count them), each stepping once, then closed; the
   server's resident memory with them open;
2. **tool steps per second** over WebSocket from ``--clients`` concurrent clients (default 64) for
   ``--seconds``: each client resets ``RetailCancelPendingOrder`` and calls ``get_order`` until the
   turn limit, then resets again; p50 and p99 step latency as the client sees it, and envsim's own
   share of the server's CPU (time inside envsim's ``step``, which never waits with the scripted user, over
   the server process's CPU time); the clients run in ``--client-processes`` processes (default 2);
3. **no leak**: ``--churn`` sessions (default 10,000) opened, reset and closed, 64 at a time; then no
   session is open, every environment made was closed, and the server's threads and memory are back
   near where they were;
4. the MCP ``tools/call`` round trip of ``envsim mcp`` over stdio and HTTP (``bench/mcp_roundtrip.py``'s
   :func:`measure`).

Run: ``python bench/serve.py [--sessions N] [--clients N] [--seconds S] [--churn N] [--json]``; the
last line is one JSON object. Targets: >= 256 concurrent sessions, >= 1,000 tool steps per second.
The client and the server share the machine's cores: the figure is for both on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from openenv.core import GenericEnvClient

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]
SCENARIO = "RetailCancelPendingOrder"
SERVED = [SCENARIO, "MedicalSupplyPanicCaller", "BankingLostCardReplacement"]
READ = {"name": "get_order", "arguments": {"order_id": "#W0001"}}
SESSIONS_TARGET = 256
STEPS_TARGET = 1000.0


def _server(max_sessions: int, log: Path, timeout: float = 120.0) -> tuple[subprocess.Popen[bytes], str]:
    """``envsim serve`` on a free port of 127.0.0.1, and its base URL once it listens."""
    with log.open("w") as sink:
        server = subprocess.Popen(
            [*CLI, "serve", *SERVED, "--port", "0", "--max-sessions", str(max_sessions)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + timeout
    while (found := re.search(r"on ws://(127\.0\.0\.1:\d+)/ws", log.read_text())) is None:
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"envsim serve did not start: {log.read_text()}")
        time.sleep(0.05)
    url = f"http://{found.group(1)}"
    while True:  # the line is printed just before uvicorn starts serving
        try:
            _stats(url)
            return server, url
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=30) as response:
        stats: dict[str, Any] = json.loads(response.read())
    return stats


def _proc(pid: int) -> dict[str, int]:
    """The server process's resident memory (KiB) and thread count, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+)", status)
    threads = re.search(r"Threads:\s+(\d+)", status)
    return {"rss_kib": int(rss.group(1)) if rss else -1, "threads": int(threads.group(1)) if threads else -1}


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _concurrent(url: str, pid: int, sessions: int) -> dict[str, Any]:
    """``sessions`` sessions open at once (each reset), each stepping once; then all closed."""
    clients = [GenericEnvClient(base_url=url, message_timeout_s=120) for _ in range(sessions)]
    started = time.perf_counter()
    for start in range(0, sessions, 64):  # connect in waves: the listen backlog is finite
        await asyncio.gather(*(c.connect() for c in clients[start : start + 64]))
    await asyncio.gather(*(c.reset(seed=i, scenario=SERVED[i % len(SERVED)]) for i, c in enumerate(clients)))
    opened = time.perf_counter() - started
    open_now = _stats(url)["active_sessions"]
    memory = _proc(pid)
    results = await asyncio.gather(*(c.step(READ if i % 3 == 0 else {"text": "Hello."}) for i, c in enumerate(clients)))
    stepped = sum(1 for r in results if r.observation.get("turn") == 1)
    await asyncio.gather(*(c.close() for c in clients))
    return {
        "sessions": sessions,
        "open_at_once": open_now,
        "stepped": stepped,
        "open_seconds": opened,
        "server_rss_mib": memory["rss_kib"] / 1024,
        "server_threads": memory["threads"],
    }


async def _clients(url: str, ids: list[int], start_at: float, seconds: float) -> tuple[list[float], int]:
    """Step latencies (seconds) and resets of clients ``ids`` stepping from ``start_at`` (a ``time.time()``)."""
    latencies: list[float] = []
    resets = 0

    async def client(i: int) -> None:
        nonlocal resets
        async with GenericEnvClient(base_url=url, message_timeout_s=120) as env:
            await env.reset(seed=i, scenario=SCENARIO)
            await asyncio.sleep(max(0.0, start_at - time.time()))
            stop = start_at + seconds
            while time.time() < stop:
                begun = time.perf_counter()
                result = await env.step(READ)
                latencies.append(time.perf_counter() - begun)
                if result.done:
                    await env.reset(seed=i, scenario=SCENARIO)
                    resets += 1

    await asyncio.gather(*(client(i) for i in ids))
    return latencies, resets


def _client_process(url: str, ids: list[int], start_at: float, seconds: float) -> tuple[list[float], int]:
    return asyncio.run(_clients(url, ids, start_at, seconds))


def _throughput(url: str, clients: int, seconds: float, processes: int) -> dict[str, Any]:
    """Tool steps per second from ``clients`` concurrent sessions, spread over ``processes`` client processes."""
    groups = [list(range(p, clients, processes)) for p in range(processes)]
    start_at = time.time() + 3.0  # every client connected and reset before the clock starts
    before = _stats(url)
    with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(
            pool.map(_client_process, [url] * len(groups), groups, [start_at] * len(groups), [seconds] * len(groups))
        )
    after = _stats(url)
    latencies = sorted(x for part, _ in parts for x in part)
    resets = sum(r for _, r in parts)
    server_cpu = after["process_cpu_seconds"] - before["process_cpu_seconds"]
    envsim_seconds = after["step_seconds"] - before["step_seconds"]
    steps = after["steps"] - before["steps"]
    return {
        "clients": clients,
        "client_processes": len(groups),
        "steps": len(latencies),
        "resets": resets,
        "seconds": seconds,
        "steps_per_second": len(latencies) / seconds,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "server_cpu_us_per_step": server_cpu / steps * 1e6,
        "envsim_us_per_step": envsim_seconds / steps * 1e6,
        "envsim_share_of_server_cpu": envsim_seconds / server_cpu,
    }


async def _churn(url: str, pid: int, count: int, concurrency: int = 64) -> dict[str, Any]:
    """``count`` sessions opened, reset and closed, ``concurrency`` at a time; what is left after."""
    before = _stats(url)
    proc_before = _proc(pid)

    async def one(i: int) -> None:
        async with GenericEnvClient(base_url=url, message_timeout_s=120) as env:
            await env.reset(seed=i, scenario=SERVED[i % len(SERVED)])

    started = time.perf_counter()
    for start in range(0, count, concurrency):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + concurrency))))
    wall = time.perf_counter() - started
    deadline = time.monotonic() + 30
    while (after := _stats(url))["active_sessions"] and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # session threads end after their executor's shutdown
    proc_after = _proc(pid)
    made = after["sessions_made"] - before["sessions_made"]
    closed = after["sessions_closed"] - before["sessions_closed"]
    return {
        "sessions": count,
        "wall_seconds": wall,
        "sessions_per_second": count / wall,
        "active_after": after["active_sessions"],
        "made": made,
        "closed": closed,
        "leaked": made - closed + after["active_sessions"],
        "server_threads_before": proc_before["threads"],
        "server_threads_after": proc_after["threads"],
        "server_rss_mib_before": proc_before["rss_kib"] / 1024,
        "server_rss_mib_after": proc_after["rss_kib"] / 1024,
    }


def _mcp(calls: int) -> dict[str, Any]:
    """``bench/mcp_roundtrip.py``'s figures (its own module, beside this one)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mcp_roundtrip import measure

    figures: dict[str, Any] = measure(calls=calls)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=256, help="Sessions open at once.")
    parser.add_argument("--clients", type=int, default=64, help="Concurrent clients of the throughput run.")
    parser.add_argument("--seconds", type=float, default=10.0, help="Length of the throughput run.")
    parser.add_argument("--client-processes", type=int, default=2, help="Processes the clients run in.")
    parser.add_argument("--churn", type=int, default=10_000, help="Sessions opened and closed in the leak check.")
    parser.add_argument("--mcp-calls", type=int, default=300, help="Timed MCP tools/call per transport (0: skip).")
    parser.add_argument("--json", action="store_true", help="End with one JSON object on the last line.")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _server(max(args.sessions, args.clients) + 8, Path(tmp) / "serve.log")
        try:
            concurrent = asyncio.run(_concurrent(url, server.pid, args.sessions))
            throughput = _throughput(url, args.clients, args.seconds, args.client_processes)
            churn = asyncio.run(_churn(url, server.pid, args.churn))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    mcp = _mcp(args.mcp_calls) if args.mcp_calls else None

    print(
        f"concurrent sessions: {concurrent['open_at_once']} open at once (target {SESSIONS_TARGET}, ratio "
        f"{concurrent['open_at_once'] / SESSIONS_TARGET:.2f}), {concurrent['stepped']} stepped; opened and reset in "
        f"{concurrent['open_seconds']:.2f} s; server {concurrent['server_rss_mib']:.0f} MiB, "
        f"{concurrent['server_threads']} threads"
    )
    print(
        f"tool steps over WebSocket, {throughput['clients']} clients in {throughput['client_processes']} processes: "
        f"{throughput['steps_per_second']:,.0f}/s "
        f"(target {STEPS_TARGET:,.0f}, ratio {throughput['steps_per_second'] / STEPS_TARGET:.2f}); "
        f"p50 {throughput['p50_ms']:.2f} ms, p99 {throughput['p99_ms']:.2f} ms; server CPU "
        f"{throughput['server_cpu_us_per_step']:.0f} us/step, of which envsim's step "
        f"{throughput['envsim_us_per_step']:.0f} us ({throughput['envsim_share_of_server_cpu']:.1%})"
    )
    print(
        f"leak check: {churn['sessions']:,} sessions opened and closed in {churn['wall_seconds']:.1f} s "
        f"({churn['sessions_per_second']:.0f}/s); open after: {churn['active_after']}, leaked: {churn['leaked']}; "
        f"server threads {churn['server_threads_before']} -> {churn['server_threads_after']}, "
        f"memory {churn['server_rss_mib_before']:.0f} -> {churn['server_rss_mib_after']:.0f} MiB"
    )
    if mcp is not None:
        print(f"mcp tools/call round trip: {json.dumps(mcp, sort_keys=True)}")
    load_after = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    if args.json:
        payload = {
            "openenv_core": importlib.metadata.version("openenv-core"),
            "concurrent": concurrent,
            "throughput": throughput,
            "churn": churn,
            "mcp": mcp,
            "targets": {"sessions": SESSIONS_TARGET, "steps_per_second": STEPS_TARGET},
            "ratios": {
                "sessions": concurrent["open_at_once"] / SESSIONS_TARGET,
                "steps_per_second": throughput["steps_per_second"] / STEPS_TARGET,
            },
            "load_average": [load_before[0], load_after[0]],
        }
        print(json.dumps(payload, sort_keys=True))


if __name__ == "__main__":
    main()
