"""Every model call in one place: record/replay (a cache), retries with backoff, usage per episode.

:class:`ModelCalls` is the model client (:class:`envsim.llm.ModelClient`) of a run, and the judge's
verdict cache (:class:`envsim.reward.judge.Judge`, a :class:`CallLog` in ``$ENVSIM_JUDGE_CACHE``): it wraps another
client (its ``transport``: litellm by default) and the runner gives each participant a view of it
bound to the participant's role (:meth:`ModelCalls.for_role`), so the agent, the mock user and the
judge all go through it without knowing:

- **Record and replay.** A call's key is the SHA-256 of what determines its answer: the model, the
  messages, the tools and the other parameters (transport settings such as ``api_base``,
  ``api_key`` and ``timeout`` left out), plus the episode it belongs to and how many identical
  requests that episode made before (so two episodes whose prompts coincide keep their own
  samples, and a repeated request within an episode gets the next recorded answer, as it did).
  ``record`` answers from the records when it can and records every new answer; ``replay``
  answers only from the records and raises :class:`CallCacheMiss` (no provider is called) on a
  miss. A call that still fails after its retries is recorded as a failure, which ``replay`` raises
  again (``record`` calls the provider anew: a resumed run retries it). Records are append-only
  JSONL logs in ``RUN_DIR/calls/`` (``calls-0000.jsonl``, one per session), synced before the
  episodes that used them are stored. A :class:`CallLog` without a folder keeps its records in memory.
- **Retries.** A retryable failure (:func:`envsim.batch.retry.is_retryable`: rate limit, 5xx,
  timeout, connection) is retried up to ``max_retries`` times with exponential backoff and full
  jitter, honouring ``Retry-After``; each call gets ``timeout`` seconds. litellm's own client
  retries are turned off (``max_retries=0``) so the policy is this one.
- **Usage.** Tokens, cost and calls (failed tries included) are metered
  (:class:`envsim.llm.UsageMeter`) in the current :class:`CallScope` (one per episode attempt)
  under the role of the view that made the call (``agent``, ``user``, ``judge``; ``other``
  for calls made on the :class:`ModelCalls` itself).

Example (litellm's ``mock_response``: no provider):
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> calls = ModelCalls(mode="record", log=CallLog(folder))
    >>> user = calls.for_role("user")
    >>> with episode_scope("ep-1") as scope:
    ...     user.complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello").text
    'hello'
    >>> scope.usage["user"].calls
    1
    >>> calls.close()
    >>> replay = ModelCalls(mode="replay", log=CallLog(folder))
    >>> with episode_scope("ep-1"):
    ...     replay.complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello").text
    'hello'
    >>> try:
    ...     with episode_scope("ep-2"):
    ...         replay.complete("openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], mock_response="hello")
    ... except CallCacheMiss as miss:
    ...     print(str(miss)[:67])
    replay: no recorded answer for a call to openai/gpt-4o-mini (role o
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections import Counter
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from envsim.errors import CallCacheMiss, ReplayedFailure
from envsim.fileio import naming
from envsim.llm import Completion, ModelCallError, ModelClient, RetryingClient, UsageMeter, describe
from envsim.trajectory import Usage

CacheMode = Literal["off", "record", "replay"]
"""What the model-call cache does: nothing, record every call, or answer every call from records."""

TRANSPORT_PARAMS = frozenset(
    {
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "organization",
        "timeout",
        "request_timeout",
        "stream_timeout",
        "num_retries",
        "max_retries",
        "metadata",
        "extra_headers",
        "headers",
        "client",
    }
)
"""Call parameters that do not change the answer, hence not part of a call's key."""

KEY_FORMAT = 1
"""Version of the key derivation (part of every key)."""


