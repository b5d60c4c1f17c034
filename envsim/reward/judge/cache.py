"""The judge's verdict cache: samples by content hash, in memory and as JSON files written by atomic rename."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from envsim.fileio import write_atomic
from envsim.reward.judge.verdicts import JudgeSample

CACHE_ENV = "ENVSIM_JUDGE_CACHE"
"""Environment variable naming the judge's disk cache folder (``off`` keeps the cache in memory only)."""

CACHE_FORMAT: Literal["envsim.judge_cache/1"] = "envsim.judge_cache/1"
"""The format tag of a cache file; bump it when the cached sample's shape changes."""


def default_cache_dir() -> Path | None:
    """``$ENVSIM_JUDGE_CACHE`` (``off``: none), else ``$XDG_CACHE_HOME/envsim/judge``, else ``~/.cache/...``."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip():
        return None if configured.strip().lower() == "off" else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "envsim" / "judge"


class _CacheEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["envsim.judge_cache/1"] = CACHE_FORMAT
    key: str
    model: str
    sample: JudgeSample


class JudgeCache:
    """Judge samples by content hash: in memory, and as JSON files under ``directory`` (if any).

    Files are written to a temporary name and renamed into place, so concurrent writers (threads
    or processes) never leave a partial file; an unreadable file counts as a miss.

    Args:
        directory: Folder of the disk cache, or None for memory only.
        memory: Keep samples in memory too (off: every lookup reads the disk).
    """

    _shared: ClassVar[dict[Path | None, JudgeCache]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: str | Path | None, *, memory: bool = True) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else None
        self.memory = memory
        self._entries: dict[str, JudgeSample] = {}
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, directory: str | Path | None = None) -> JudgeCache:
        """The process-wide cache of ``directory`` (default: :func:`default_cache_dir`)."""
        resolved = Path(directory).expanduser().resolve() if directory is not None else default_cache_dir()
        with cls._shared_lock:
            if resolved not in cls._shared:
                cls._shared[resolved] = cls(resolved)
            return cls._shared[resolved]

    def path(self, key: str) -> Path | None:
        """Where the sample of ``key`` lives on disk (None without a disk cache)."""
        return None if self.directory is None else self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> JudgeSample | None:
        """The cached sample of ``key``, or None."""
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None:
            return hit
        path = self.path(key)
        if path is None:
            return None
        try:
            entry = _CacheEntry.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None
        if entry.key != key:
            return None
        if self.memory:
            with self._lock:
                self._entries[key] = entry.sample
        return entry.sample

    def put(self, key: str, model: str, sample: JudgeSample) -> None:
        """Store ``sample`` under ``key`` (atomically on disk)."""
        if self.memory:
            with self._lock:
                self._entries[key] = sample
        path = self.path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _CacheEntry(key=key, model=model, sample=sample).model_dump_json(indent=1)
        write_atomic(path, data, durable=False)  # a cache: a lost entry is judged again

    def clear_memory(self) -> None:
        """Forget the in-memory entries (the disk stays)."""
        with self._lock:
            self._entries.clear()
