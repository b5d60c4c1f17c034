"""``envsim serve``: envsim scenarios as an OpenEnv environment server.

Built on OpenEnv's own server code (``openenv-core`` 0.3.0, :data:`OPENENV_DISTRIBUTION`): its
``Environment`` interface (:class:`EnvsimEnvironment`), its ``HTTPEnvServer`` (sessions, the WebSocket
protocol, the routes) and its types (:mod:`envsim.serve.openenv_types`). OpenEnv's own client
(``openenv.core.GenericEnvClient`` or any ``EnvClient``) plays an episode unchanged::

    async with GenericEnvClient(base_url="http://127.0.0.1:8000") as env:
        result = await env.reset(seed=7, scenario="MedicalSupplyPanicCaller")
        result = await env.step({"name": "lookup_patient", "arguments": {"phone": "555-0142"}})

What is served:

- ``/ws``: OpenEnv's WebSocket protocol (``reset``, ``step``, ``state``, ``close`` frames; answers
  ``observation``, ``state`` or ``error`` frames). One connection is one session with its own
  environment: one ``gym.make`` environment per session (its world, mock user and reward), made on
  the first ``reset``. ``reset`` takes ``seed``, ``episode_id`` and ``scenario`` (a served scenario's
  id; with several served and none given, one is drawn from the seed).
- ``/health``, ``/schema``, ``/metadata`` (OpenEnv's routes), ``/mcp`` (OpenEnv's JSON-RPC route: it
  answers that this environment has no MCP tools; ``envsim mcp`` serves them), and ``/stats`` (envsim's:
  sessions and step counters).
- The server runs in OpenEnv's *production* mode: its stateless HTTP ``/reset``, ``/step`` and ``/state``
  (a fresh environment per request, so no episode across requests) are not served.

Bounds: at most ``max_sessions`` sessions (more get a ``CAPACITY_REACHED`` error frame), a session idle
for ``idle_timeout`` seconds is closed (:class:`~envsim.serve.asgi.WebSocketGuard`, and OpenEnv's reaper
for sessions made over ``/mcp``), a frame longer than ``max_message_bytes`` closes its connection
(code 1009). A malformed frame gets an error frame; a failing step gets an ``EXECUTION_ERROR`` frame
naming the cause; neither touches another session.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium as gym
from gymnasium.utils import seeding
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import ConcurrencyConfig, EnvironmentMetadata, ServerMode

from envsim.env import ScenarioEnv
from envsim.errors import ServeError, UnknownNameError
from envsim.serve.asgi import WebSocketGuard
from envsim.serve.openenv_types import EnvsimAction, EnvsimObservation, EnvsimState
from envsim.suggest import did_you_mean

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from envsim.scenario import Scenario

OPENENV_DISTRIBUTION = "openenv-core"
OPENENV_VERSION = "0.3.0"
"""The OpenEnv release whose server code and protocol are served (pinned by the ``serve`` extra)."""

DEFAULT_MAX_SESSIONS = 256
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
"""Longest WebSocket frame read (1 MiB); a longer one closes its connection."""

RESET_KEYS = ("seed", "episode_id", "scenario")


@dataclass
class ServeStats:
    """Counters shared by a server's sessions (``/stats``); updated under a lock (steps on the event loop, resets in
    the sessions' threads)."""

    sessions_made: int = 0
    sessions_closed: int = 0
    episodes: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    """Time inside envsim's ``step`` (envsim's own work with an offline mock user, which never waits; with a
    model-backed user it includes the model's answer). A clock, not a thread's CPU time: reading that is a
    system call, slower in some sandboxes than a tool step."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        """Add ``counts`` to the counters of those names."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, int | float]:
        """The counters, and this process's CPU time so far (``process_cpu_seconds``)."""
        with self._lock:
            return {
                "sessions_made": self.sessions_made,
                "sessions_closed": self.sessions_closed,
                "episodes": self.episodes,
                "steps": self.steps,
                "step_seconds": self.step_seconds,
                "process_cpu_seconds": time.process_time(),
            }


