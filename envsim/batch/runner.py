"""The asyncio batch runner: many episodes in flight, retries, durable storage, nothing lost.

One process, one event loop: ``concurrency`` workers each take the next planned episode, play
it to the end (the agent's and the mock user's model calls awaited, so hundreds of episodes
wait on the network at once), score it, and hand the record to a writer thread that appends
finished episodes to the store in groups, with one ``fsync`` per group (:meth:`RunStore.append`,
:class:`~envsim.batch.writer.GroupWriter`). An episode counts as stored only once its group is on
disk, and its group is on disk within :data:`~envsim.batch.writer.GROUP_WAIT` of its end, whether
or not the episodes ever wait: a crash or a ``kill -9`` loses at most one group. Episodes that
never wait (scripted or transcript participants, a replay) give the loop a pass after each
episode, so that a signal, a stop and the stored figures do not wait for the last one.

Where episodes call models over the network, the slots start ``stagger`` seconds apart
(:attr:`RunOptions.stagger`; by default spread over a quarter of a second) rather than all at
once: slots started together send their calls together, get the answers together, and the
client, which handles one answer at a time, keeps them waiting on
each other, round after round; staggered, each answer is handled as it comes. Only the timing
changes, never an episode.

Each turn of such an episode runs in phases, with a pass of the event loop between them: the
model's answer is taken, then the environment steps (and, at the end, the episode is scored and
its record built, and the slot's next episode reset), then the next request is made. The
episodes whose answers arrived in one pass of the loop thus go through each phase one after
another (all their environment steps, then all their requests), instead of alternating the
model client's code with the environment's for every episode; the CPU's caches stay warm for
each (the figures are in ``CHANGELOG.md``, 2026-12-05). Like the stagger, only
the timing changes, never an episode; replays and scripted runs, which never wait, have no
phases.

Environments are made per in-flight slot and reused: a worker borrows an idle environment of
the episode's scenario (with its own mock user and agent) and gives it back afterwards;
``reset`` makes each episode independent of the last, so an episode's trajectory does not
depend on which slot played it.

What can go wrong in an episode, and what is stored:

- a model call fails (rate limit, 5xx, timeout, connection): :class:`~envsim.batch.cache.ModelCalls`
  retries it with backoff and jitter, honouring ``Retry-After``; if it still fails, or fails
  in a way not worth retrying, the episode is stored as ``infra_error`` (with the partial
  trajectory and the error) and resumed runs play it again; it never counts as reward 0;
- a judge fails on the provider's side (timeout, provider error): the same, ``infra_error``.
  Judges are reward components of the episode's rubric (:meth:`Participants.rubric`: the
  run-wide one of ``--judge-rubric`` and the scenario's own, ``reward.judges``, which run only
  with ``--judge-model``), scored once, awaited, when the environment scores the episode's last
  step; the runner only schedules, steps and stores``
  (without it they are recorded as not run, outside the total);
- the simulation raises (a bug in a tool, a user simulator, an agent): ``sim_fault``, with the
  exception in ``error``; it does not stop the other episodes;
- ``--replay`` meets an unrecorded call (:class:`~envsim.batch.cache.CallCacheMiss`): the run
  stops (what finished is stored) and the error is raised, since nothing more can be replayed.

SIGINT/SIGTERM stop the run gracefully: no new episodes start, the ones in flight are
cancelled (they are not stored, so a resume plays them), finished ones are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import math
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from envsim.agents.base import Policy
from envsim.batch.cache import ModelCalls, current_scope, episode_scope
from envsim.batch.plan import EpisodeSpec, GenerateConfig, RunOptions
from envsim.batch.retry import describe
from envsim.batch.store import EpisodeRecord, RunStore, trajectory_hash
from envsim.batch.writer import GroupWriter
from envsim.env import ScenarioEnv
from envsim.errors import CallCacheMiss
from envsim.llm import ModelCallError, ModelClient, default_client, drain_logging
from envsim.reward.base import RewardBreakdown
from envsim.reward.outcome import REWARD_CARRYING, Outcome
from envsim.reward.rubric import Rubric
from envsim.rollout import EpisodeDriver
from envsim.scenario import Scenario
from envsim.trajectory import Trajectory, Usage
from envsim.user.base import UserSimulator


@dataclass
class RunStats:
    """Live figures of a run (read by the progress bar; the summary is built from them)."""

    planned: int = 0
    already: int = 0
    todo: int = 0
    started: float = field(default_factory=time.perf_counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    finished: int = 0
    stored: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reward_sum: float = 0.0
    reward_count: int = 0
    run_seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def done(self) -> int:
        """Episodes of the plan with a stored record (before and in this session)."""
        return self.already + self.stored

    @property
    def success_rate(self) -> float | None:
        """Share of ``success`` among this session's stored episodes that carry a reward."""
        judged = sum(n for o, n in self.outcomes.items() if o in REWARD_CARRYING)
        return self.outcomes["success"] / judged if judged else None

    @property
    def mean_reward(self) -> float | None:
        """Mean total reward over this session's stored episodes that carry a reward."""
        return self.reward_sum / self.reward_count if self.reward_count else None

    def eta(self) -> float | None:
        """Seconds left at this session's rate so far."""
        elapsed = time.perf_counter() - self.started
        if not self.stored or elapsed <= 0:
            return None
        return (self.todo - self.stored) / (self.stored / elapsed)

    def add(self, record: EpisodeRecord) -> None:
        """Count a stored record."""
        self.stored += 1
        self.outcomes[record.outcome] += 1
        if record.carries_reward and record.reward is not None and not math.isnan(record.reward):
            self.reward_sum += record.reward
            self.reward_count += 1


