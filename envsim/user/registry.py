"""Mock users by name, for command lines and configs.

Example:
    >>> type(make_user("scripted")).__name__
    'ScriptedUser'
"""

from __future__ import annotations

from typing import Any

from envsim.registry_base import make_registered
from envsim.user.base import UserSimulator

USERS: dict[str, str] = {
    "scripted": "envsim.user.scripted:ScriptedUser",
    "transcript": "envsim.user.transcript.user:TranscriptUser",
    "llm": "envsim.user.llm:LLMUser",
}
"""Name → ``"module:Class"`` of every built-in mock user (imported only when made)."""


def make_user(name: str, **options: Any) -> UserSimulator:
    """A new mock user of kind ``name`` (``options`` go to its constructor)."""
    user = make_registered("user", USERS, name, **options)
    assert isinstance(user, UserSimulator)
    return user
