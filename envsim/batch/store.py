"""The run directory: a manifest, the plan, fsync'd JSONL shards of episode records, a Parquet table.

Layout::

    RUN_DIR/
      manifest.json             config, options, scenarios (paths, content hashes), versions, git commit,
                                sessions (one per invocation) and the counts of the store
      plan.jsonl                every planned episode (EpisodeSpec), one per line, written once
      episodes/shard-0000.jsonl one EpisodeRecord per line: the full trajectory, reward breakdown, usage
      episodes/shard-0001.jsonl a new shard per session (and every ``max_shard_bytes``)
      episodes.parquet          one row per stored episode, flattened (written at the end, or on demand)
      calls/                    recorded model calls (``--record``/``--replay``; see envsim.batch.cache)
      .lock                     held (flock) by the generator using the directory

Durability: a record is written as one line, flushed and ``os.fsync``'d before its episode counts
as stored (:meth:`RunStore.append` takes a batch and syncs once for all of it: group commit).
``manifest.json`` and ``plan.jsonl`` are replaced atomically (temporary file, fsync, rename).

After a crash or ``kill -9`` the last line of a shard may be torn (no final newline, or not
JSON): :meth:`RunStore.scan` skips and reports it, :meth:`RunStore.repair` truncates it. Reading
deduplicates by episode id: a later ``infra_error`` never hides a stored result, and a stored
result supersedes an earlier ``infra_error`` record of the same episode (the retry on resume).

Example:
    >>> import tempfile
    >>> from envsim.batch.plan import GenerateConfig, RunOptions
    >>> root = Path(tempfile.mkdtemp()) / "run"
    >>> store = RunStore.create(root, Manifest.new(GenerateConfig(), RunOptions(), [], seeds=[0], episodes=1), [])
    >>> sorted(p.name for p in root.iterdir())
    ['.lock', 'episodes', 'manifest.json', 'plan.jsonl']
    >>> store.scan().records
    {}
    >>> store.close()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import platform
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsim.batch.plan import SCHEMA_VERSION, EpisodeSpec, GenerateConfig, RunOptions, ScenarioSource, sha256_hex
from envsim.errors import RunStoreError
from envsim.fileio import fsync_dir as _fsync_dir
from envsim.fileio import naming, write_atomic
from envsim.reward.base import RewardBreakdown
from envsim.reward.outcome import Outcome, carries_reward
from envsim.trajectory import Trajectory, Usage

MANIFEST = "manifest.json"
PLAN = "plan.jsonl"
EPISODES = "episodes"
PARQUET = "episodes.parquet"
LOCK = ".lock"
DEFAULT_SHARD_BYTES = 256 * 1024 * 1024
"""A session starts a new shard once the current one is this big."""


class EpisodeRecord(BaseModel):
    """One finished episode as stored: what it was, how it ended, and the full trajectory.

    ``elapsed_s`` (wall time of the attempt) and ``attempts`` (how many times the run has tried the
    episode: more than 1 after infra errors) describe the execution; every other field is
    determined by the episode (same seed, same model answers: same values).
    """

    # NaN scores (a judge that could not score) are written as JSON's ``NaN``, as Python's json reads them
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    schema_version: int = SCHEMA_VERSION
    episode_id: str
    scenario_id: str
    scenario_hash: str
    config_hash: str
    index: int
    base_seed: int
    seed: int
    outcome: Outcome
    reward: float | None = Field(None, description="The total reward; None when the episode has no breakdown.")
    breakdown: RewardBreakdown | None = None
    models: dict[str, str | None] = Field(default_factory=dict, description="Model per role: agent, user, judge.")
    usage: dict[str, Usage] = Field(default_factory=dict, description="Model usage per role (every call, retries in).")
    trajectory: Trajectory
    trajectory_hash: str = Field(description="SHA-256 of trajectory.to_json().")
    error: str | None = Field(None, description="The infrastructure or simulator error, if any.")
    attempts: int = Field(1, ge=1, description="Tries of this episode so far in the run (infra errors resumed).")
    elapsed_s: float = Field(0.0, ge=0, description="Wall seconds of the attempt that produced this record.")

    @property
    def carries_reward(self) -> bool:
        """Whether ``reward`` is evidence about the agent (success, failure, truncated)."""
        return carries_reward(self.outcome)

    def to_line(self) -> str:
        """One JSONL line (with its newline); NaN scores survive (JSON ``NaN``)."""
        return self.model_dump_json() + "\n"

    @classmethod
    def from_line(cls, line: str | bytes) -> EpisodeRecord:
        """Parse a line written by :meth:`to_line`."""
        return cls.model_validate(json.loads(line))


def trajectory_hash(trajectory: Trajectory) -> str:
    """SHA-256 of the trajectory's deterministic JSON."""
    return sha256_hex(trajectory.to_json())