@dataclass
class CallScope:
    """The model calls of one episode attempt: a meter per role, retries, calls answered from the records
    (``replayed``), the request counter of replay keys, and the keys of its calls (``keys``, in order)."""

    episode_id: str | None
    usage: dict[str, UsageMeter] = field(default_factory=dict)
    retries: int = 0
    replayed: int = 0
    occurrences: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)

    def add(self, role_name: str, completion: Completion | None, calls: int) -> None:
        """Count ``calls`` calls of ``role_name``: with ``completion``, the last answered it, the others failed."""
        meter = self.usage.get(role_name)
        if meter is None:
            meter = self.usage[role_name] = UsageMeter()
        if completion is not None:
            meter.add(completion)
            calls -= 1
        if calls:
            meter.fail(calls)

    def usages(self, *roles: str) -> dict[str, Usage]:
        """The usage record of each role (of ``roles`` only, when given), by role name."""
        return {name: meter.usage() for name, meter in sorted(self.usage.items()) if not roles or name in roles}


_scope: ContextVar[CallScope | None] = ContextVar("envsim_call_scope", default=None)


class episode_scope:
    """Calls made inside belong to ``episode_id`` (a fresh :class:`CallScope`, yielded).

    A plain context manager class (not ``contextlib.contextmanager``): it is entered once per
    episode attempt, and a generator-based one costs several times as much.

    Example:
        >>> with episode_scope("ep-1") as scope:
        ...     current_scope() is scope
        True
    """

    __slots__ = ("_scope", "_token")

    def __init__(self, episode_id: str | None) -> None:
        self._scope = CallScope(episode_id)
        self._token: Token[CallScope | None] | None = None

    def __enter__(self) -> CallScope:
        self._token = _scope.set(self._scope)
        return self._scope

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _scope.reset(self._token)


def current_scope() -> CallScope | None:
    """The :class:`CallScope` of the running episode attempt, if any."""
    return _scope.get()


def _completion_dict(completion: Completion) -> dict[str, Any]:
    # not dataclasses.asdict: it deep-copies every value, and the dict is only written as JSON
    return {f.name: getattr(completion, f.name) for f in _COMPLETION_FIELDS}


_COMPLETION_FIELDS = tuple(f for f in dataclasses.fields(Completion) if f.name != "attempts")  # in the entry
_COMPLETION_NAMES = frozenset(f.name for f in _COMPLETION_FIELDS)


def _completion_from(data: dict[str, Any]) -> Completion:
    return Completion(**{k: v for k, v in data.items() if k in _COMPLETION_NAMES})


@dataclass(frozen=True)
class CallEntry:
    """A recorded answer (or, with ``completion`` None, a failure after every retry) and the failed tries before it."""

    completion: Completion | None
    failed_attempts: int = 0
    error: str | None = None


