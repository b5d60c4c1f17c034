"""Where the judge's verdicts are cached: the folder of ``$ENVSIM_JUDGE_CACHE``, as model-call records.

The judge caches what its model answered through :class:`envsim.calls.ModelCalls`, the model-call
layer of a run, in its records' format (:class:`envsim.calls.CallLog`: append-only
``calls-NNNN.jsonl`` files, one per session); this module says which folder, and keeps one
:class:`~envsim.calls.CallLog` per folder in a process, so the judges of a process share their answers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from envsim.calls import CallLog

CACHE_ENV = "ENVSIM_JUDGE_CACHE"
"""Environment variable naming the judge's disk cache folder (``off`` keeps the cache in memory only)."""

_shared: dict[Path | None, CallLog] = {}
_shared_lock = threading.Lock()


def default_cache_dir() -> Path | None:
    """``$ENVSIM_JUDGE_CACHE`` (``off``: none), else ``$XDG_CACHE_HOME/envsim/judge``, else ``~/.cache/...``."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip():
        return None if configured.strip().lower() == "off" else Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "envsim" / "judge"


def shared_log(directory: str | Path | None = None) -> CallLog:
    """The process-wide records of ``directory`` (default: :func:`default_cache_dir`; in memory when that is none)."""
    resolved = Path(directory).expanduser().resolve() if directory is not None else default_cache_dir()
    with _shared_lock:
        if resolved not in _shared:
            _shared[resolved] = CallLog(resolved)
        return _shared[resolved]
