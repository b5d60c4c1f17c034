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

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from envsim.rubric_schema import JudgeRubric, resolve_reference
from envsim.user.persona import Persona
from envsim.world import WorldSpec

RewardComponentName = Literal[
    "final_state",
    "required_statements",
    "forbidden_actions",
    "escalation",
    "required_actions",
    "argument_checks",
    "no_false_claims",
    "handoff_summary",
    "containment",
    "resolution",
    "customer_effort",
]
"""The built-in reward components (:data:`envsim.reward.COMPONENTS`); ``reward.custom`` adds a scenario's own."""

DEFAULT_WEIGHTS: dict[RewardComponentName, float] = {
    "final_state": 0.5,
    "required_statements": 0.2,
    "forbidden_actions": 0.15,
    "escalation": 0.15,
}
"""The weighted components when neither the scenario nor its domain's defaults name any."""


class StrictModel(BaseModel):
    """Base of every schema model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class AgentSpec(StrictModel):
    """What the agent is told: its policy and guidelines."""

    guidelines: str = Field(min_length=1, description="The agent's policy text; becomes its system prompt.")


class Fact(StrictModel):
    """Something the user knows and reveals only when the agent asks for it."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier, e.g. phone.")
    value: str = Field(min_length=1, description="The value the user gives, e.g. 555-0142.")
    asked_by: list[str] = Field(min_length=1, description="Words in an agent message that count as asking for it.")
    say: str | None = Field(
        None,
        description="How the user says it; may use {{ value }} and {{ key }} (placeholders and simple filters "
        "only, see envsim.prompts). Default: 'My <key> is <value>.'",
    )
    found_after: int = Field(
        0,
        ge=0,
        le=5,
        description="How many times the agent must ask for it before the user has it at hand: until then the user "
        "says it cannot find it (a card not in reach, an order number in another email); the last of those requests "
        "sends it looking, and its next reply gives it, asked or not. Default 0: at hand.",
    )
    said_first: str | None = Field(
        None,
        min_length=1,
        description="A wrong value the user gives the first time (a slip: a digit swapped, an old address); it "
        "corrects it to value in its next reply. The world and the expected writes use value.",
    )

    @model_validator(mode="after")
    def _slip_differs(self) -> Fact:
        if self.said_first is not None and self.said_first.strip() == self.value.strip():
            raise ValueError("said_first must differ from value (it is the wrong value the user corrects)")
        return self


class PersonaSpec(StrictModel):
    """The user's persona: a reference to the persona library, or an inline persona."""

    ref: str | None = Field(None, description="Name of a persona in the library, e.g. panicked_caller.")
    inline: Persona | None = Field(None, description="A persona defined in place.")

    @model_validator(mode="after")
    def _exactly_one(self) -> PersonaSpec:
        if (self.ref is None) == (self.inline is None):
            raise ValueError("give exactly one of 'ref' or 'inline'")
        return self


def _not_blank(text: str) -> str:
    """A line the user says: some words, not only spaces."""
    if not text.strip():
        raise ValueError("must not be blank: the user would say nothing")
    return text


class UserSpec(StrictModel):
    """The mock user's side of the scenario."""

    goal: str = Field(min_length=1, description="What the user wants, in the user's terms.")
    opening: str = Field(min_length=1, description="The user's first message.")
    facts: list[Fact] = Field(default_factory=list, description="What the user knows and reveals when asked.")
    closing: str = Field("Thank you, that's all I needed.", min_length=1, description="The user's last message.")
    satisfied_by: list[str] = Field(
        default_factory=lambda: ["anything else"],
        description="Phrases one of which an agent message must also say for the user to close the conversation "
        "(the user closes only once the goal is met in the world: envsim.user.base.satisfied).",
    )
    nudges: list[str] = Field(default_factory=list, description="Lines the user says when the agent does not help.")
    follow_ups: list[Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]] = Field(
        default_factory=list,
        description="Further requests, in order, in the user's words: where the user would close (the goal met), it "
        "says the next one instead, once; it closes after the last.",
    )
    persona: PersonaSpec = Field(default_factory=lambda: PersonaSpec(ref="calm"), description="The user's persona.")