@dataclass(frozen=True)
class Catalog:
    """The scenarios a server plays, validated once: id to scenario, in the order given.

    Make one with :meth:`resolve`.
    """

    scenarios: dict[str, Scenario]
    user: str = "scripted"

    @classmethod
    def resolve(cls, names: Sequence[str], *, user: str = "scripted") -> Catalog:
        """The scenarios ``names`` name: ids, files, suites (``DIR``, ``DIR:split``) or ``all`` (every registered).

        Raises:
            UnknownNameError: an unknown scenario id or mock user.
            ScenarioError: an invalid scenario file (every problem located).
            SuiteError: a folder that is no suite, or an unknown split.
        """
        from envsim.registration import discover, load_registered
        from envsim.suite import resolve_ids
        from envsim.user.registry import make_user

        if not names:
            raise ServeError("name at least one scenario or suite to serve")
        make_user(user)  # an unknown mock user fails here, not in the first session
        ids = sorted(discover()) if list(names) == ["all"] else resolve_ids(list(names))
        scenarios: dict[str, Scenario] = {}
        for name in ids:
            scenario = load_registered(name)
            scenarios[scenario.id] = scenario
        return cls(scenarios, user)

    def pick(self, scenario: str | None, seed: int | None) -> str:
        """The id of the scenario an episode plays: ``scenario``, the only one served, or one drawn from ``seed``."""
        if scenario is not None:
            if scenario not in self.scenarios:
                raise UnknownNameError(
                    f"scenario {scenario!r} is not served here{did_you_mean(scenario, list(self.scenarios))}"
                )
            return scenario
        ids = list(self.scenarios)
        if len(ids) == 1:
            return ids[0]
        rng, _ = seeding.np_random(seed)
        return ids[int(rng.integers(len(ids)))]

    def make(self, scenario_id: str) -> gym.Env[str, Any]:
        """A new environment of ``scenario_id`` (``gym.make``, with its ``TimeLimit``) with a new mock user."""
        from envsim.user.registry import make_user

        scenario = self.scenarios[scenario_id]
        return gym.make(scenario.gym_id, scenario=scenario, user=make_user(self.user))


