"""The run's model client and its records, under their batch-layer names: :mod:`envsim.calls` is their home.

The judge caches its verdicts with the same client and records, so they live outside
:mod:`envsim.batch` (whose package imports the scenarios the judge is part of).
"""

from envsim.calls import (
    KEY_FORMAT,
    TRANSPORT_PARAMS,
    CacheMode,
    CallEntry,
    CallLog,
    CallScope,
    CallStats,
    ModelCalls,
    RoleClient,
    call_key,
    current_scope,
    episode_scope,
)
from envsim.errors import CallCacheMiss

__all__ = [
    "KEY_FORMAT",
    "TRANSPORT_PARAMS",
    "CacheMode",
    "CallCacheMiss",
    "CallEntry",
    "CallLog",
    "CallScope",
    "CallStats",
    "ModelCalls",
    "RoleClient",
    "call_key",
    "current_scope",
    "episode_scope",
]
