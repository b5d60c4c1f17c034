"""The help desk toolkit: find an employee by email, open a support ticket.

Business rule (a broken rule is a ``rule_violation`` error observation for the agent): an
employee has at most one open ticket per category.

Example:
    >>> from envsim.tools import ToolRegistry
    >>> from envsim.world import World
    >>> registry = ToolRegistry([HelpdeskToolkit(World(HelpdeskToolkit.fixtures["small"](0)))])
    >>> registry.call("find_employee", {"email": "nobody@example.com"}).content
    '{"error":{"type":"not_found","message":"no employee with email \\'nobody@example.com\\'"}}'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from envsim.errors import RecordNotFound, RuleViolation
from envsim.tools import Toolkit, tool
from envsim.world import World, WorldState
from envsim_helpdesk.fixtures import small
from envsim_helpdesk.models import Category, Employee, HelpdeskState, Priority, Ticket


class HelpdeskToolkit(Toolkit):
    """An IT help desk: employees and support tickets."""

    name: ClassVar[str] = "helpdesk"
    state_model = HelpdeskState
    fixtures: ClassVar[dict[str, Callable[[int], WorldState]]] = {"small": small}

    def __init__(self, world: World) -> None:
        """Take the help desk's tables from ``world``."""
        super().__init__(world)
        self.employees = world.table("employees", Employee)
        self.tickets = world.table("tickets", Ticket)

    @tool()
    def find_employee(self, email: str) -> Employee:
        """Find an employee by work email address (to check who is calling).

        Args:
            email: The employee's work email, like ada.moreau@example.com (case does not matter).
        """
        found = self.employees.lookup("email", email.strip().lower())
        if not found:
            raise RecordNotFound(f"no employee with email {email!r}")
        return found[0]

    @tool(write=True)
    def open_ticket(self, employee_id: str, category: Category, priority: Priority, summary: str) -> dict[str, str]:
        """Open a support ticket for an employee.

        Args:
            employee_id: The employee's id, like E001 (from find_employee).
            category: What the problem is about.
            priority: high when the employee cannot work at all, else normal (low for requests).
            summary: One sentence describing the problem.
        """
        self.employees.require(employee_id, "employee")
        for ticket in self.tickets.lookup("employee_id", employee_id):
            if ticket.status == "open" and ticket.category == category:
                raise RuleViolation(f"{employee_id} already has open {category} ticket {ticket.id}")
        key = f"T{len(self.tickets) + 1:04d}"
        self.tickets.put(key, Ticket(id=key, employee_id=employee_id, category=category, priority=priority))
        return {"ticket_id": key, "status": "open", "summary": summary}