SessionStatus = Literal["running", "finished", "interrupted", "failed", "killed"]


class SessionInfo(BaseModel):
    """One invocation of the generator on the run directory."""

    model_config = ConfigDict(extra="forbid")

    started_at: str
    finished_at: str | None = None
    status: SessionStatus = "running"
    resumed: bool = False
    pid: int = Field(default_factory=os.getpid)
    options: RunOptions
    todo: int = Field(0, description="Episodes this session set out to run.")
    stored: int = Field(0, description="Records this session appended.")
    outcomes: dict[str, int] = Field(default_factory=dict)
    torn_lines_repaired: int = 0
    wall_seconds: float = 0.0
    error: str | None = None


class StoreCounts(BaseModel):
    """What the store held when the manifest was last written."""

    model_config = ConfigDict(extra="forbid")

    planned: int = 0
    stored: int = Field(0, description="Distinct episodes with a record (infra errors included).")
    complete: int = Field(0, description="Stored episodes whose outcome is final (not infra_error).")
    missing: int = Field(0, description="Planned episodes with no final outcome yet: resume runs them.")
    outcomes: dict[str, int] = Field(default_factory=dict)


class Manifest(BaseModel):
    """``manifest.json``: what the run is and what it has done."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    created_at: str
    config: GenerateConfig
    config_hash: str
    options: RunOptions = Field(description="The options of the first session (later ones: see sessions).")
    scenarios: list[ScenarioSource]
    seeds: list[int]
    episodes: int = Field(description="Episodes per scenario and seed.")
    episodes_planned: int
    versions: dict[str, str] = Field(default_factory=dict)
    git: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per git repository holding scenarios: commit and whether it is dirty."
    )
    sessions: list[SessionInfo] = Field(default_factory=list)
    counts: StoreCounts = Field(default_factory=StoreCounts)

    @classmethod
    def new(
        cls,
        config: GenerateConfig,
        options: RunOptions,
        scenarios: Sequence[ScenarioSource],
        *,
        seeds: Sequence[int],
        episodes: int,
    ) -> Manifest:
        """A manifest for a new run (versions and the scenarios' git commits filled in)."""
        return cls(
            created_at=now_iso(),
            config=config,
            config_hash=config.config_hash(),
            options=options,
            scenarios=list(scenarios),
            seeds=list(seeds),
            episodes=episodes,
            episodes_planned=len(scenarios) * len(seeds) * episodes,
            versions=versions(),
            git=git_info([Path(s.path) for s in scenarios]),
        )


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def versions() -> dict[str, str]:
    """Versions of envsim, Python and the libraries a run depends on (those installed)."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("envsim", "pydantic", "gymnasium", "litellm", "numpy", "pyarrow", "pandas"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(paths: Sequence[Path]) -> dict[str, dict[str, Any]]:
    """Per git work tree holding some of ``paths``: its HEAD commit and whether those files differ from it."""
    by_root: dict[str, list[Path]] = {}
    for path in paths:
        root = _git(["rev-parse", "--show-toplevel"], path.parent)
        if root:
            by_root.setdefault(root, []).append(path)
    info: dict[str, dict[str, Any]] = {}
    for root, files in sorted(by_root.items()):
        commit = _git(["rev-parse", "HEAD"], Path(root))
        status = _git(["status", "--porcelain", "--", *map(str, files)], Path(root))
        info[root] = {"commit": commit, "dirty": bool(status), "files": len(files)}
    return info


@dataclass(frozen=True)
class BadLine:
    """A line of a shard that is not a complete record: ``torn`` (the unterminated tail) or ``corrupt``."""

    shard: str
    line: int
    offset: int
    kind: Literal["torn", "corrupt"]
    reason: str


@dataclass
class StoreScan:
    """What the shards hold, deduplicated by episode id (see the module docstring for precedence)."""

    records: dict[str, EpisodeRecord] = field(default_factory=dict)
    lines: int = 0
    superseded: int = 0
    bad: list[BadLine] = field(default_factory=list)
    locations: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def torn(self) -> list[BadLine]:
        """Unterminated last lines (an interrupted write)."""
        return [b for b in self.bad if b.kind == "torn"]

    def complete_ids(self) -> set[str]:
        """Episodes with a final outcome (everything but ``infra_error``)."""
        return {i for i, r in self.records.items() if r.outcome != "infra_error"}

    def outcome_counts(self) -> dict[str, int]:
        """Stored episodes per outcome."""
        return dict(sorted(Counter(r.outcome for r in self.records.values()).items()))


def _shard_number(path: Path) -> int:
    try:
        return int(path.stem.removeprefix("shard-"))
    except ValueError:
        return -1


class RunStore:
    """A run directory, opened by one generator at a time (an ``flock`` on ``.lock``).

    Use :meth:`create` for a new run and :meth:`open` for an existing one (``lock=False`` to only
    read, e.g. while a generator is writing).
    """

    def __init__(self, root: Path, *, lock: bool = True, max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        self.root = Path(root)
        self.max_shard_bytes = max_shard_bytes
        self._lock: IO[str] | None = None
        self._shard: IO[bytes] | None = None
        self._shard_path: Path | None = None
        self._shard_lines = 0
        if lock:
            self._acquire()

    # -- paths --------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        """``RUN_DIR/manifest.json``."""
        return self.root / MANIFEST

    @property
    def plan_path(self) -> Path:
        """``RUN_DIR/plan.jsonl``."""
        return self.root / PLAN

    @property
    def episodes_dir(self) -> Path:
        """``RUN_DIR/episodes``."""
        return self.root / EPISODES

    @property
    def parquet_path(self) -> Path:
        """``RUN_DIR/episodes.parquet``."""
        return self.root / PARQUET

    def shards(self) -> list[Path]:
        """The shard files, in order."""
        if not self.episodes_dir.is_dir():
            return []
        return sorted((p for p in self.episodes_dir.glob("shard-*.jsonl") if _shard_number(p) >= 0), key=_shard_number)

    # -- opening ------------------------------------------------------------------------------

    def _acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle = (self.root / LOCK).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunStoreError(f"{self.root} is in use by another generator (pid {holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    @classmethod
    def create(cls, root: Path, manifest: Manifest, plan: Sequence[EpisodeSpec], **kwargs: Any) -> RunStore:
        """Start a new run in ``root`` (absent or empty of runs): write the plan, then the manifest."""
        root = Path(root)
        if (root / MANIFEST).exists():
            raise RunStoreError(f"{root} already holds a run: resume it with --resume {root}, or choose another --out")
        if root.exists() and not root.is_dir():
            raise RunStoreError(f"{root} exists and is not a folder")
        store = cls(root, **kwargs)
        try:
            if store.shards():
                raise RunStoreError(f"{root} holds episode shards but no manifest: choose another --out")
            store.episodes_dir.mkdir(exist_ok=True)
            write_atomic(store.plan_path, "".join(spec.model_dump_json() + "\n" for spec in plan))
            store.write_manifest(manifest)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, root: Path, **kwargs: Any) -> RunStore:
        """Open an existing run."""
        root = Path(root)
        if not (root / MANIFEST).is_file():
            raise RunStoreError(f"{root} is not a run directory (no {MANIFEST})")
        return cls(root, **kwargs)

    def close(self) -> None:
        """Close the current shard and release the lock."""
        if self._shard is not None:
            self._shard.close()
            self._shard = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manifest and plan --------------------------------------------------------------------

    def read_manifest(self) -> Manifest:
        """The manifest (raises :class:`RunStoreError` when it is unreadable)."""
        try:
            return Manifest.model_validate_json(self.manifest_path.read_bytes())
        except (OSError, ValidationError) as error:
            raise RunStoreError(f"{self.manifest_path}: unreadable manifest: {error}") from error

    def write_manifest(self, manifest: Manifest) -> None:
        """Replace the manifest atomically."""
        write_atomic(self.manifest_path, manifest.model_dump_json(indent=2) + "\n")

    def read_plan(self) -> list[EpisodeSpec]:
        """The planned episodes, in plan order."""
        try:
            with self.plan_path.open("rb") as f:
                return [EpisodeSpec.model_validate_json(line) for line in f if line.strip()]
        except (OSError, ValidationError) as error:
            raise RunStoreError(f"{self.plan_path}: unreadable plan: {error}") from error

    # -- writing ------------------------------------------------------------------------------

    def _open_new_shard(self) -> None:
        if self._shard is not None:
            self._shard.close()
        self.episodes_dir.mkdir(parents=True, exist_ok=True)
        existing = self.shards()
        number = _shard_number(existing[-1]) + 1 if existing else 0
        self._shard_path = self.episodes_dir / f"shard-{number:04d}.jsonl"
        self._shard = self._shard_path.open("xb")
        self._shard_lines = 0
        _fsync_dir(self.episodes_dir)

    def append(self, records: Iterable[EpisodeRecord]) -> int:
        """Append records (one line each), flush and fsync once for the batch; returns how many.

        When this returns, every record given is on disk.
        """
        data = b"".join(r.to_line().encode("utf-8") for r in records)
        if not data:
            return 0
        if self._shard is None or self._shard.tell() >= self.max_shard_bytes:
            self._open_new_shard()
        assert self._shard is not None and self._shard_path is not None
        with naming(self._shard_path):  # a full disk names the shard
            self._shard.write(data)
            self._shard.flush()
            os.fsync(self._shard.fileno())
        count = data.count(b"\n")
        self._shard_lines += count
        return count

    # -- reading ------------------------------------------------------------------------------

    def iter_lines(self) -> Iterator[tuple[Path, int, int, bytes]]:
        """Every line of every shard: (shard, 1-based line number, byte offset, bytes with newline)."""
        for shard in self.shards():
            offset = 0
            with shard.open("rb") as f:
                for number, line in enumerate(f, start=1):
                    yield shard, number, offset, line
                    offset += len(line)

    def scan(self) -> StoreScan:
        """Read every shard, skipping (and reporting) torn and corrupt lines; deduplicate by episode id."""
        scan = StoreScan()
        for shard, number, offset, line in self.iter_lines():
            scan.lines += 1
            if not line.endswith(b"\n"):
                scan.bad.append(BadLine(shard.name, number, offset, "torn", "no final newline (interrupted write)"))
                continue
            try:
                record = EpisodeRecord.from_line(line)
            except (ValueError, ValidationError) as error:
                reason = str(error).splitlines()[0][:200]
                scan.bad.append(BadLine(shard.name, number, offset, "corrupt", reason))
                continue
            previous = scan.records.get(record.episode_id)
            if previous is not None:
                scan.superseded += 1
                if previous.outcome != "infra_error":
                    continue  # the first final record stands; a later one (or infra error) is superseded
            scan.records[record.episode_id] = record
            scan.locations[record.episode_id] = (shard.name, number)
        return scan

    def repair(self) -> list[BadLine]:
        """Truncate the torn tail of every shard (what :meth:`scan` reports as torn); returns what was cut."""
        cut: list[BadLine] = []
        for bad in self.scan().torn:
            path = self.episodes_dir / bad.shard
            with naming(path), path.open("r+b") as f:
                f.truncate(bad.offset)
                f.flush()
                os.fsync(f.fileno())
            cut.append(bad)
        return cut

    def counts(self, scan: StoreScan | None = None, plan: Sequence[EpisodeSpec] | None = None) -> StoreCounts:
        """Planned, stored, complete and missing episodes and the outcome counts, from the shards."""
        scan = scan or self.scan()
        planned = {s.episode_id for s in (plan if plan is not None else self.read_plan())}
        stored = {i: r for i, r in scan.records.items() if i in planned}
        complete = sum(r.outcome != "infra_error" for r in stored.values())
        return StoreCounts(
            planned=len(planned),
            stored=len(stored),
            complete=complete,
            missing=len(planned) - complete,
            outcomes=dict(sorted(Counter(r.outcome for r in stored.values()).items())),
        )

    # -- Parquet ------------------------------------------------------------------------------

    def write_parquet(self, scan: StoreScan | None = None) -> Path:
        """Write ``episodes.parquet`` (one row per stored episode, see :func:`record_row`) atomically."""
        import pandas as pd

        scan = scan or self.scan()
        rows = [record_row(r, *scan.locations.get(i, ("", 0))) for i, r in scan.records.items()]
        frame = pd.DataFrame(rows, columns=_columns(rows))
        tmp = self.parquet_path.with_name(f".{PARQUET}.{os.getpid()}.tmp")
        try:
            with naming(self.parquet_path):
                frame.to_parquet(tmp, index=False)
                with tmp.open("rb") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, self.parquet_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.parquet_path


def load_records(run_dir: str | Path) -> dict[str, EpisodeRecord]:
    """The stored episodes of a run, one per episode id (read-only; a running generator may keep writing).

    Example:
        >>> try:
        ...     load_records("/no/such/run")
        ... except RunStoreError as error:
        ...     print(error)
        /no/such/run is not a run directory (no manifest.json)
    """
    return RunStore.open(Path(run_dir), lock=False).scan().records


_FIXED_COLUMNS = [
    "schema_version",
    "episode_id",
    "scenario_id",
    "scenario_hash",
    "config_hash",
    "index",
    "base_seed",
    "seed",
    "outcome",
    "carries_reward",
    "reward",
    "end_reason",
    "turns",
    "tool_calls",
    "tool_errors",
    "messages",
    "agent_model",
    "user_model",
    "judge_model",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "model_calls",
    "trajectory_hash",
    "final_state_hash",
    "error",
    "attempts",
    "elapsed_s",
    "shard",
    "line",
]


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    extra = sorted({k for row in rows for k in row} - set(_FIXED_COLUMNS))
    return _FIXED_COLUMNS + extra


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def record_row(record: EpisodeRecord, shard: str = "", line: int = 0) -> dict[str, Any]:
    """The Parquet row of a record: identity, outcome, reward, flattened components and KPIs, usage.

    Reward components become ``reward_<name>`` (score), KPIs ``kpi_<name>``, usage per role
    ``<role>_prompt_tokens``, ``<role>_completion_tokens``, ``<role>_cost``, ``<role>_calls``.
    """
    trajectory = record.trajectory
    total = Usage()
    for usage in record.usage.values():
        total = total + usage
    row: dict[str, Any] = {
        "schema_version": record.schema_version,
        "episode_id": record.episode_id,
        "scenario_id": record.scenario_id,
        "scenario_hash": record.scenario_hash,
        "config_hash": record.config_hash,
        "index": record.index,
        "base_seed": record.base_seed,
        "seed": record.seed,
        "outcome": record.outcome,
        "carries_reward": record.carries_reward,
        "reward": _number(record.reward),
        "end_reason": trajectory.end_reason,
        "turns": trajectory.turns,
        "tool_calls": len(trajectory.tool_calls),
        "tool_errors": sum(not c.ok for c in trajectory.tool_calls),
        "messages": len(trajectory.messages),
        "agent_model": record.models.get("agent"),
        "user_model": record.models.get("user"),
        "judge_model": record.models.get("judge"),
        "prompt_tokens": total.prompt_tokens,
        "completion_tokens": total.completion_tokens,
        "total_tokens": total.total_tokens,
        "cost": total.cost,
        "model_calls": total.calls,
        "trajectory_hash": record.trajectory_hash,
        "final_state_hash": trajectory.final_state_hash,
        "error": record.error,
        "attempts": record.attempts,
        "elapsed_s": record.elapsed_s,
        "shard": shard,
        "line": line,
    }
    if record.breakdown is not None:
        for name, part in record.breakdown.components.items():
            row[f"reward_{name}"] = part.score
        for name, value in record.breakdown.measures.items():
            row[f"kpi_{name}"] = _number(value)
    for role, usage in record.usage.items():
        row[f"{role}_prompt_tokens"] = usage.prompt_tokens
        row[f"{role}_completion_tokens"] = usage.completion_tokens
        row[f"{role}_cost"] = usage.cost
        row[f"{role}_calls"] = usage.calls
    return row
