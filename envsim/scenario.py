"""The scenario schema: what a scenario YAML file may contain.

Every model forbids unknown keys, so a misspelt key is an error (with a suggestion), never
silently dropped. ``envsim schema`` writes this schema as JSON Schema for editors.

A minimal scenario::

    id: RefundDamagedBlender
    domain: retail
    description: A customer received a broken blender and wants a refund.
    toolkits: [retail]
    world: {fixture: small, seed: 1}
    agent:
      guidelines: Verify the customer by email before any change to an order.
    user:
      goal: Get a refund for order #W0003.
      opening: Hi, my blender arrived broken and I want my money back.
      facts:
        - {key: email, value: ada@example.com, asked_by: [email]}
    expected:
      actions:
        - {name: refund_order, arguments: {order_id: "#W0003", reason: damaged}}
      required_statements: ["refund"]
    max_turns: 12
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from envsim.user.persona import Persona

RewardComponentName = Literal["final_state", "required_statements", "forbidden_actions", "escalation"]
"""The reward components of the core; later components register further names."""

DEFAULT_WEIGHTS: dict[RewardComponentName, float] = {
    "final_state": 0.5,
    "required_statements": 0.2,
    "forbidden_actions": 0.15,
    "escalation": 0.15,
}


class StrictModel(BaseModel):
    """Base of every schema model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class WorldSpec(StrictModel):
    """The initial world: each toolkit's named fixture generated from ``seed``, then records.

    ``inline`` adds whole records; ``overrides`` patches fields of existing records (or adds
    whole new ones; ``null`` deletes). Both are ``{table: {record_id: {field: value}}}``.
    """

    fixture: str | None = Field("default", description="Fixture name of every toolkit, or null for empty tables.")
    seed: int = Field(0, description="Seed of the fixture's generator.")
    inline: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict, description="Whole records to add.")
    overrides: dict[str, dict[str, dict[str, Any] | None]] = Field(
        default_factory=dict, description="Field patches of existing records (null deletes a record)."
    )


class AgentSpec(StrictModel):
    """What the agent is told: its policy and guidelines."""

    guidelines: str = Field(min_length=1, description="The agent's policy text; becomes its system prompt.")


class Fact(StrictModel):
    """Something the user knows and reveals only when the agent asks for it."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier, e.g. phone.")
    value: str = Field(min_length=1, description="The value the user gives, e.g. 555-0142.")
    asked_by: list[str] = Field(min_length=1, description="Words in an agent message that count as asking for it.")
    say: str | None = Field(
        None, description="How the user says it; may use {{ value }}. Default: 'My <key> is <value>.'"
    )


class PersonaSpec(StrictModel):
    """The user's persona: a reference to the persona library, or an inline persona."""

    ref: str | None = Field(None, description="Name of a persona in the library, e.g. panicked_caller.")
    inline: Persona | None = Field(None, description="A persona defined in place.")

    @model_validator(mode="after")
    def _exactly_one(self) -> PersonaSpec:
        if (self.ref is None) == (self.inline is None):
            raise ValueError("give exactly one of 'ref' or 'inline'")
        return self


class UserSpec(StrictModel):
    """The mock user's side of the scenario."""

    goal: str = Field(min_length=1, description="What the user wants, in the user's terms.")
    opening: str = Field(min_length=1, description="The user's first message.")
    facts: list[Fact] = Field(default_factory=list, description="What the user knows and reveals when asked.")
    closing: str = Field("Thank you, that's all I needed.", min_length=1, description="The user's last message.")
    satisfied_by: list[str] = Field(
        default_factory=lambda: ["anything else"],
        description="Phrases in an agent message after which the user closes the conversation.",
    )
    nudges: list[str] = Field(default_factory=list, description="Lines the user says when the agent does not help.")
    persona: PersonaSpec = Field(default_factory=lambda: PersonaSpec(ref="calm"), description="The user's persona.")


class ToolCallSpec(StrictModel):
    """A tool call the correct agent makes."""

    name: str = Field(description="Tool name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Tool arguments.")


class ActionMatch(StrictModel):
    """A pattern of tool calls: a tool name and, optionally, arguments that must all match."""

    name: str = Field(description="Tool name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments to match (empty: any call).")

    def matches(self, name: str, arguments: dict[str, Any]) -> bool:
        """True when a call of ``name`` with ``arguments`` fits this pattern."""
        return name == self.name and all(arguments.get(k) == v for k, v in self.arguments.items())


class Statement(StrictModel):
    """Something the agent must say: any one of several phrasings (case-insensitive)."""

    any_of: list[str] = Field(min_length=1, description="Accepted phrasings; one must appear in an agent message.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"any_of": [value]} if isinstance(value, str) else value


class Expected(StrictModel):
    """The expected outcome: what a correct agent does, says, avoids, and how it ends."""

    actions: list[ToolCallSpec] = Field(default_factory=list, description="Tool calls of a correct agent, in order.")
    required_statements: list[Statement] = Field(default_factory=list, description="What the agent must say.")
    forbidden_actions: list[ActionMatch] = Field(default_factory=list, description="Calls the agent must not make.")
    escalation: Literal["required", "forbidden", "optional"] = Field(
        "optional", description="Whether ending in a hand-off or emergency dispatch is the correct end."
    )


class RewardSpec(StrictModel):
    """How the reward components are weighted (normalised by their sum)."""

    weights: dict[RewardComponentName, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS), description="Weight per reward component."
    )

    @field_validator("weights")
    @classmethod
    def _not_all_zero(cls, weights: dict[RewardComponentName, float]) -> dict[RewardComponentName, float]:
        if weights and sum(weights.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return weights


class Scenario(StrictModel):
    """One scenario: a world, an agent policy, a user with a goal, and the expected outcome."""

    id: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", description="CamelCase id; registered as envsim/<id>-v0.")
    domain: str = Field(min_length=1, description="Business domain, e.g. retail.")
    description: str = Field(min_length=1, description="What happens in this scenario, for people.")
    toolkits: list[str] = Field(min_length=1, description="Mocked systems the agent can use.")
    world: WorldSpec = Field(default_factory=lambda: WorldSpec(), description="The initial world state.")
    agent: AgentSpec
    user: UserSpec
    expected: Expected
    reward: RewardSpec = Field(default_factory=RewardSpec)
    max_turns: int = Field(20, ge=1, le=500, description="Agent steps before the episode is truncated.")
    tags: list[str] = Field(default_factory=list, description="Free labels, e.g. emergency, escalation.")

    @property
    def gym_id(self) -> str:
        """The Gymnasium id this scenario is registered under."""
        return f"envsim/{self.id}-v0"
