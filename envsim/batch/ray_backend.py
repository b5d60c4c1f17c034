"""``--backend ray``: the same batch job with its episodes sharded over Ray workers.

The driver (the process that holds the run directory's lock) plans as usual, splits the
episodes still to run into one shard per worker (round robin, so every worker gets a mix of
scenarios) and starts one Ray task per shard. Each task plays its shard with the ordinary
asyncio runner (:class:`~envsim.batch.runner.BatchRunner`, ``concurrency / workers`` episodes in
flight) and streams the finished episode records back to the driver as they come (a Ray
streaming generator); the driver appends them to the run's store, one ``fsync`` per message, so
an episode counts as stored exactly as with the local backend. Workers never touch the run
directory.

Everything else is the local backend's: episode ids and trajectories do not depend on the
backend (nor on which worker played an episode), a resume runs exactly the episodes without a
final outcome (the store dedupes by episode id), the manifest gets a session, the Parquet table
is rewritten, and the result is the same :class:`~envsim.batch.session.RunSummary`.

Limits: ``--record`` is refused (several workers cannot share one call log yet; record with the
local backend); ``--replay`` needs the recorded calls folder on every worker's file system, and a
judge rubric file likewise. Workers need envsim installed; scenarios travel with the tasks.

Usage::

    from envsim.batch.ray_backend import run_with_ray
    summary = run_with_ray(store.read_plan(), store, store.read_manifest().config)

``ray.init`` is called (a local cluster, or ``address``/``RAY_ADDRESS``) unless Ray is already
initialised; a cluster started here is shut down at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from rich.console import Console

from envsim.batch.cache import CallLog, ModelCalls
from envsim.batch.plan import EpisodeSpec, GenerateConfig, RunOptions
from envsim.batch.runner import BatchRunner, RunStats, on_signals
from envsim.batch.session import (
    RunSummary,
    _close_session,
    _open_session,
    _pending_work,
    _raise_fatal,
    model_calls,
)
from envsim.batch.store import EpisodeRecord, RunStore
from envsim.errors import RayBackendError
from envsim.scenario import Scenario

RECORDS_PER_MESSAGE = 256
"""Most records a worker sends back in one message (and the driver appends with one fsync)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayBackendError("--backend ray needs Ray: pip install 'envsim[distributed]'") from None
    return ray


def worker_calls(options: RunOptions) -> ModelCalls:
    """The model-call layer of one worker: the run's retry policy, replay from the run's records if asked."""
    log = CallLog(options.cache_dir) if options.cache == "replay" and options.cache_dir else None
    return model_calls(options, options.cache if log is not None else "off", log)


class _Sink:
    """Stands in for the store inside a worker: appended records go to the driver (via a queue)."""

    def __init__(self, out: queue.Queue[str | None]) -> None:
        self.out = out

    def append(self, records: Sequence[EpisodeRecord]) -> int:
        for record in records:
            self.out.put(record.to_line())
        return len(records)


def play_shard(
    specs: Sequence[EpisodeSpec],
    scenarios: Mapping[str, Scenario],
    config: GenerateConfig,
    options: RunOptions,
    *,
    batch: int = RECORDS_PER_MESSAGE,
) -> Iterator[dict[str, Any]]:
    """Play ``specs`` with the asyncio runner; yield ``{"records": [line, ...]}`` messages, then ``{"done": ...}``.

    This is the body of a Ray task (see :func:`run_with_ray`), usable without Ray. The runner
    runs on a thread of its own; records are yielded as soon as they are finished. The last
    message says how the shard ended: ``fatal`` (the error that stopped it, or None),
    ``interrupted``, ``retries``, ``run_seconds``, ``cpu_seconds``, ``peak_in_flight``.
    """
    from envsim.llm import litellm

    lines: queue.Queue[str | None] = queue.Queue()
    calls = worker_calls(options)
    runner = BatchRunner(cast(RunStore, _Sink(lines)), specs, dict(scenarios), config, options, calls)
    if (
        specs
        and options.cache != "replay"
        and (config.agent == "llm" or config.user == "llm" or config.judge_rubric or config.judge_model)
    ):
        litellm()  # imported before the loop starts, as the local backend does

    async def run() -> None:
        try:
            await runner.run()
        finally:
            calls.close()

    def main() -> None:
        try:
            asyncio.run(run())
        except BaseException as error:  # reported to the driver, never lost
            runner.fatal = runner.fatal or error
        finally:
            lines.put(None)

    thread = threading.Thread(target=main, name="envsim-shard", daemon=True)
    thread.start()
    finished = False
    while not finished:
        first = lines.get()
        group: list[str] = []
        if first is None:
            finished = True
        else:
            group.append(first)
            while len(group) < batch:
                try:
                    item = lines.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    finished = True
                    break
                group.append(item)
        if group:
            yield {"records": group}
    thread.join()
    fatal = runner.fatal
    yield {
        "done": True,
        "fatal": None if fatal is None else f"{type(fatal).__name__}: {fatal}",
        "interrupted": runner.interrupted,
        "retries": calls.stats.retries,
        "run_seconds": runner.stats.run_seconds,
        "cpu_seconds": runner.stats.cpu_seconds,
        "peak_in_flight": runner.stats.peak_in_flight,
    }