class ToolCallSpec(StrictModel):
    """A tool call the correct agent makes.

    A call the correct agent makes and is refused (it tries, the system says no) declares the
    error it must fail with, e.g. ``expect_error: rule_violation``; ``envsim validate`` replays it
    and checks that it fails exactly so (a declared failure that succeeds is an error, and so is
    an undeclared one that fails).
    """

    name: str = Field(description="Tool name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Tool arguments.")
    expect_error: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        description="The error type this call must fail with (e.g. rule_violation, not_found): the correct "
        "agent tries it and is refused.",
    )


class Statement(StrictModel):
    """Something the agent must say: any one of several phrasings (case-insensitive)."""

    any_of: list[str] = Field(min_length=1, description="Accepted phrasings; one must appear in an agent message.")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"any_of": [value]} if isinstance(value, str) else value


def same_value(a: Any, b: Any) -> bool:
    """Whether two argument values are equal as JSON values: the one equality rule of call patterns and rules.

    Booleans never equal numbers, at any depth, as JSON tells ``true`` from ``1`` (Python does not:
    ``True == 1``); numbers compare by value (``1`` equals ``1.0``: JSON has one number type); arrays
    compare item by item and objects key by key, with the same rule.

    Example:
        >>> same_value(True, 1), same_value(0, False), same_value(True, True), same_value(1, 1.0)
        (False, False, True, True)
        >>> same_value({"items": [True]}, {"items": [1]}), same_value(["a", {"n": 2}], ["a", {"n": 2.0}])
        (False, True)
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(value, b[key]) for key, value in a.items())
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,)")
"""A group containing a quantifier, itself quantified: the usual shape of catastrophic backtracking."""


class ArgumentRule(StrictModel):
    """A rule one argument of a tool call must satisfy: exactly one of ``equals``, ``one_of`` or ``regex``.

    ``regex`` is searched for (``re.search``) in a string argument; anchor it with ``^...$`` to
    match the whole value. A missing argument counts as ``null``. Scenario files are untrusted
    and the agent writes the arguments, so a regex is at most 200 characters and may not repeat
    a group that itself repeats (``(a+)+``), the usual shape of catastrophic backtracking.

    Example:
        >>> ArgumentRule(one_of=["unresponsive", "breathing_difficulty"]).check("unresponsive")
        True
        >>> ArgumentRule(regex="(?i)collaps").check("Collapsed in the kitchen")
        True
        >>> ArgumentRule(equals=1).check(True)
        False
    """

    equals: Any = Field(None, description="The argument must equal this value.")
    one_of: list[Any] | None = Field(None, min_length=1, description="The argument must equal one of these values.")
    regex: str | None = Field(
        None, min_length=1, max_length=200, description="A regular expression found in the (string) argument."
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"invalid regular expression: {err}") from None
            if _NESTED_QUANTIFIER.search(pattern):
                raise ValueError(
                    "a repeated group that itself repeats (like (a+)+) can take exponential time; rewrite it"
                )
        return pattern

    @model_validator(mode="after")
    def _exactly_one(self) -> ArgumentRule:
        given = [k for k in ("equals", "one_of", "regex") if k in self.model_fields_set]
        if len(given) != 1 or ("one_of" in given and self.one_of is None) or ("regex" in given and self.regex is None):
            raise ValueError("give exactly one of 'equals', 'one_of' or 'regex'")
        return self

    def check(self, value: Any) -> bool:
        """Whether ``value`` satisfies this rule."""
        if self.regex is not None:
            return isinstance(value, str) and re.search(self.regex, value) is not None
        if self.one_of is not None:
            return any(same_value(value, choice) for choice in self.one_of)
        return same_value(value, self.equals)

    def describe(self) -> str:
        """The rule in words, e.g. ``one of ['a', 'b']``."""
        if self.regex is not None:
            return f"matches /{self.regex}/"
        if self.one_of is not None:
            return f"one of {self.one_of!r}"
        return f"equals {self.equals!r}"


class CallPattern(StrictModel):
    """A pattern of tool calls: a tool name, arguments that must be equal, and rules per argument.

    The one pattern type of a scenario: ``expected.required_actions``, ``argument_checks``,
    ``forbidden_actions`` and the calls backing ``claims`` are all call patterns. Arguments
    compare with :func:`same_value` (booleans never equal numbers: ``true`` is not ``1``). A plain
    string is short for ``{name: <string>}`` (any call of that tool).

    Example:
        >>> p = CallPattern.model_validate({"name": "refund_items", "arguments": {"order_id": "#W0003"},
        ...                                 "checks": {"reason": {"one_of": ["damaged", "defective"]}}})
        >>> p.matches("refund_items", {"order_id": "#W0003", "reason": "damaged", "items": []})
        True
        >>> p.selects("refund_items", {"order_id": "#W0003", "reason": "wrong_size"})
        True
        >>> p.failed_checks({"order_id": "#W0003", "reason": "wrong_size"})
        ["reason='wrong_size' (want one of ['damaged', 'defective'])"]
        >>> CallPattern.model_validate("lookup_patient").matches("lookup_patient", {"phone": "1"})
        True
        >>> CallPattern(name="set_flag", arguments={"urgent": True}).matches("set_flag", {"urgent": 1})
        False
    """

    name: str = Field(min_length=1, description="Tool name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments that must be equal (a subset).")
    checks: dict[str, ArgumentRule] = Field(
        default_factory=dict, description="Per argument, a rule it must satisfy (equals, one_of or regex)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    def selects(self, name: str, arguments: dict[str, Any]) -> bool:
        """True when the call has this tool name and the equal ``arguments`` (``checks`` not applied)."""
        return name == self.name and all(same_value(arguments.get(k), v) for k, v in self.arguments.items())

    def failed_checks(self, arguments: dict[str, Any]) -> list[str]:
        """The ``checks`` that ``arguments`` fail, in words (empty when all hold)."""
        return [
            f"{key}={arguments.get(key)!r} (want {rule.describe()})"
            for key, rule in self.checks.items()
            if not rule.check(arguments.get(key))
        ]

    def matches(self, name: str, arguments: dict[str, Any]) -> bool:
        """True when the call is selected and satisfies every check."""
        return self.selects(name, arguments) and not self.failed_checks(arguments)

    def describe(self) -> str:
        """The pattern in short, e.g. ``lookup_patient(phone='555-0142')``."""
        parts = [f"{k}={v!r}" for k, v in self.arguments.items()]
        parts += [f"{k} {rule.describe()}" for k, rule in self.checks.items()]
        return f"{self.name}({', '.join(parts)})"


class Claim(StrictModel):
    """Phrases that claim an action was taken, and the calls that back the claim.

    When an agent message contains a phrase (case-insensitive, any spacing), one of the
    ``requires`` calls must have succeeded in that message or before it.
    """

    phrases: list[str] = Field(min_length=1, description="Phrasings of the claim, e.g. 'your refund is on its way'.")
    requires: list[CallPattern] = Field(min_length=1, description="Calls that back the claim (any one of them).")


class HandoffSummary(StrictModel):
    """What makes a hand-off (or dispatch) useful to the person who receives it.

    The free-text argument (``argument``; by default ``summary`` or ``details``, else the
    longest string argument) must have at least ``min_words`` words and mention one of the
    ``keywords``; with no keywords, the hand-off's arguments must carry the subject: the ids
    (arguments named ``*_id``) of the expected hand-off.
    """

    min_words: int = Field(4, ge=0, le=500, description="Fewest words of the summary.")
    keywords: list[str] = Field(
        default_factory=list, description="Key facts; the summary must mention at least one (case-insensitive)."
    )
    argument: str | None = Field(None, description="The argument holding the summary (default: summary or details).")


class Expected(StrictModel):
    """The expected outcome: what a correct agent does, says, avoids, and how it ends."""

    actions: list[ToolCallSpec] = Field(default_factory=list, description="Tool calls of a correct agent, in order.")
    required_statements: list[Statement] = Field(default_factory=list, description="What the agent must say.")
    forbidden_actions: list[CallPattern] = Field(
        default_factory=list, description="Calls the agent must not make (attempting one a pattern matches)."
    )
    escalation: Literal["required", "forbidden", "optional"] = Field(
        "optional", description="Whether ending in a hand-off or emergency dispatch is the correct end."
    )
    required_actions: list[CallPattern] = Field(
        default_factory=list, description="Calls that must have succeeded (e.g. an authentication lookup)."
    )
    required_actions_in_order: bool = Field(False, description="Whether the required actions must succeed in order.")
    argument_checks: list[CallPattern] = Field(
        default_factory=list, description="Every successful call a pattern selects must pass its checks."
    )
    claims: list[Claim] = Field(
        default_factory=list, description="Claims of actions (besides the built-in ones) that need a successful call."
    )
    builtin_claims: bool = Field(True, description="Check the built-in claims ('I've refunded', ...) too.")
    handoff_summary: HandoffSummary = Field(
        default_factory=lambda: HandoffSummary(), description="What a useful hand-off summary contains."
    )
    no_change: bool = Field(
        False,
        description="The correct outcome leaves the world as it was (a refusal): final_state then compares "
        "against the initial world, and the expected actions must not change it.",
    )


SCENARIO_DIR_CONTEXT = "scenario_dir"
"""The key of pydantic's validation context giving the folder that relative paths in a scenario start from
(the scenario file's; :mod:`envsim.loader` passes it). Without it they start from the current folder."""


def _judge_rubric(reference: str | dict[str, Any], info: ValidationInfo) -> str | dict[str, Any]:
    """A ``reward.judges`` value checked: a shipped rubric's name, or a rubric (a file's read in, located)."""
    base = (info.context or {}).get(SCENARIO_DIR_CONTEXT)
    return resolve_reference(reference, base)


def _rubric_shape(reference: Any) -> Any:
    if not isinstance(reference, str | dict):
        raise ValueError(f"give a rubric's name, a path to a rubric file, or a rubric (a mapping), got {reference!r}")
    return reference


def _rubric_json_schema(schema: dict[str, Any]) -> None:
    """JSON Schema of a judge's rubric: a name or a path, or a rubric (JudgeRubric's schema, inlined for editors)."""
    rubric = JudgeRubric.model_json_schema()
    defs = rubric.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        return [inline(value) for value in node] if isinstance(node, list) else node

    schema["anyOf"] = [{"type": "string"}, inline(rubric)]


JudgeRubricRef = Annotated[
    str | dict[str, Any],
    BeforeValidator(_rubric_shape),
    AfterValidator(_judge_rubric),
    Field(
        description="A rubric shipped with envsim by name (e.g. empathy_panicked_caller), a path to a rubric YAML "
        "file relative to the scenario file, or a rubric inline (see envsim.rubric_schema.JudgeRubric).",
        json_schema_extra=_rubric_json_schema,
    ),
]
"""A judge's rubric in ``reward.judges`` (see :mod:`envsim.reward.judges`)."""


class RewardSpec(StrictModel):
    """How the reward is computed: gates, weighted components, recorded metrics.

    - ``gates``: components that must score 1, or the total is 0;
    - ``components``: weights of the components whose weighted mean is the total (normalised by
      their sum; ``weights`` is the older name of the same thing, kept for old files);
    - ``metrics``: components computed and reported with weight 0;
    - ``custom``: the scenario's own components, ``name: "module:function"``; the module must
      be allowed (``ENVSIM_REWARD_MODULES`` or :func:`envsim.reward.allow_reward_module`);
    - ``judges``: LLM judges as components, ``name: rubric`` (see :mod:`envsim.reward.judges`);
      like a custom component, each must be named in ``gates``, ``components`` or ``metrics``;
    - ``success_threshold``: the total at or above which an episode (whose gates held) is a
      success.

    Every key left out comes from the domain's defaults (``envsim/reward/defaults.yaml``), and
    without those, the components default to :data:`DEFAULT_WEIGHTS`.

    Example:
        >>> spec = RewardSpec.model_validate({"gates": ["final_state"], "components": {"required_statements": 1}})
        >>> merged = spec.over(RewardSpec(metrics=["containment"], gates=["escalation"]))
        >>> merged.gates, merged.weighted(), merged.metrics
        (['final_state'], {'required_statements': 1.0}, ['containment'])
    """

    gates: list[str] | None = Field(None, description="Components that must score 1, or the total is 0.")
    components: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="Weight per reward component (normalised by their sum)."
    )
    weights: dict[RewardComponentName, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="The older name of 'components' (built-in components only)."
    )
    metrics: list[str] | None = Field(None, description="Components recorded with weight 0.")
    custom: dict[str, str] | None = Field(
        None, description="The scenario's own components: name -> 'module:function' (the module must be allowed)."
    )
    judges: dict[str, JudgeRubricRef] | None = Field(
        None,
        description="LLM judges as components: name -> rubric (a shipped rubric's name, a rubric file relative to "
        "the scenario file, or a rubric inline); each must be a gate, weighted or a metric. Run only with a judge "
        "model; otherwise recorded as not run (left out of the total).",
    )
    success_threshold: float = Field(
        1.0, ge=0, le=1, description="Total at or above which an episode whose gates held is a success."
    )

    @field_validator("weights", "components")
    @classmethod
    def _not_all_zero(cls, weights: dict[Any, float] | None) -> dict[Any, float] | None:
        if weights and sum(weights.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return weights

    @model_validator(mode="after")
    def _one_name_for_weights(self) -> RewardSpec:
        if self.weights is not None and self.components is not None:
            raise ValueError("give 'components' or the older 'weights', not both")
        return self

    def given_weights(self) -> dict[str, float] | None:
        """The weights this spec gives itself (``components``, else ``weights``), or None."""
        if self.components is not None:
            return dict(self.components)
        if self.weights is not None:
            return {str(k): v for k, v in self.weights.items()}
        return None

    def weighted(self) -> dict[str, float]:
        """The weight per component: ``components``, else ``weights``, else :data:`DEFAULT_WEIGHTS`."""
        given = self.given_weights()
        return given if given is not None else {str(k): v for k, v in DEFAULT_WEIGHTS.items()}

    def over(self, base: RewardSpec) -> RewardSpec:
        """This spec merged over ``base``: every key given here replaces the base's (``weights`` counts as
        ``components``)."""
        weighted = self.given_weights()
        return RewardSpec(
            gates=self.gates if self.gates is not None else base.gates,
            components=weighted if weighted is not None else base.given_weights(),
            metrics=self.metrics if self.metrics is not None else base.metrics,
            custom=self.custom if self.custom is not None else base.custom,
            judges=self.judges if self.judges is not None else base.judges,
            success_threshold=(
                self.success_threshold if "success_threshold" in self.model_fields_set else base.success_threshold
            ),
        )


class SourceSpec(StrictModel):
    """Where a generated or mined scenario came from (written by ``envsim scenarios generate`` / ``mine``).

    A generated scenario names its family, the parameters drawn (world seed, bound record ids,
    choices), the generator's seed and version; a mined draft names its corpus, conversation and turn.
    """

    family: str | None = Field(None, description="The task family this scenario is an instance of.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The drawn parameters: world_seed, bindings (record ids), choices."
    )
    seed: int | None = Field(None, description="The generator's seed.")
    generator: str | None = Field(None, description="The generator and its version, e.g. envsim-factory/1.")
    corpus: str | None = Field(None, description="A mined draft's corpus (e.g. abcd, star, a log file).")
    conversation_id: str | None = Field(None, description="A mined draft's conversation id in its corpus.")
    turn: int | None = Field(None, ge=0, description="A mined draft's turn in its conversation.")
    format: str | None = Field(None, description="A mined draft's transcript format (abcd, star, openai, plain...).")
    file: str | None = Field(None, description="A mined draft's log file (relative to the corpus folder when in it).")
    affect: dict[str, float] = Field(
        default_factory=dict, description="A mined draft's customer affect per kind (the most over their turns, 0-1)."
    )
    notes: list[str] = Field(
        default_factory=list, description="What the reviewer of a mined draft must check or complete."
    )
    paraphrase: str | None = Field(
        None, description="The model that reworded the opening and goal (envsim scenarios generate --paraphrase)."
    )


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
    source: SourceSpec | None = Field(None, description="Provenance of a generated or mined scenario.")
    status: Literal["draft", "accepted"] | None = Field(
        None, description="Review status of a mined scenario (draft until accepted); absent for written ones."
    )

    @property
    def gym_id(self) -> str:
        """The Gymnasium id this scenario is registered under."""
        return f"envsim/{self.id}-v0"
