"""Pieces shared by the mocked systems: the human hand-off record and tool.

Free text (a summary, a note) is returned to the agent and kept in the trajectory, but
never stored in the world: stored state must be comparable by hash, whatever the wording.
"""

from __future__ import annotations

from typing import Literal

from envsim.tools import tool
from envsim.world import Record, Table

HandoffReason = Literal[
    "customer_request",
    "policy_exception",
    "fraud_suspected",
    "medical_concern",
    "complaint",
    "technical_issue",
    "other",
]


class Handoff(Record):
    """A transfer of the conversation to a human agent."""

    id: str
    reason: HandoffReason
    subject_id: str | None = None


class HumanHandoff:
    """Mixin giving a toolkit ``transfer_to_human``; the toolkit needs a ``handoffs`` table."""

    handoffs: Table[Handoff]

    @tool(write=True, ends_episode=True, escalation=True)
    def transfer_to_human(self, reason: HandoffReason, summary: str, subject_id: str | None = None) -> dict[str, str]:
        """Transfer the customer to a human agent; this ends your part of the conversation.

        Args:
            reason: Why the customer needs a human.
            summary: What the human agent needs to know, in one or two sentences.
            subject_id: The customer, patient or account the hand-off is about, if known.
        """
        handoff_id = f"H{len(self.handoffs) + 1}"
        self.handoffs.put(handoff_id, Handoff(id=handoff_id, reason=reason, subject_id=subject_id))
        return {"handoff_id": handoff_id, "status": "transferred", "summary": summary}