class Participants:
    """Makes the agent, the mock user and the judge of a run from its configuration.

    Every model-backed participant is given a view of the run's model client bound to its role
    (:meth:`client`; :meth:`bind` sets the client, the runner does it before the first episode).
    """

    def __init__(self, config: GenerateConfig, options: RunOptions, calls: ModelCalls | None = None) -> None:
        self.config = config
        self.options = options
        self.calls = calls
        self._rubrics: dict[str, Rubric] = {}
        self._models: dict[str, str | None] | None = None
        self._prototype: Policy | None = None

    def bind(self, calls: ModelCalls) -> None:
        """Make every later participant call models through ``calls``."""
        self.calls = calls
        self._rubrics.clear()

    def client(self, role: str) -> ModelClient:
        """The model client of role ``role`` (agent, user, judge): the run's, metered under the role."""
        return self.calls.for_role(role) if self.calls is not None else default_client()

    def rubric(self, scenario: Scenario) -> Rubric | None:
        """The rubric of ``scenario``'s episodes when the run judges them (``--judge-model``, ``--judge-rubric``):
        the scenario's judges and the run-wide one are components of it, calling models through the run's
        client under role ``judge``; None otherwise (the environment builds the scenario's own)."""
        config = self.config
        if config.judge_model is None and config.judge_rubric is None:
            return None
        rubric = self._rubrics.get(scenario.id)
        if rubric is None:
            from envsim.reward.judges import run_judge_options

            rubric = Rubric.for_scenario(
                scenario,
                judge_model=config.judge_model,
                judge_options=run_judge_options(self.client("judge")),
                judge_rubric=config.judge_rubric,
                judge_weight=config.judge_weight,
            )
            self._rubrics[scenario.id] = rubric
        return rubric

    @property
    def calls_models(self) -> bool:
        """Whether an episode calls models through litellm (an LLM agent, an LLM user or a judge)."""
        config = self.config
        return (
            config.agent == "llm"
            or config.user == "llm"
            or config.judge_rubric is not None
            or config.judge_model is not None
        )

    def models(self) -> dict[str, str | None]:
        """The model of each role (``None`` for scripted participants; the judge's: ``--judge-model``, or else
        the model of the ``--judge-rubric``)."""
        if self._models is None:
            judge = self.config.judge_model
            if judge is None and self.config.judge_rubric is not None:
                from envsim.rubric_schema import load_rubric

                judge = load_rubric(self.config.judge_rubric).model
            self._models = {"agent": self.config.agent_model, "user": self.config.user_model, "judge": judge}
        return self._models

    def agent(self) -> Policy:
        """A new agent (``hf``: a copy sharing the one loaded model, with its own per-episode state)."""
        from envsim.agents.registry import make_agent

        config = self.config
        if config.agent == "scripted":
            return make_agent("scripted", error_rate=config.error_rate)
        if config.agent == "llm":
            return make_agent(
                "llm",
                model=config.agent_model,
                timeout=self.options.timeout,
                api_base=self.options.api_base,
                client=self.client("agent"),
            )
        if config.agent == "hf":
            if self._prototype is None:
                self._prototype = make_agent("hf", model_path=config.agent_model, device=self.options.device)
            return copy.copy(self._prototype)
        return make_agent(config.agent, model=config.agent_model)

    def user(self) -> UserSimulator:
        """A new mock user."""
        from envsim.user.registry import make_user

        kwargs: dict[str, Any] = {}
        if self.config.user == "llm":
            kwargs["client"] = self.client("user")
            if self.config.user_model:
                kwargs["model"] = self.config.user_model
            if self.options.api_base:
                kwargs["api_base"] = self.options.api_base
        return make_user(self.config.user, **kwargs)


