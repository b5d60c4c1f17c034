"""Records of the help desk and its world state: every field of the state is a table ``dict[str, Record]``."""

from __future__ import annotations

from typing import Literal

from envsim.world import Record, WorldState

Category = Literal["hardware", "access", "software", "network"]
Priority = Literal["low", "normal", "high"]


class Employee(Record):
    """Someone who may ask the help desk for help."""

    id: str
    name: str
    email: str
    department: str
    laptop: str


class Ticket(Record):
    """A support ticket (its free-text summary is returned to the agent, never stored)."""

    id: str
    employee_id: str
    category: Category
    priority: Priority
    status: Literal["open", "closed"] = "open"


class HelpdeskState(WorldState):
    """The help desk's tables."""

    employees: dict[str, Employee]
    tickets: dict[str, Ticket]