def _shard_task(
    specs: list[EpisodeSpec], scenarios: dict[str, Scenario], config: GenerateConfig, options: RunOptions
) -> Iterator[dict[str, Any]]:
    yield from play_shard(specs, scenarios, config, options)


class RayRunner:
    """Runs ``todo`` into ``store`` on Ray workers; a drop-in for :class:`~envsim.batch.runner.BatchRunner`.

    Same constructor and the same attributes the session reads (``run()``, ``stats``, ``calls``,
    ``fatal``, ``interrupted``); ``calls`` here only totals what the workers report (retries,
    tokens, cost) for the progress bar and the summary. ``workers`` defaults to the cluster's CPUs.
    """

    def __init__(
        self,
        store: RunStore,
        todo: Sequence[EpisodeSpec],
        scenarios: dict[str, Scenario],
        config: GenerateConfig,
        options: RunOptions,
        calls: ModelCalls | None = None,
        *,
        stats: RunStats | None = None,
        on_stored: Callable[[Sequence[EpisodeRecord]], None] | None = None,
        workers: int | None = None,
    ) -> None:
        if options.cache == "record":
            raise RayBackendError(
                "--backend ray cannot record model calls yet (workers would share one call log): record with the"
                " local backend, or run without --record"
            )
        self.store = store
        self.todo = list(todo)
        self.scenarios = scenarios
        self.config = config
        self.options = options
        self.calls = calls or ModelCalls()
        self.stats = stats or RunStats()
        self.stats.todo = len(self.todo)
        self.on_stored = on_stored
        self.workers = workers
        self.fatal: BaseException | None = None
        self.interrupted = False
        self.shards: list[int] = []
        self._stop = threading.Event()

    def _plan_shards(self, ray: Any) -> list[list[EpisodeSpec]]:
        # the cluster's CPUs, not those free at this instant (tasks of a previous job may still hold some)
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        count = max(1, min(self.workers or cpus, len(self.todo)))
        return [self.todo[i::count] for i in range(count)]

    def _store(self, lines: list[str]) -> None:
        records = [EpisodeRecord.from_line(line) for line in lines]
        self.store.append(records)
        for record in records:
            self.stats.finished += 1
            self.stats.add(record)
            for usage in record.usage.values():
                self.calls.stats.usage.include(usage)
                self.calls.stats.calls += usage.calls
        if self.on_stored is not None:
            self.on_stored(records)

    def _drive(self) -> None:
        ray = _ray()
        shards = self._plan_shards(ray)
        self.shards = [len(s) for s in shards]
        per_worker = max(1, math.ceil(self.options.concurrency / len(shards)))
        options = self.options.model_copy(update={"concurrency": per_worker})
        task = ray.remote(num_cpus=1, num_returns="streaming", max_retries=0)(_shard_task)
        scenarios = ray.put(self.scenarios)
        pending = [task.remote(shard, scenarios, self.config, options) for shard in shards]
        capacity = per_worker * len(shards)  # the workers' episodes in flight, as far as the driver can tell
        self.stats.in_flight = self.stats.peak_in_flight = min(len(self.todo), capacity)
        try:
            while pending and not self._stop.is_set():
                ready, _ = ray.wait(pending, num_returns=1, timeout=0.5)
                for generator in ready:
                    try:
                        message = ray.get(next(generator))
                    except StopIteration:
                        pending.remove(generator)
                        continue
                    except Exception as error:  # a worker died or raised outside the runner
                        self.fatal = self.fatal or RayBackendError(f"a Ray worker failed: {error}")
                        self._stop.set()
                        break
                    if "records" in message:
                        self._store(message["records"])
                        self.stats.in_flight = max(0, min(capacity, self.stats.todo - self.stats.stored))
                    else:
                        self._finish_shard(message)
        except BaseException as error:  # the store failed (disk full...): stop; nothing unsynced counts as stored
            self.fatal = self.fatal or error
        finally:
            for generator in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(generator, force=True)
            self.stats.in_flight = 0

    def _finish_shard(self, message: dict[str, Any]) -> None:
        self.calls.stats.retries += int(message.get("retries", 0))
        self.stats.cpu_seconds += float(message.get("cpu_seconds", 0.0))
        if message.get("fatal") and self.fatal is None:
            self.fatal = RayBackendError(f"a shard stopped the run: {message['fatal']}")
            self._stop.set()

    def _interrupt(self) -> None:
        self.interrupted = True
        self._stop.set()

    async def run(self) -> RunStats:
        """Run every episode of ``todo`` on the workers; returns the figures (see also :attr:`fatal`)."""
        wall = time.perf_counter()
        with on_signals(self._interrupt):
            try:
                if self.todo:
                    await asyncio.to_thread(self._drive)
            finally:
                self.stats.run_seconds = time.perf_counter() - wall
        return self.stats


