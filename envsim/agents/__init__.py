"""Agents (policies) that act in an envsim environment."""

from envsim.agents.base import Policy
from envsim.agents.scripted import ScriptedAgent

__all__ = ["Policy", "ScriptedAgent"]
