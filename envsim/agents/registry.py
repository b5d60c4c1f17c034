"""Agents (policies) by name, for command lines and configs.

Example:
    >>> type(make_agent("scripted", error_rate=0.1)).__name__
    'ScriptedAgent'
    >>> make_agent("llm", model="openai/gpt-4o-mini").model
    'openai/gpt-4o-mini'
"""

from __future__ import annotations

from typing import Any

from envsim.agents.base import Policy
from envsim.registry_base import make_registered

AGENTS: dict[str, str] = {
    "scripted": "envsim.agents.scripted:ScriptedAgent",
    "llm": "envsim.agents.llm:LLMAgent",
    "hf": "envsim.agents.hf:HFAgent",
}
"""Name → ``"module:Class"`` of every built-in agent (imported only when made: ``hf`` needs the ``train`` extra)."""


def make_agent(name: str, **options: Any) -> Policy:
    """A new agent of kind ``name`` (``options`` go to its constructor)."""
    agent = make_registered("agent", AGENTS, name, **options)
    assert isinstance(agent, Policy)
    return agent