def run_with_ray(
    plan: Sequence[EpisodeSpec],
    store: RunStore,
    config: GenerateConfig,
    *,
    overrides: Mapping[str, Any] | None = None,
    resumed: bool = False,
    progress: bool = False,
    console: Console | None = None,
    workers: int | None = None,
    address: str | None = None,
) -> RunSummary:
    """Run the planned episodes of ``store`` without a final outcome on Ray; returns the run's summary.

    The counterpart of :func:`envsim.batch.session.execute` (same bookkeeping: killed sessions
    marked, a torn shard tail repaired, scenario files checked against their hashes, a session in
    the manifest, the Parquet table written; ``store`` is closed). ``plan`` is the run's plan (or
    part of it) and ``config`` its configuration: both must be the run's, since episode ids
    depend on them. Raises the error that stopped the run after recording what was stored.
    """
    from envsim.batch.progress import live_progress

    ray = _ray()
    started = time.perf_counter()
    runner: RayRunner | None = None
    own_cluster = False
    try:
        manifest = store.read_manifest()
        if config.config_hash() != manifest.config_hash:
            raise RayBackendError("the configuration given is not the run's (its hash differs from the manifest's)")
        planned = {spec.episode_id for spec in store.read_plan()}
        strangers = [spec.episode_id for spec in plan if spec.episode_id not in planned]
        if strangers:
            raise RayBackendError(f"{len(strangers)} episode(s) of the plan given are not in the run's plan")
        work = _pending_work(store, manifest, plan, overrides)
        stats = RunStats(planned=len(plan), already=len(plan) - len(work.todo))
        runner = RayRunner(
            store, work.todo, work.scenarios, manifest.config, work.options, stats=stats, workers=workers
        )
        session = _open_session(store, manifest, plan, work, resumed)

        if work.todo and not ray.is_initialized():
            ray.init(address=address, include_dashboard=False)
            own_cluster = True

        async def drive(active: RayRunner) -> None:
            async with live_progress(stats, active.calls.stats, console or Console(stderr=True), enabled=progress):
                await active.run()

        asyncio.run(drive(runner))

        summary = _close_session(store, manifest, plan, session, cast(BatchRunner, runner), started, resumed)
    finally:
        store.close()
        if own_cluster:
            ray.shutdown()
    if runner is not None:
        _raise_fatal(runner.fatal)
    return summary
