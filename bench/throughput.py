"""Throughput of ``envsim generate`` against a model server that answers after a fixed latency.

The local test server (:mod:`envsim.testing.server`) runs in its own process and answers every
request after ``--latency-ms`` (200 by default), playing the agent (the LLM agent through
litellm, the real client path; the mock user is the scripted one). For each concurrency level
(1, 16, 64, 256, 512 by default) a fresh generator process runs enough episodes to reach a
steady state, as a user runs ``envsim generate`` (no call cache), and the bench prints:

- ``eps``: episodes per second (stored episodes / time running them);
- ``ideal``: the latency-bound ideal, concurrency / (model calls per episode × latency);
- ``client@c``: the client-bound ceiling at the level, what litellm alone reaches against the
  same server with as many calls in flight, right after each of the level's runs (a process that
  only calls ``litellm.acompletion``, with the requests envsim's LLM agent sends in one episode of
  the scenario, in turn: later turns carry longer histories and cost litellm about a tenth more
  CPU than the opening one; litellm and Python set up as envsim sets them up: its first calls go
  through :func:`envsim.llm.complete`, and the cyclic collector gets a run's thresholds), in
  episodes/s (its calls per second ÷ calls per episode). Every call costs the client milliseconds
  of CPU, so a client with few calls in flight falls short of the latency ideal, and one with many
  is bound by the CPU;
- ``ratio``: ``eps`` ÷ min(``ideal``, ``client@c``), the median of the level's runs' ratios, each
  run against litellm alone right after it (target: at least 0.9 at every level);
- ``best`` and ``r_best``: litellm alone at ``--client-concurrency`` (256: where it does the most
  calls per second) and ``eps`` ÷ min(``ideal``, ``best``): a stricter figure at low concurrency,
  where no client reaches its best;
- ``cpu_ms``: envsim's own CPU milliseconds per episode outside the model client, measured by
  replaying, at the level's concurrency, a run the bench records first (``--record``, then
  ``--replay``: every call answered from the records, so no client code runs; environment, user,
  agent wrapper, scoring, storage with fsync and the call layer all do);
- ``live_ms``: CPU milliseconds per episode of the live run (client included);
- ``rss_mb``: the generator process's peak resident memory.

``--repeats R`` runs each level R times (each run followed by litellm alone at the level's
concurrency and at its best) and reports medians: on a shared 2-core machine single runs move by
±15-25%.

``--workers N`` splits every level over N generator processes (concurrency / N each, started
together; episodes/s is the total over the slowest one's time), and runs N client-only
processes for the ceilings. The last line is one JSON object with every number.

Run: ``python bench/throughput.py [--latency-ms 200] [--levels 1,16,64,256,512] [--workers N]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "MedicalSupplyPanicCaller"
MODEL = "openai/envsim-agent"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args], stdout=subprocess.PIPE, text=True, env=env
    )


def _collect(processes: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    results = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a bench process failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- the processes --------------------------------------------------------------------------------


def episode_requests(url: str) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """The (messages, litellm kwargs) of every call envsim's LLM agent makes in one episode of the scenario.

    The episode is played against the server at ``url`` as a run plays it: the agent a run builds
    (:meth:`envsim.batch.runner.Participants.agent`), the scripted user, every call through the
    run's call layer (:func:`envsim.batch.session.model_calls`), whose defaults (the local server's
    key) each request carries.
    """
    from envsim.agents.llm import LLMAgent
    from envsim.batch.plan import RunOptions
    from envsim.batch.session import model_calls
    from envsim.env import ScenarioEnv
    from envsim.rollout import EpisodeDriver

    options = RunOptions(timeout=600, max_retries=0, api_base=url)
    calls = model_calls(options, "off", None)
    agent = LLMAgent(MODEL, seed=0, timeout=options.timeout, api_base=url, client=calls.for_role("agent"))
    episode = EpisodeDriver(ScenarioEnv(SCENARIO), agent)
    episode.reset(seed=0)
    requests = []
    while not episode.done:
        messages, kwargs = agent.request(episode.info)
        requests.append((messages, {**calls.defaults, **kwargs}))
        episode.turn()
    return requests


def client_only(url: str, concurrency: int, calls: int, start_at: float) -> dict[str, Any]:
    """litellm alone: ``calls`` agent requests (one episode's, in turn), ``concurrency`` at a time; calls/s and CPU."""
    from envsim.batch.runner import RUN_GC_THRESHOLDS
    from envsim.llm import litellm

    lib = litellm()
    # played through envsim's call path (lazy imports, the connection pool, an unpriced model registered at
    # price 0 after its first call: litellm set up as envsim sets it up), then called with litellm alone
    requests = episode_requests(url)

    async def main() -> tuple[float, float, int]:
        for messages, kwargs in requests:  # the async client's own set-up
            await lib.acompletion(model=MODEL, messages=messages, **kwargs)
        left = calls
        failed = 0

        async def worker() -> None:
            nonlocal left, failed
            while left > 0:
                left -= 1
                messages, kwargs = requests[left % len(requests)]
                try:
                    await lib.acompletion(model=MODEL, messages=messages, **kwargs)
                except Exception:
                    failed += 1

        time.sleep(max(0.0, start_at - time.time()))
        # the collector set up as a run sets it up (envsim.batch.runner.RUN_GC_THRESHOLDS, what exists frozen)
        gc.freeze()
        gc.set_threshold(*RUN_GC_THRESHOLDS)
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - wall, time.process_time() - cpu, failed

    wall, cpu, failed = asyncio.run(main())
    return {
        "calls": calls,
        "failed": failed,
        "seconds": wall,
        "calls_per_s": calls / wall,
        "cpu_ms_per_call": 1e3 * cpu / calls,
    }


def worker(
    url: str,
    concurrency: int,
    episodes: int,
    seed: int,
    out: str,
    start_at: float,
    recording: str,
    stagger: float | None = None,
) -> dict[str, Any]:
    """One generator: warm up, run ``episodes`` live at ``concurrency``, then replay ``recording`` for envsim's CPU.

    The live run is ``envsim generate`` as a user runs it (no call cache). The replay answers every
    call of the bench's recorded run (:func:`recorder`) from its records, at the same concurrency:
    every part of envsim runs, no client code does.
    """
    import pandas  # noqa: F401 - imported before the clock starts, as litellm is

    from envsim.batch.plan import GenerateConfig, RunOptions
    from envsim.batch.session import execute, start_replay, start_run
    from envsim.llm import litellm

    litellm()
    config = GenerateConfig(agent="llm", agent_model=MODEL)
    extra = {} if stagger is None else {"stagger": stagger}  # default: envsim's
    options = RunOptions(concurrency=concurrency, timeout=600, max_retries=0, api_base=url, **extra)
    # warm up (litellm's lazy imports and first-call set-up, scenario loading) outside the measurement
    execute(start_run(Path(out) / "warm", [SCENARIO], config, options, episodes=2, seeds=[seed + episodes]))
    store = start_run(Path(out) / "live", [SCENARIO], config, options, episodes=episodes, seeds=[seed])
    time.sleep(max(0.0, start_at - time.time()))
    live = execute(store)
    live_rss = _peak_rss_mb()
    replay = execute(start_replay(Path(recording), Path(out) / "replay", RunOptions(concurrency=concurrency)))
    return {
        "episodes": live.stored,
        "outcomes": live.outcomes,
        "model_calls": live.model_calls,
        "run_seconds": live.run_seconds,
        "live_cpu_seconds": live.cpu_seconds,
        "replayed": replay.stored,
        "replay_outcomes": replay.outcomes,
        "replay_tokens": replay.tokens,
        "replay_cpu_seconds": replay.cpu_seconds,
        "rss_mb": live_rss,
    }


def recorder(url: str, concurrency: int, episodes: int, out: str) -> dict[str, Any]:
    """The run every level replays: ``episodes`` at ``concurrency``, every model call recorded (``--record``)."""
    from envsim.batch.plan import GenerateConfig, RunOptions
    from envsim.batch.session import execute, start_run

    config = GenerateConfig(agent="llm", agent_model=MODEL)
    options = RunOptions(concurrency=concurrency, timeout=600, max_retries=0, api_base=url, cache="record")
    execute(start_run(Path(out) / "warm", [SCENARIO], config, options, episodes=2, seeds=[episodes]))
    run = execute(start_run(Path(out) / "recorded", [SCENARIO], config, options, episodes=episodes, seeds=[0]))
    return {
        "episodes": run.stored,
        "outcomes": run.outcomes,
        "tokens": run.tokens,
        "eps": run.stored / run.run_seconds,
        "live_cpu_ms": 1e3 * run.cpu_seconds / run.stored,
        "path": str(Path(out) / "recorded"),
    }


# -- the bench ------------------------------------------------------------------------------------


def _start_at(workers: int) -> float:
    """When a measurement's processes start: several import and plan first (8 s), then start together; one at once."""
    return time.time() + (8.0 if workers > 1 else 0.0)


def _clients(url: str, concurrency: int, workers: int, calls: int) -> tuple[float, float]:
    """litellm alone over ``workers`` processes: calls per second (over the slowest), mean CPU ms per call."""
    start_at = _start_at(workers)
    clients = _collect(
        [
            _spawn(
                "--role",
                "client",
                url,
                str(max(1, concurrency // workers)),
                str(max(1, calls // workers)),
                str(start_at),
            )
            for _ in range(workers)
        ]
    )
    rate = sum(c["calls"] for c in clients) / max(c["seconds"] for c in clients)
    return rate, sum(c["cpu_ms_per_call"] for c in clients) / len(clients)


def _level(
    url: str,
    concurrency: int,
    workers: int,
    episodes: int,
    folder: Path,
    recording: dict[str, Any],
    stagger: float | None = None,
) -> dict[str, Any]:
    per = max(1, concurrency // workers)
    each = max(1, episodes // workers)
    start_at = _start_at(workers)
    tail = [] if stagger is None else [str(stagger)]
    processes = [
        _spawn(
            "--role",
            "worker",
            url,
            str(per),
            str(each),
            str(10_000 * (i + 1)),
            str(folder / f"w{i}"),
            str(start_at),
            recording["path"],
            *tail,
        )
        for i in range(workers)
    ]
    results = _collect(processes)
    for result in results:
        if result["replay_outcomes"] != recording["outcomes"] or result["replay_tokens"] != recording["tokens"]:
            raise SystemExit("a replay differs from the recorded run")
    stored = sum(r["episodes"] for r in results)
    calls = sum(r["model_calls"] for r in results)
    slowest = max(r["run_seconds"] for r in results)
    return {
        "concurrency": per * workers,
        "episodes": stored,
        "calls_per_episode": calls / stored,
        "eps": stored / slowest,
        "cpu_ms": 1e3 * sum(r["replay_cpu_seconds"] for r in results) / sum(r["replayed"] for r in results),
        "live_cpu_ms": 1e3 * sum(r["live_cpu_seconds"] for r in results) / stored,
        "rss_mb": max(r["rss_mb"] for r in results),
        "failures": {k: v for r in results for k, v in r["outcomes"].items() if k != "success"},
    }


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's figures over its repeated runs: medians (peak memory: the highest), every run's figures kept."""
    row = dict(runs[0])
    for key in ("eps", "cpu_ms", "live_cpu_ms", "calls_per_episode", "ratio", "ratio_best"):
        row[key] = statistics.median(run[key] for run in runs)
    row["rss_mb"] = max(run["rss_mb"] for run in runs)
    row["eps_runs"] = [run["eps"] for run in runs]
    row["ratio_runs"] = [run["ratio"] for run in runs]
    row["failures"] = dict(sum((Counter(run["failures"]) for run in runs), Counter()))
    return row


def main() -> None:
    """Run the bench (or, with ``--role``, one of its processes)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--levels", default="1,16,64,256,512")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--episodes-per-slot", type=float, default=2.0, help="Episodes per level: this × concurrency.")
    parser.add_argument("--min-episodes", type=int, default=20)
    parser.add_argument("--client-calls", type=int, default=2000, help="Calls of litellm alone at its best.")
    parser.add_argument("--client-concurrency", type=int, default=256, help="litellm alone's best concurrency.")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="Runs of each level (each followed by litellm alone): medians of the runs' figures are reported.",
    )
    parser.add_argument(
        "--stagger", type=float, help="Seconds between the generators' slot starts (default: envsim's, RunOptions)."
    )
    parser.add_argument("--role", choices=["client", "worker", "recorder"], help=argparse.SUPPRESS)
    parser.add_argument("role_args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="The last line is one JSON object (always).")
    args = parser.parse_args()

    if args.role == "client":
        url, concurrency, calls, start_at = args.role_args
        print(json.dumps(client_only(url, int(concurrency), int(calls), float(start_at))))
        return
    if args.role == "recorder":
        url, concurrency, episodes, out = args.role_args
        print(json.dumps(recorder(url, int(concurrency), int(episodes), out)))
        return
    if args.role == "worker":
        url, concurrency, episodes, seed, out, start_at, recording, *stagger = args.role_args
        print(
            json.dumps(
                worker(
                    url,
                    int(concurrency),
                    int(episodes),
                    int(seed),
                    out,
                    float(start_at),
                    recording,
                    float(stagger[0]) if stagger else None,
                )
            )
        )
        return

    from envsim.testing.server import start_server

    levels = [int(x) for x in args.levels.split(",")]
    latency = args.latency_ms / 1000.0
    report: dict[str, Any] = {
        "latency_ms": args.latency_ms,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "scenario": SCENARIO,
        "stagger": args.stagger if args.stagger is not None else "auto (0.25 s ÷ concurrency)",
    }
    with start_server(latency_ms=args.latency_ms) as url, tempfile.TemporaryDirectory() as tmp:
        top = max(levels)
        recording = _collect(
            [
                _spawn(
                    "--role",
                    "recorder",
                    url,
                    str(min(top, args.client_concurrency)),
                    str(max(args.min_episodes, int(args.episodes_per_slot * top))),
                    str(Path(tmp) / "recording"),
                )
            ]
        )[0]
        report["recording"] = {k: v for k, v in recording.items() if k != "path"}
        print(
            f"recorded {recording['episodes']} episodes for the replays ({recording['eps']:.1f} episodes/s with"
            f" --record, {recording['live_cpu_ms']:.1f} ms CPU per episode)",
            flush=True,
        )
        print(
            f"{'conc':>5} {'episodes':>8} {'calls/ep':>8} {'eps':>8} {'ideal':>8} {'client@c':>8} {'ratio':>6}"
            f" {'best':>8} {'r_best':>6} {'cpu_ms':>7} {'live_ms':>7} {'rss_mb':>7}",
            flush=True,
        )
        rows: list[dict[str, Any]] = []
        bests: list[tuple[float, float]] = []
        for concurrency in levels:
            episodes = max(args.min_episodes, int(args.episodes_per_slot * concurrency))
            runs = []
            # each run of envsim is followed by litellm alone, at the level's concurrency and at its best, so
            # that each run is compared with the client on the machine as it was then (its speed drifts by
            # 20-30% over a bench run): a level's ratio is the median of its runs' ratios
            for repeat in range(args.repeats):
                run = _level(
                    url, concurrency, args.workers, episodes, Path(tmp) / f"c{concurrency}-{repeat}", recording
                )
                per_episode = run["calls_per_episode"]
                calls = max(30, int(3 * concurrency * per_episode))
                at_level = _clients(url, concurrency, args.workers, calls)[0] / per_episode
                bests.append(_clients(url, args.client_concurrency, args.workers, args.client_calls))
                run["ideal"] = run["concurrency"] / (per_episode * latency)
                run["client_at_level"] = at_level
                run["best"] = bests[-1][0] / per_episode
                run["ratio"] = run["eps"] / min(run["ideal"], at_level)
                run["ratio_best"] = run["eps"] / min(run["ideal"], run["best"])
                runs.append(run)
            row = _median_row(runs)
            for key in ("ideal", "client_at_level", "best"):
                row[key] = statistics.median(run[key] for run in runs)
            rows.append(row)
            print(
                f"{row['concurrency']:>5} {row['episodes']:>8} {row['calls_per_episode']:>8.2f} {row['eps']:>8.2f}"
                f" {row['ideal']:>8.2f} {row['client_at_level']:>8.2f} {row['ratio']:>6.2f}"
                f" {row['best']:>8.2f} {row['ratio_best']:>6.2f}"
                f" {row['cpu_ms']:>7.2f} {row['live_cpu_ms']:>7.1f} {row['rss_mb']:>7.0f}",
                flush=True,
            )
        report["levels"] = rows
        report["client_calls_per_s"] = statistics.median(rate for rate, _ in bests)
        report["client_calls_per_s_runs"] = [rate for rate, _ in bests]
        report["client_cpu_ms_per_call"] = statistics.median(cpu for _, cpu in bests)
        print(
            f"litellm alone (concurrency {args.client_concurrency}): {report['client_calls_per_s']:.1f} calls/s"
            f" ({report['client_cpu_ms_per_call']:.1f} ms CPU per call; from"
            f" {min(report['client_calls_per_s_runs']):.1f} to {max(report['client_calls_per_s_runs']):.1f} over"
            f" {len(bests)} runs) with {args.workers} process(es)",
            flush=True,
        )
        report["min_ratio"] = min(r["ratio"] for r in rows)
        report["min_ratio_best"] = min(r["ratio_best"] for r in rows)
        report["max_cpu_ms"] = max(r["cpu_ms"] for r in rows)
        low, high = min(rows, key=lambda r: r["concurrency"]), max(rows, key=lambda r: r["concurrency"])
        if high["concurrency"] > low["concurrency"]:
            per = max(1, high["concurrency"] // args.workers) - max(1, low["concurrency"] // args.workers)
            report["rss_mb_per_in_flight_episode"] = (high["rss_mb"] - low["rss_mb"]) / per
        print(
            f"min ratio {report['min_ratio']:.2f} (target 0.9; against litellm at its best concurrency"
            f" {report['min_ratio_best']:.2f}); envsim CPU at most {report['max_cpu_ms']:.2f} ms per episode"
            f" (target 2); RSS growth {report.get('rss_mb_per_in_flight_episode', float('nan')):.2f} MB per"
            " in-flight episode of a process (target 1)",
            flush=True,
        )
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