class EnvsimEnvironment(Environment):  # type: ignore[misc]  # openenv ships no type information
    """One session's environment: OpenEnv's ``Environment`` over one ``gym.make`` envsim environment.

    Made per session by OpenEnv's server (cheaply: the envsim environment is made on the first
    ``reset``, and again when a reset names another scenario).
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, catalog: Catalog, stats: ServeStats) -> None:
        super().__init__()
        self._catalog = catalog
        self._stats = stats
        self._env: gym.Env[str, Any] | None = None  # its actions: a string or a dict
        self._scenario_id: str | None = None
        self._episode: dict[str, Any] = {}  # the state's fields; an EnvsimState is built when asked for
        self._end = "running"
        self._messages: list[dict[str, Any]] = []
        self._closed = False
        stats.add(sessions_made=1)

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> EnvsimObservation:
        """Start an episode: ``seed`` (an int >= 0), ``episode_id``, and ``scenario`` (a served scenario's id).

        Raises:
            ServeError: a reset key other than ``seed``, ``episode_id``, ``scenario``; a bad seed.
            UnknownNameError: a scenario that is not served.
        """
        self._check_open()
        scenario = kwargs.pop("scenario", None)
        if kwargs:
            raise ServeError(f"unknown reset keys {sorted(kwargs)}: reset takes {', '.join(RESET_KEYS)}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ServeError(f"seed must be an integer >= 0 or null, got {seed!r}")
        if scenario is not None and not isinstance(scenario, str):
            raise ServeError(f"scenario must be a scenario id (a string), got {scenario!r}")
        chosen = self._catalog.pick(scenario, seed)
        if self._env is None or chosen != self._scenario_id:
            if self._env is not None:
                self._env.close()
            self._env = self._catalog.make(chosen)
            self._scenario_id = chosen
        text, info = self._env.reset(seed=seed)
        self._episode = {"episode_id": episode_id, "scenario_id": chosen, "seed": seed, "step_count": 0}
        self._end, self._messages = "running", info["messages"]
        self._stats.add(episodes=1)
        return EnvsimObservation(
            text=text, scenario_id=chosen, messages=info["messages"], tools=info["tools"], reward=0.0
        )

    def step(self, action: EnvsimAction, timeout_s: float | None = None, **kwargs: Any) -> EnvsimObservation:
        """One agent action; the last step carries the reward and its breakdown.

        Raises:
            ServeError: no episode in this session (send ``reset`` first), or it has ended.
        """
        env = self._playing()
        started = time.perf_counter()
        result = env.step(action.envsim_action())
        self._stats.add(steps=1, step_seconds=time.perf_counter() - started)
        return self._observe(*result)

    async def step_async(
        self, action: EnvsimAction, timeout_s: float | None = None, **kwargs: Any
    ) -> EnvsimObservation:
        """:meth:`step` as OpenEnv's WebSocket handler runs it: on its event loop, the mock user's reply awaited.

        A step is envsim's own work (tens of microseconds) plus, with a model-backed user, an awaited model call:
        it runs on the loop rather than hopping to the session's thread, which costs more than the step itself.
        """
        env = self._playing().unwrapped
        if not isinstance(env, ScenarioEnv):  # pragma: no cover - every served scenario is a ScenarioEnv
            raise TypeError(f"expected a ScenarioEnv, got {type(env).__name__}")
        started = time.perf_counter()
        result = await env.astep(action.envsim_action())  # it truncates itself at its TimeLimit's bound
        self._stats.add(steps=1, step_seconds=time.perf_counter() - started)
        return self._observe(*result)

    def _playing(self) -> gym.Env[str, Any]:
        """The environment of the episode under way; :class:`ServeError` when there is none."""
        self._check_open()
        if self._env is None:
            raise ServeError("no episode in this session: send a reset first")
        if self._end != "running":
            raise ServeError(f"the episode has ended ({self._end}): send a reset to start another")
        return self._env

    def _observe(
        self, text: str, reward: SupportsFloat, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> EnvsimObservation:
        """A step's result as an observation (the reward's breakdown on the last step); the state follows it.

        The observation is validated once, whole (an assignment to a field of OpenEnv's models validates it again).
        """
        done = terminated or truncated
        self._episode["step_count"] = info["turn"]
        self._messages = info["messages"]
        last: dict[str, Any] = {}
        if done:
            self._end = info["end_reason"]
            last = {name: info[name] for name in ("end_reason", "outcome", "carries_reward", "reward_breakdown")}
        return EnvsimObservation(
            text=text,
            scenario_id=self._episode["scenario_id"],
            turn=info["turn"],
            terminated=terminated,
            truncated=truncated,
            done=done,
            reward=float(reward),
            **last,
        )

    @property
    def state(self) -> EnvsimState:
        """The session's episode so far (its conversation included)."""
        self._check_open()
        return EnvsimState(**self._episode, end_reason=self._end, messages=self._messages)

    def get_metadata(self) -> EnvironmentMetadata:
        """The name, the served scenarios and envsim's version (OpenEnv's ``/metadata``)."""
        ids = list(self._catalog.scenarios)
        shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
        return EnvironmentMetadata(
            name="envsim",
            description=f"envsim scenarios ({len(ids)}): {shown}. Reset with seed, episode_id and scenario.",
            version=metadata.version("envsim"),
        )

    def close(self) -> None:
        """Close the session's envsim environment (OpenEnv calls it when the session ends)."""
        if self._closed:
            return
        self._closed = True
        if self._env is not None:
            self._env.close()
            self._env = None
        self._stats.add(sessions_closed=1)

    def _check_open(self) -> None:
        if self._closed:
            raise ServeError("this session was closed (idle timeout or server shutdown): open a new connection")


@dataclass(frozen=True)
class ServeConfig:
    """How a server runs; the defaults are ``envsim serve``'s."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_sessions: int = DEFAULT_MAX_SESSIONS
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


def create_app(catalog: Catalog, config: ServeConfig = ServeConfig()) -> FastAPI:
    """The ASGI application serving ``catalog`` (see the module docstring); ``app.state.envsim`` holds its parts."""
    from fastapi import FastAPI

    stats = ServeStats()
    server = HTTPEnvServer(
        functools.partial(EnvsimEnvironment, catalog, stats),
        EnvsimAction,
        EnvsimObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=config.max_sessions, session_timeout=config.idle_timeout
        ),
    )
    app = FastAPI(
        title="envsim OpenEnv server",
        version=metadata.version("envsim"),
        description=f"envsim scenarios over OpenEnv's protocol ({OPENENV_DISTRIBUTION} {OPENENV_VERSION}).",
    )
    server.register_routes(app, mode=ServerMode.PRODUCTION)

    @app.get("/stats", tags=["envsim"], summary="Sessions and step counters")
    def _stats() -> dict[str, int | float]:
        return {"active_sessions": server.active_sessions, "max_sessions": config.max_sessions, **stats.snapshot()}

    app.add_middleware(WebSocketGuard, idle_timeout=config.idle_timeout)
    app.state.envsim = (server, stats)
    return app


def make_server(catalog: Catalog, config: ServeConfig = ServeConfig()) -> uvicorn.Server:
    """A uvicorn server for ``catalog`` (run it with ``.run()``; stop it by setting ``should_exit``)."""
    import uvicorn

    uv_config = uvicorn.Config(
        create_app(catalog, config),
        host=config.host,
        port=config.port,
        ws_max_size=config.max_message_bytes,
        ws_per_message_deflate=False,  # small JSON frames: compression costs more CPU than it saves on loopback
        log_level="warning",
        lifespan="on",
    )
    return uvicorn.Server(uv_config)


def check_version() -> str:
    """The installed OpenEnv version; :class:`ServeError` when it is not the pinned one."""
    installed = metadata.version(OPENENV_DISTRIBUTION)
    if installed != OPENENV_VERSION:
        raise ServeError(
            f"envsim serve speaks {OPENENV_DISTRIBUTION} {OPENENV_VERSION}, found {installed}: "
            "pip install 'envsim[serve]'"
        )
    return installed
