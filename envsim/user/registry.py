"""Mock users by name, for command lines and configs.

Example:
    >>> type(make_user("scripted")).__name__
    'ScriptedUser'
"""

from __future__ import annotations

import importlib
from typing import Any

from envsim.errors import UnknownNameError
from envsim.suggest import did_you_mean
from envsim.user.base import UserSimulator

USERS: dict[str, str] = {
    "scripted": "envsim.user.scripted:ScriptedUser",
    "transcript": "envsim.user.transcript:TranscriptUser",
    "llm": "envsim.user.llm:LLMUser",
}
"""Name → ``"module:Class"`` of every built-in mock user (imported only when made)."""


def make_user(name: str, **options: Any) -> UserSimulator:
    """A new mock user of kind ``name`` (``options`` go to its constructor)."""
    if name not in USERS:
        raise UnknownNameError(f"unknown user {name!r}{did_you_mean(name, USERS)}; users: {', '.join(USERS)}")
    module, _, attr = USERS[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    user = cls(**options)
    assert isinstance(user, UserSimulator)
    return user
