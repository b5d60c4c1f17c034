"""Deterministic seed data: the same seed always gives the same world.

Example:
    >>> state = small(0)
    >>> len(state.employees), len(state.tickets)
    (12, 3)
    >>> small(0) == small(0), small(0) == small(1)
    (True, False)
"""

from __future__ import annotations

import random

from envsim_helpdesk.models import Employee, HelpdeskState, Ticket

FIRST = ("Ada", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Luca")
LAST = ("Moreau", "Okafor", "Patel", "Quinn", "Rossi", "Sato", "Tanaka", "Ueda", "Varga", "Weber")
DEPARTMENTS = ("finance", "sales", "engineering", "legal")
LAPTOPS = ("ThinkPad X1", "MacBook Air", "Latitude 7440")


def small(seed: int) -> HelpdeskState:
    """Twelve employees and three open tickets, drawn from ``seed``."""
    rng = random.Random(seed)
    employees: dict[str, Employee] = {}
    for n, first in enumerate(FIRST, start=1):
        last = rng.choice(LAST)
        key = f"E{n:03d}"
        employees[key] = Employee(
            id=key,
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}@example.com",
            department=rng.choice(DEPARTMENTS),
            laptop=rng.choice(LAPTOPS),
        )
    tickets = {
        f"T{n:04d}": Ticket(
            id=f"T{n:04d}",
            employee_id=rng.choice(sorted(employees)),
            category=rng.choice(["hardware", "access", "software", "network"]),
            priority="normal",
        )
        for n in range(1, 4)
    }
    return HelpdeskState(employees=employees, tickets=tickets)