class CallLog:
    """The recorded calls of a run: append-only ``calls-NNNN.jsonl`` files in ``directory``, indexed in memory.

    A torn last line (a killed writer) is skipped; a key recorded twice keeps its first answer, and an
    answer replaces a recorded failure (a call that failed in one session and succeeded on resume).
    Each session (each :class:`CallLog` that records) writes a file of its own, so several may
    record into one folder at once (a session closed between writes, as the judge's is after each
    judgement, goes on appending to its file). Without a ``directory`` the records stay in memory.
    """

    def __init__(self, directory: str | Path | None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.entries: dict[str, CallEntry] = {}
        self.skipped_lines = 0
        self._out: IO[bytes] | None = None
        self._path = self.directory or Path()
        self._opened = False
        self._dirty = False
        self._lock = threading.Lock()
        self._load()

    def _files(self) -> list[Path]:
        folder = self.directory
        return sorted(folder.glob("calls-*.jsonl")) if folder is not None and folder.is_dir() else []

    def _open(self, folder: Path) -> IO[bytes]:
        """A new ``calls-NNNN.jsonl`` file after the last one (the next number if another session took it)."""
        folder.mkdir(parents=True, exist_ok=True)
        files = self._files()
        number = int(files[-1].stem.removeprefix("calls-")) + 1 if files else 0
        while True:
            self._path = folder / f"calls-{number:04d}.jsonl"
            try:
                return self._path.open("xb")
            except FileExistsError:
                number += 1

    def _load(self) -> None:
        for path in self._files():
            with path.open("rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        self.skipped_lines += 1
                        continue
                    try:
                        data = json.loads(line)
                        if data.get("forgotten"):
                            self.entries.pop(str(data["key"]), None)
                            continue
                        answer = data.get("completion")
                        entry = CallEntry(
                            _completion_from(answer) if answer is not None else None,
                            int(data.get("failed_attempts", 0)),
                            data.get("error"),
                        )
                        key = str(data["key"])
                    except (ValueError, KeyError, TypeError):
                        self.skipped_lines += 1
                        continue
                    self._keep(key, entry)

    def _keep(self, key: str, entry: CallEntry) -> bool:
        old = self.entries.get(key)
        if old is not None and (old.completion is not None or entry.completion is None):
            return False
        self.entries[key] = entry
        return True

    def get(self, key: str) -> CallEntry | None:
        """The recorded answer for ``key``."""
        return self.entries.get(key)

    def put(self, key: str, entry: CallEntry, **about: Any) -> None:
        """Record an answer or a failure (written now, durable after :meth:`sync`); ``about`` adds context fields."""
        with self._lock:
            if not self._keep(key, entry) or self.directory is None:
                return
            line = {
                "key": key,
                **about,
                "failed_attempts": entry.failed_attempts,
                "error": entry.error,
                "completion": _completion_dict(entry.completion) if entry.completion is not None else None,
            }
            self._write((json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode())

    def forget(self, keys: list[str]) -> None:
        """Drop the records of ``keys`` (a line saying so is appended): their calls are made anew.

        The judge forgets the answers of a sample that ended in a failure (a refusal, a reply
        still malformed after every attempt), so the judgement is asked again, not replayed.
        """
        with self._lock:
            known = [key for key in keys if self.entries.pop(key, None) is not None]
            if known and self.directory is not None:
                self._write(b"".join(json.dumps({"key": key, "forgotten": True}).encode() + b"\n" for key in known))

    def _write(self, data: bytes) -> None:
        """Append ``data`` to this session's file (under the lock)."""
        assert self.directory is not None
        if self._out is None:
            self._out = self._path.open("ab") if self._opened else self._open(self.directory)
            self._opened = True
        with naming(self._path):
            self._out.write(data)
        self._dirty = True

    def sync(self) -> None:
        """Flush and fsync what was recorded since the last sync."""
        with self._lock:
            if self._out is not None and self._dirty:
                with naming(self._path):
                    self._out.flush()
                    os.fsync(self._out.fileno())
                self._dirty = False

    def close(self) -> None:
        """Sync and close the session's log file."""
        self.sync()
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


def call_key(model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any], episode: str | None, n: int) -> str:
    """The key of a call: SHA-256 over (model, messages, tools, answer-relevant params, episode, occurrence).

    Example:
        >>> a = call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0, "api_key": "x"}, "ep", 0)
        >>> a == call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0}, "ep", 0)
        True
        >>> a == call_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0}, "ep", 1)
        False
    """
    params = {k: v for k, v in kwargs.items() if k not in TRANSPORT_PARAMS and k != "tools"}
    # the JSON of {"episode", "format", "messages", "model", "n", "params", "tools"} with sorted keys,
    # written part by part so that the tools' part (the largest, the same on every call) is reused
    text = (
        f'{{"episode":{_canonical(episode)},"format":{_canonical(KEY_FORMAT)},"messages":{_canonical(messages)}'
        f',"model":{_canonical(model)},"n":{_canonical(n)},"params":{_canonical(params)}'
        f',"tools":{_tools_json(kwargs.get("tools"))}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


_tools_seen: dict[tuple[int, ...], tuple[list[Any], list[Any], str]] = {}
"""Tool lists already written, by the ids of their schemas: (those schemas, a copy of them, their JSON)."""


def _tools_json(tools: Any) -> str:
    """:func:`_canonical` of the tool schemas of a call, reused while the schemas are equal to what was written.

    Every call of an environment sends the same schema objects (milliseconds of JSON per episode);
    the copy guards against a schema changed in place since (an equality check: microseconds).
    """
    if not isinstance(tools, list) or not tools:
        return _canonical(tools)
    ids = tuple(map(id, tools))
    seen = _tools_seen.get(ids)
    if seen is not None and seen[1] == tools:
        return seen[2]
    text = _canonical(tools)
    if len(_tools_seen) >= 4096:
        _tools_seen.clear()
    _tools_seen[ids] = (list(tools), json.loads(text), text)
    return text


@dataclass
class CallStats:
    """Totals over the whole run, for the progress bar and the summary (tokens and cost: ``usage``)."""

    calls: int = 0
    answered: int = 0
    replayed: int = 0
    retries: int = 0
    failures: int = 0
    usage: UsageMeter = field(default_factory=UsageMeter)


class ModelCalls:
    """The model client of a run (see the module docstring); a :class:`envsim.llm.ModelClient`.

    Args:
        mode: ``off`` (calls go to the provider, nothing recorded), ``record`` or ``replay``.
        log: Where records live (needed for ``record`` and ``replay``).
        timeout: Seconds allowed per try (None: the call's own ``timeout``, if any).
        max_retries: Retries after the first try of a retryable failure.
        backoff: Base of the exponential backoff, in seconds.
        max_backoff: Ceiling of one backoff (a ``Retry-After`` may exceed it).
        defaults: Parameters every call gets unless it sets them (``api_base``, ``api_key``).
        seed: Seed of the jitter.
        transport: The client that makes the calls (default: litellm, :func:`envsim.llm.default_client`).
    """

    def __init__(
        self,
        *,
        mode: CacheMode = "off",
        log: CallLog | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        defaults: dict[str, Any] | None = None,
        seed: int | None = None,
        transport: ModelClient | None = None,
    ) -> None:
        if mode != "off" and log is None:
            raise ValueError(f"mode {mode!r} needs a CallLog")
        self.mode = mode
        self.log = log
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.defaults = dict(defaults or {})
        self.stats = CallStats()
        self._retrying = RetryingClient(
            transport,
            max_retries=max_retries,
            backoff=backoff,
            max_backoff=max_backoff,
            seed=seed,
            delay=lambda error, tries: self._delay(error, tries),
            on_retry=self._on_retry,
        )

    @property
    def transport(self) -> ModelClient:
        """The client that makes each try (litellm by default)."""
        return self._retrying.transport

    @transport.setter
    def transport(self, client: ModelClient) -> None:
        self._retrying.transport = client

    def for_role(self, name: str) -> ModelClient:
        """A view of this client whose calls are metered under role ``name`` (agent, user, judge)."""
        return RoleClient(self, name)

    # -- shared steps -------------------------------------------------------------------------

    def _key(self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> tuple[str, CallScope | None]:
        scope = _scope.get()
        if self.mode == "off":
            return "", scope  # nothing is looked up or recorded: no key to compute
        episode = scope.episode_id if scope is not None else None
        first = call_key(model, messages, kwargs, episode, 0)
        if scope is None:
            return first, None
        n = scope.occurrences[first]
        scope.occurrences[first] += 1
        key = first if n == 0 else call_key(model, messages, kwargs, episode, n)
        scope.keys.append(key)
        return key, scope

    def _lookup(self, model: str, key: str, scope: CallScope | None, role_name: str) -> Completion | None:
        if self.mode == "off":
            return None
        assert self.log is not None
        entry = self.log.get(key)
        if entry is not None and entry.completion is not None:
            self.stats.replayed += 1
            if scope is not None:
                scope.replayed += 1
            self._count(scope, role_name, entry.completion, entry.failed_attempts + 1)
            return entry.completion.tried(entry.failed_attempts + 1)
        if entry is not None and self.mode == "replay":  # the recorded failure, again
            self.stats.replayed += 1
            self.stats.failures += 1
            self._count(scope, role_name, None, entry.failed_attempts)
            raise ModelCallError(model, ReplayedFailure(entry.error or "recorded failure"))
        if self.mode == "replay":
            episode = scope.episode_id if scope is not None else None
            raise CallCacheMiss(
                f"replay: no recorded answer for a call to {model} (role {role_name}) in episode {episode}"
                f" (key {key[:16]});"
                " the run was not recorded with --record, or its configuration changed"
            )
        return None

    def _request(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        request = {**self.defaults, **kwargs}
        if self.timeout is not None:
            request.setdefault("timeout", self.timeout)
        request.setdefault("max_retries", 0)
        return request

    def _count(self, scope: CallScope | None, role_name: str, completion: Completion | None, calls: int) -> None:
        self.stats.calls += calls
        if completion is not None:
            self.stats.usage.add(completion)
            calls -= 1
        if calls:
            self.stats.usage.fail(calls)
        if scope is not None:
            scope.add(role_name, completion, calls + (completion is not None))

    def _delay(self, error: ModelCallError, tries: int) -> float:
        """Seconds before the next try (the retry policy's, :meth:`envsim.llm.RetryingClient.delay`)."""
        return self._retrying.delay(error, tries)

    def _on_retry(self, error: ModelCallError, tries: int) -> None:
        self.stats.retries += 1
        scope = _scope.get()
        if scope is not None:
            scope.retries += 1

    def _done(
        self, key: str, model: str, scope: CallScope | None, role_name: str, completion: Completion
    ) -> Completion:
        tries = completion.attempts
        answer = dataclasses.replace(completion, attempts=1) if tries > 1 else completion
        self.stats.answered += 1
        self._count(scope, role_name, answer, tries)
        if self.mode == "record":
            assert self.log is not None
            episode = scope.episode_id if scope is not None else None
            self.log.put(key, CallEntry(answer, tries - 1), model=model, role=role_name, episode=episode)
        return completion

    def _give_up_on(self, key: str, model: str, scope: CallScope | None, role_name: str, error: ModelCallError) -> None:
        tries = error.attempts
        self.stats.failures += 1
        self._count(scope, role_name, None, tries)
        if self.mode == "record":
            assert self.log is not None
            episode = scope.episode_id if scope is not None else None
            entry = CallEntry(None, tries, describe(error))
            self.log.put(key, entry, model=model, role=role_name, episode=episode)

    # -- the ModelClient protocol ---------------------------------------------------------------

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """A synchronous call, metered under role ``other`` (blocking sleeps between retries)."""
        return self.call(model, messages, kwargs, "other")

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """An asynchronous call, metered under role ``other`` (see :meth:`acall`)."""
        return await self.acall(model, messages, kwargs, "other")

    def call(self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any], role_name: str) -> Completion:
        """A synchronous call of role ``role_name`` (blocking sleeps between retries)."""
        key, scope = self._key(model, messages, kwargs)
        hit = self._lookup(model, key, scope, role_name)
        if hit is not None:
            return hit
        try:
            completion = self._retrying.complete(model, messages, **self._request(kwargs))
        except ModelCallError as error:
            self._give_up_on(key, model, scope, role_name, error)
            raise
        return self._done(key, model, scope, role_name, completion)

    async def acall(
        self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any], role_name: str
    ) -> Completion:
        """An asynchronous call of role ``role_name``: each try bounded by ``timeout`` (plus a grace second)."""
        key, scope = self._key(model, messages, kwargs)
        hit = self._lookup(model, key, scope, role_name)
        if hit is not None:
            return hit
        try:
            completion = await self._retrying.acomplete(model, messages, **self._request(kwargs))
        except ModelCallError as error:
            self._give_up_on(key, model, scope, role_name, error)
            raise
        return self._done(key, model, scope, role_name, completion)

    def sync(self) -> None:
        """Make every recorded answer durable."""
        if self.log is not None:
            self.log.sync()

    def close(self) -> None:
        """Sync and close the records."""
        if self.log is not None:
            self.log.close()


class RoleClient:
    """A view of a run's :class:`ModelCalls` whose calls are metered under one role (:meth:`ModelCalls.for_role`)."""

    __slots__ = ("calls", "role")

    def __init__(self, calls: ModelCalls, role: str) -> None:
        self.calls = calls
        self.role = role

    def complete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """A call of this role (see :meth:`ModelCalls.call`)."""
        return self.calls.call(model, messages, kwargs, self.role)

    async def acomplete(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Completion:
        """A call of this role, awaited (see :meth:`ModelCalls.acall`)."""
        return await self.calls.acall(model, messages, kwargs, self.role)