@dataclass
class Slot:
    """An environment (with its mock user) and an agent, reused from episode to episode."""

    env: ScenarioEnv
    agent: Policy
    episode: EpisodeDriver = field(init=False)

    def __post_init__(self) -> None:
        self.episode = EpisodeDriver(self.env, self.agent)


class EnvPool:
    """Idle slots per scenario; a scenario's slots are dropped once its last planned episode started."""

    def __init__(self, scenarios: dict[str, Scenario], participants: Participants, todo: Sequence[EpisodeSpec]) -> None:
        self.scenarios = scenarios
        self.participants = participants
        self.created = 0
        self._idle: dict[str, list[Slot]] = {}
        self._left: Counter[str] = Counter(spec.scenario_id for spec in todo)

    def take(self, scenario_id: str) -> Slot:
        """An idle slot of ``scenario_id``, or a new one."""
        self._left[scenario_id] -= 1
        idle = self._idle.get(scenario_id)
        if idle:
            return idle.pop()
        self.created += 1
        scenario = self.scenarios[scenario_id]
        env = ScenarioEnv(scenario, user=self.participants.user(), rubric=self.participants.rubric(scenario))
        return Slot(env, self.participants.agent())

    def give(self, scenario_id: str, slot: Slot) -> None:
        """Return a slot after its episode."""
        if self._left[scenario_id] > 0:
            self._idle.setdefault(scenario_id, []).append(slot)
        else:
            self._idle.pop(scenario_id, None)


RUN_GC_THRESHOLDS = (50_000, 20, 10)
"""The cyclic collector's thresholds while a run is in flight (Python's defaults: 700, 10, 10).

Hundreds of in-flight episodes and the model client's per-call objects make the heap large, and
at the default thresholds the collector walks it over and over, taking a large share of a run's CPU.
With these the young generations are collected far less often, at a small cost in peak memory
(the figures are in ``CHANGELOG.md``, 2026-12-05). Full collections still run, so cyclic garbage
does not pile up."""


@contextlib.contextmanager
def on_signals(handler: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` on the running event loop while inside (where the platform lets them)."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)
            handled.append(sig)
    try:
        yield
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


class _RunCollector:
    """Sets the cyclic collector up for a run, and back as it was by :meth:`close`.

    What exists when the run starts (litellm, pandas, the scenarios: hundreds of thousands of
    objects) lives as long as the run: frozen (:func:`gc.freeze`), the collector stops walking it.
    """

    def __init__(self) -> None:
        self._thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(*RUN_GC_THRESHOLDS)

    def close(self) -> None:
        """Restore the thresholds and unfreeze what was frozen."""
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()


class BatchRunner:
    """Runs ``todo`` into ``store`` (see the module docstring).

    Args:
        store: The run directory, opened for writing.
        todo: The episodes to run (already stored ones left out).
        scenarios: The loaded scenarios by id.
        config: What the episodes are (agent, user, judge...).
        options: How to run them (concurrency, retries...).
        calls: The run's model client (each participant gets a view bound to its role: :meth:`Participants.bind`).
        stats: Figures to update (the progress bar reads them).
        on_stored: Called after each group of records is on disk.
        participants: Makes agents, users and the judge (default: from ``config``).
        attempts_before: Attempts already made per episode (infra errors of earlier sessions).
    """

    def __init__(
        self,
        store: RunStore,
        todo: Sequence[EpisodeSpec],
        scenarios: dict[str, Scenario],
        config: GenerateConfig,
        options: RunOptions,
        calls: ModelCalls,
        *,
        stats: RunStats | None = None,
        on_stored: Callable[[Sequence[EpisodeRecord]], None] | None = None,
        participants: Participants | None = None,
        attempts_before: dict[str, int] | None = None,
    ) -> None:
        self.store = store
        self.todo = list(todo)
        self.config = config
        self.options = options
        self.calls = calls
        self.participants = participants or Participants(config, options)
        self.participants.bind(calls)
        self.attempts_before = dict(attempts_before or {})
        self.pool = EnvPool(scenarios, self.participants, self.todo)
        self.stats = stats or RunStats()
        self.stats.todo = len(self.todo)
        self.on_stored = on_stored
        self.fatal: BaseException | None = None
        self.interrupted = False
        self._stopping = False
        self._writer: GroupWriter[EpisodeRecord] | None = None
        self._workers: list[asyncio.Task[None]] = []
        # episodes wait on model calls over the network (an LLM participant, not a replay): phases and stagger
        self._over_network = options.cache != "replay" and self.participants.calls_models

    # -- one episode --------------------------------------------------------------------------

    async def _play(self, slot: Slot, spec: EpisodeSpec) -> tuple[Trajectory, RewardBreakdown]:
        env, agent, episode = slot.env, slot.agent, slot.episode
        agent.reseed(spec.seed)  # a sampling agent's k-th call of the episode carries seed + k: reproducible
        episode.reset(seed=spec.seed)
        scope = current_scope()
        phased = self._over_network
        while not episode.done:
            if self.options.step_delay:
                await asyncio.sleep(self.options.step_delay)
            if phased:  # the request phase (see the module docstring)
                await asyncio.sleep(0)
            action = await episode.aact()
            if phased:  # the environment's phase
                await asyncio.sleep(0)
            if scope is not None and "agent" in scope.usage:
                # the agent's usage so far (its calls precede the step), so that the score the env
                # computes when the episode ends already counts it
                env.set_usage("agent", scope.usage["agent"].usage())
            await episode.astep(action)
        return episode.result()

    async def _episode(self, spec: EpisodeSpec) -> EpisodeRecord:
        slot = self.pool.take(spec.scenario_id)
        started = time.perf_counter()
        breakdown: RewardBreakdown | None = None
        error: str | None = None
        try:
            with episode_scope(spec.episode_id) as scope:
                try:
                    trajectory, breakdown = await self._play(slot, spec)
                    outcome: Outcome = breakdown.outcome
                except ModelCallError as failure:
                    error = describe(failure)
                    trajectory = slot.env.trajectory().model_copy(update={"infra_error": error})
                    outcome = "infra_error"
                except (CallCacheMiss, asyncio.CancelledError):
                    raise
                except Exception as failure:  # a bug in the simulation: this episode only
                    error = "".join(traceback.format_exception_only(failure)).strip()
                    try:
                        trajectory = slot.env.trajectory()
                    except Exception:
                        trajectory = Trajectory(scenario_id=spec.scenario_id, seed=spec.seed, messages=[])
                    trajectory = trajectory.model_copy(update={"fault": f"exception: {error}"})
                    outcome = "sim_fault"
                usage: dict[str, Usage] = scope.usages()
        finally:
            self.pool.give(spec.scenario_id, slot)
        return EpisodeRecord(
            episode_id=spec.episode_id,
            scenario_id=spec.scenario_id,
            scenario_hash=spec.scenario_hash,
            config_hash=spec.config_hash,
            index=spec.index,
            base_seed=spec.base_seed,
            seed=spec.seed,
            outcome=outcome,
            reward=breakdown.total if breakdown is not None else None,
            breakdown=breakdown,
            models=self.participants.models(),
            usage=usage,
            trajectory=trajectory,
            trajectory_hash=trajectory_hash(trajectory),
            error=error,
            attempts=self.attempts_before.get(spec.episode_id, 0) + 1,
            elapsed_s=round(time.perf_counter() - started, 6),
        )

    # -- workers and the writer ---------------------------------------------------------------

    def _start_delay(self, slot: int) -> float:
        """Seconds slot ``slot`` waits before its first episode (see :attr:`RunOptions.stagger`).

        Only where episodes call models over the network (not in a replay, not with scripted or
        local participants): started together, the slots would send their calls together for the
        rest of the run, and the answers, arriving together, would wait on each other for the CPU.
        """
        return slot * self.options.slot_stagger if self._over_network else 0.0

    async def _worker(self, specs: Iterator[EpisodeSpec], slot: int = 0) -> None:
        delay = self._start_delay(slot)
        if delay > 0:
            await asyncio.sleep(delay)
        for spec in specs:
            if self._stopping:
                return
            self.stats.in_flight += 1
            self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.stats.in_flight)
            try:
                record = await self._episode(spec)
            except Exception as error:  # a replay miss, or a bug of the runner: stop the run
                self.fatal = self.fatal or error
                self._stop()
                return
            finally:
                self.stats.in_flight -= 1
            self.stats.finished += 1
            assert self._writer is not None
            self._writer.put(record)
            if not self._over_network:
                # an episode that never waits (scripted or transcript participants, a replay) never gives
                # the loop a pass: without one, the signal handlers, a stop and the stored figures would
                # all wait for the last episode
                await asyncio.sleep(0)

    def _stored(self, records: list[EpisodeRecord], error: BaseException | None) -> None:
        """A group's append finished (called on the loop, by the writer's thread)."""
        if error is not None:  # disk full, folder removed: stop; nothing unsynced counts as stored
            self.fatal = self.fatal or error
            self._stop()
            return
        for record in records:
            self.stats.add(record)
        if self.on_stored is not None:
            self.on_stored(records)

    def _append(self, records: list[EpisodeRecord]) -> None:
        self.calls.sync()  # the calls an episode used are durable before the episode is
        self.store.append(records)

    def _stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            for task in self._workers:
                task.cancel()

    def _interrupt(self) -> None:
        self.interrupted = True
        self._stop()

    async def run(self) -> RunStats:
        """Run every episode of ``todo``; returns the figures (see also :attr:`fatal`, :attr:`interrupted`)."""
        with on_signals(self._interrupt):
            return await self._run()

    async def _run(self) -> RunStats:
        loop = asyncio.get_running_loop()
        collector = _RunCollector()
        wall, cpu = time.perf_counter(), time.process_time()
        # finished episodes are stored even after another fatal error, until a write fails
        self._writer = GroupWriter(
            self._append, lambda records, error: loop.call_soon_threadsafe(self._stored, records, error)
        )
        try:
            specs = iter(self.todo)
            count = min(self.options.concurrency, len(self.todo))
            self._workers = [asyncio.create_task(self._worker(specs, slot)) for slot in range(count)]
            results = await asyncio.gather(*self._workers, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception) and self.fatal is None:
                    self.fatal = result  # a bug of the runner itself: report it, after flushing the rest
        finally:
            await asyncio.to_thread(self._writer.close)  # its last groups' news is handled before this returns
            self.stats.run_seconds = time.perf_counter() - wall
            self.stats.cpu_seconds = time.process_time() - cpu
            if not self.interrupted:
                await drain_logging()  # litellm's logging of this loop's calls, finished on this loop
            collector.close()
        return self.stats
