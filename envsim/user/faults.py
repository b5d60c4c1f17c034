"""Simulator fault detection: is a simulated user turn one a real user in the scenario could say?

Every turn an LLM user writes is checked before the agent sees it. :func:`check_user_turn`
applies rules for the known failure modes of simulated users:

- ``empty``: nothing to say (blank, or only punctuation) without ending the conversation;
- ``speaks_as_agent``: the user takes the agent's part (a speaker label such as ``Agent:``,
  offering help, tool-call JSON, or parroting the agent's message);
- ``reveals_unasked_fact``: a hidden fact's value appears before the agent asked for it
  (none of the fact's ``asked_by`` words in any agent message so far, and the value not
  already in the conversation); not checked for a persona whose ``disclosure`` is
  ``volunteers``;
- ``invents_fact``: an email, phone number, id, long number or amount that is neither one of
  the scenario's facts (values and ``say`` lines) nor anywhere in the scenario's user text,
  the persona's lines or the conversation;
- ``ends_too_early``: the stop marker on the user's first reply, before the agent has made a
  tool call or said what would satisfy the user;
- ``breaks_persona``: the user speaks as an AI or a simulation, or leaves the role (a
  ``User:``/``Customer:`` label, talk of prompts or instructions).

:func:`llm_check_user_turn` asks a model (through :mod:`envsim.llm`) for a JSON verdict on
the same failure modes, validated by :class:`CheckerVerdict`. A caller regenerates a turn that
has faults and, when it still fails, marks the episode ``sim_fault`` with :func:`fault_reason`.

Example:
    >>> from envsim.registration import load_registered
    >>> scenario = load_registered("MedicalSupplyPanicCaller")
    >>> [f.kind for f in check_user_turn("Please hurry, my number is 555-0142!", scenario=scenario,
    ...     revealed=(), agent_message="Tell me what happened.", history=[])]
    ['reveals_unasked_fact']
    >>> check_user_turn("My number is 555-0142.", scenario=scenario, revealed=(),
    ...     agent_message="What is your phone number?", history=[])
    []
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsim.errors import CheckerError
from envsim.llm import Completion, complete
from envsim.prompts import render
from envsim.scenario import Scenario
from envsim.user.persona import load_persona

STOP_MARKER = "###STOP###"
"""What a simulated user writes to end the conversation; stripped from the text the agent sees."""

FaultKind = Literal[
    "empty",
    "speaks_as_agent",
    "reveals_unasked_fact",
    "invents_fact",
    "ends_too_early",
    "breaks_persona",
    "checker_failed",
]
"""The failure modes of a simulated user turn (``checker_failed``: the LLM checker gave no usable verdict)."""

RULE_KINDS: tuple[FaultKind, ...] = (
    "empty",
    "speaks_as_agent",
    "reveals_unasked_fact",
    "invents_fact",
    "ends_too_early",
    "breaks_persona",
)
"""The failure modes the rules (and the LLM checker) look for."""


class Fault(BaseModel):
    """One failure of a simulated user turn.

    Example:
        >>> str(Fault(kind="empty", detail="the turn has no text"))
        'empty: the turn has no text'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind = Field(description="Which failure mode.")
    detail: str = Field(description="What exactly is wrong, for people reading the trajectory.")
    source: Literal["rule", "llm"] = Field("rule", description="Who found it: a rule or the LLM checker.")

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class CheckerFault(BaseModel):
    """A fault as the LLM checker reports it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "empty", "speaks_as_agent", "reveals_unasked_fact", "invents_fact", "ends_too_early", "breaks_persona"
    ] = Field(description="Which failure mode.")
    detail: str = Field("", description="Why, in a sentence.")


class CheckerVerdict(BaseModel):
    """The JSON verdict the LLM checker must return.

    Example:
        >>> CheckerVerdict.model_validate_json('{"ok": true, "faults": []}').ok
        True
    """

    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="True when the turn has none of the failure modes.")
    faults: list[CheckerFault] = Field(default_factory=list, description="The failures found (empty when ok).")


def split_stop(text: str) -> tuple[str, bool]:
    """The text without the stop marker, and whether the marker was there.

    Example:
        >>> split_stop("Thanks, bye! ###STOP###")
        ('Thanks, bye!', True)
    """
    if STOP_MARKER not in text:
        return text.strip(), False
    return " ".join(part.strip() for part in text.split(STOP_MARKER) if part.strip()), True


def fault_reason(faults: Iterable[Fault]) -> str | None:
    """One line naming every fault (``None`` when there are none): what ``UserTurn.fault`` carries.

    Example:
        >>> fault_reason([Fault(kind="empty", detail="no text")])
        'empty: no text'
    """
    reason = "; ".join(str(f) for f in faults)
    return reason or None


# -- patterns --------------------------------------------------------------------------------

_AGENT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), why)
    for p, why in (
        (r"^\W*(agent|assistant|representative|rep|support|operator|dispatcher|system)\s*:", "agent speaker label"),
        (r"\bhow (can|may|might|could) (i|we) (help|assist) you\b", "offers to help the customer"),
        (r"\banything else (that )?(i|we) can (help|assist|do for) you\b", "offers to help the customer"),
        (r"\b(i'd|i would|i'll|i will|i'm|i am) (be )?(happy|glad) to (help|assist) you\b", "offers to help"),
        (r"\bi can (help|assist) you with\b", "offers to help the customer"),
        (r"\blet me (look|check|pull) (that|this|it|your \w+)( up)? for you\b", "acts for the customer"),
        (r"\bthank you for (calling|contacting|choosing|reaching out to) us\b", "thanks the customer for calling"),
        (r"\b(dear|valued) customer\b", "addresses the customer"),
        (r"\{\s*\"(name|tool|function|tool_calls|arguments)\"\s*:", "writes tool-call JSON"),
        (r"</?tool_call>|\bfunctions\.\w+\s*\(", "writes a tool call"),
    )
)

_PERSONA_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), why)
    for p, why in (
        (r"\bas an ai\b|\b(large )?language model\b|\bai (assistant|model|system)\b", "speaks as an AI"),
        (
            r"\bi(?:'m| am) (?:just |only )?(?:an? )?(?:ai|artificial intelligence|chatbot|bot|virtual assistant)\b",
            "says it is an AI",
        ),
        (
            r"\b(simulated|simulating|simulation of)( an?| the)? (user|customer|caller|conversation)\b",
            "mentions the simulation",
        ),
        (r"\bi (cannot|can't|won't) (role-?play|pretend|continue this role)\b", "refuses the role"),
        (r"\b(my|the) (system prompt|instructions|persona)\b", "talks about its instructions"),
        (r"\b(openai|anthropic|chatgpt)\b", "names a model vendor"),
        (r"^\W*(user|customer|caller|client)\s*:", "writes a speaker label"),
        (r"\bin character\b|\bout of character\b|\(as the (user|customer|caller)\)", "steps out of the role"),
    )
)

_ENTITY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "email"),
    (re.compile(r"(?<![\w-])(?:\+?\d{1,2}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w-])"), "phone"),
    (re.compile(r"(?<![\w-])\d{3}[.-]\d{4}(?![\w-])"), "phone"),
    (re.compile(r"#\w*\d\w*|(?<![\w-])[A-Za-z]{1,5}-?\d{3,}[A-Za-z0-9]*(?![\w-])"), "id"),
    (re.compile(r"(?<![\w.,-])\d[\d-]*\d(?![\w-])"), "number"),
    (
        re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)? ?(?:dollars|euros|pounds)\b", re.IGNORECASE),
        "amount",
    ),
)

_LONG_NUMBER = 5
"""Digits from which a bare number counts as a fact (shorter ones are ages, counts, years)."""

_WORD = re.compile(r"[a-z0-9]+")


def _normal(text: str) -> str:
    """Lowercase letters and digits only: ``"PT-9001"`` → ``"pt9001"``."""
    return "".join(_WORD.findall(text.lower()))


def _flat(text: str) -> str:
    """Lowercase with single spaces and plain apostrophes."""
    return " ".join(text.lower().replace("\u2019", "'").split())


def mentions(text: str, value: str) -> bool:
    """True when ``text`` contains ``value``, ignoring case, spacing, and separators in numbers.

    Example:
        >>> mentions("call 555 0142 please", "555-0142"), mentions("call 555", "555-0142")
        (True, False)
    """
    if _flat(value) in _flat(text):
        return True
    key = _normal(value)
    digits = sum(c.isdigit() for c in key)
    return digits >= 4 and digits * 2 >= len(key) and key in _normal(text)


def spoken_turns(history: Sequence[Mapping[str, Any]], agent_message: str) -> list[tuple[str, str]]:
    """What the user has heard and said, as ``(role, text)``, ending with ``agent_message``.

    Tool and system messages and empty contents are left out; ``agent_message`` is added
    unless ``history`` already ends with it (the environment appends it before asking).

    Example:
        >>> spoken_turns([{"role": "user", "content": "Hi"}, {"role": "tool", "content": "{}"}], "Hello")
        [('user', 'Hi'), ('assistant', 'Hello')]
    """
    turns = [
        (str(m["role"]), m["content"])
        for m in history
        if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str) and m["content"]
    ]
    last = history[-1] if history else {}
    if not (last.get("role") == "assistant" and last.get("content") == agent_message):
        turns.append(("assistant", agent_message))
    return turns


def entities(text: str) -> list[tuple[str, str]]:
    """The emails, phone numbers, ids, long numbers and amounts in ``text``, as ``(kind, text)``.

    Example:
        >>> entities("Order #W0003, call 555-0142 or mail ada@example.com about $45.")
        [('email', 'ada@example.com'), ('phone', '555-0142'), ('id', '#W0003'), ('amount', '$45')]
    """
    found: list[tuple[str, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern, kind in _ENTITY_PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < b and a < end for a, b in taken):
                continue
            if kind == "number" and sum(c.isdigit() for c in match.group()) < _LONG_NUMBER:
                continue
            taken.append((start, end))
            found.append((kind, match.group().strip()))
    return found


# -- the rules -------------------------------------------------------------------------------


def check_user_turn(
    text: str,
    *,
    scenario: Scenario,
    revealed: Collection[str],
    agent_message: str,
    history: Sequence[Mapping[str, Any]],
    done: bool | None = None,
) -> list[Fault]:
    """The rule-found faults of one simulated user turn (empty when the turn is fine).

    Args:
        text: The user's turn as the model wrote it (the stop marker may still be in it).
        scenario: The scenario being played: its facts, goal and ``satisfied_by`` phrases.
        revealed: Keys of the facts the user has already given.
        agent_message: The agent message this turn answers.
        history: The conversation so far in OpenAI format, as the environment keeps it (it may
            or may not end with ``agent_message``); tool and system messages are ignored.
        done: Whether the turn ends the conversation (default: the stop marker is in ``text``).
    """
    visible, marked = split_stop(text)
    done = marked if done is None else done
    faults: list[Fault] = []
    if not _WORD.search(visible.lower()) and not done:
        return [Fault(kind="empty", detail="the turn has no text")]

    turns = spoken_turns(history, agent_message)
    agent_texts = [t for role, t in turns if role == "assistant"]
    spoken = [t for _, t in turns]
    flat = _flat(visible)

    for pattern, why in _AGENT_PATTERNS:
        match = pattern.search(visible)
        if match:
            faults.append(Fault(kind="speaks_as_agent", detail=f"{why}: {match.group()!r}"))
            break
    else:
        if len(flat) >= 20 and flat == _flat(agent_message):
            faults.append(Fault(kind="speaks_as_agent", detail="repeats the agent's message"))

    for pattern, why in _PERSONA_PATTERNS:
        match = pattern.search(visible)
        if match:
            faults.append(Fault(kind="breaks_persona", detail=f"{why}: {match.group()!r}"))
            break

    spec = scenario.user
    persona = spec.persona.inline or load_persona(spec.persona.ref or "calm")
    asked_text = _flat(" ".join(agent_texts))
    for fact in spec.facts:
        if persona.disclosure == "volunteers":  # offering details unasked is in character
            break
        if fact.key in revealed or not mentions(visible, fact.value):
            continue
        if any(_flat(word) in asked_text for word in fact.asked_by):
            continue
        if any(mentions(said, fact.value) for said in spoken):
            continue
        detail = f"gives {fact.key} ({fact.value!r}) before the agent asked for it"
        faults.append(Fault(kind="reveals_unasked_fact", detail=detail))

    known = [
        *(f.value for f in spec.facts),
        *(f.said_first for f in spec.facts if f.said_first),
        *(f.say for f in spec.facts if f.say),
        spec.goal,
        spec.opening,
        spec.closing,
        *spec.nudges,
        persona.description,
        *persona.nudges,
        persona.give_up,
        *persona.human_demands,
        *spoken,
    ]
    known_flat = [_flat(k) for k in known]
    known_normal = [_normal(k) for k in known]
    invented: list[str] = []
    for kind, entity in entities(visible):
        key = _normal(entity)
        if any(_flat(entity) in k for k in known_flat) or (key and any(key in k for k in known_normal)):
            continue
        invented.append(f"{kind} {entity!r}")
    if invented:
        faults.append(
            Fault(kind="invents_fact", detail="not in the scenario or the conversation: " + ", ".join(invented))
        )

    acted = any(m.get("tool_calls") for m in history if m.get("role") == "assistant")
    if done and len(agent_texts) <= 1 and not acted:
        said = _flat(agent_message)
        if not any(_flat(p) in said for p in spec.satisfied_by):
            faults.append(Fault(kind="ends_too_early", detail="ends the conversation before the agent did anything"))
    return faults


# -- the LLM checker -------------------------------------------------------------------------


def parse_verdict(text: str) -> CheckerVerdict:
    """The checker's answer as a :class:`CheckerVerdict` (a fenced JSON block is accepted).

    Example:
        >>> parse_verdict('```json\\n{"ok": false, "faults": [{"kind": "empty"}]}\\n```').faults[0].kind
        'empty'
    """
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1).strip()
    elif "{" in body:
        body = body[body.index("{") : body.rindex("}") + 1]
    try:
        verdict = CheckerVerdict.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise CheckerError(f"the checker's verdict is not valid: {error}".splitlines()[0]) from error
    if not verdict.ok and not verdict.faults:
        raise CheckerError("the checker said not ok but named no fault")
    return verdict


def checker_messages(
    text: str,
    *,
    scenario: Scenario,
    revealed: Collection[str],
    agent_message: str,
    history: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The prompt that asks a model to check one user turn (template ``user_checker.j2``)."""
    conversation = [
        {"speaker": "user" if role == "user" else "agent", "text": said}
        for role, said in spoken_turns(history, agent_message)
    ]
    visible, done = split_stop(text)
    prompt = render(
        "user_checker.j2",
        goal=scenario.user.goal,
        facts=scenario.user.facts,
        revealed=sorted(revealed),
        conversation=conversation,
        turn=visible,
        done=done,
        kinds=RULE_KINDS,
    )
    return [{"role": "user", "content": prompt}]


def llm_check_user_turn(
    text: str,
    *,
    scenario: Scenario,
    revealed: Collection[str],
    agent_message: str,
    history: Sequence[Mapping[str, Any]],
    model: str,
    **kwargs: Any,
) -> tuple[list[Fault], Completion]:
    """Ask ``model`` whether the turn has any failure mode; return its faults and the completion.

    ``kwargs`` go to :func:`envsim.llm.complete` (temperature, seed, api_base...). Raises
    :class:`CheckerError` when the answer is not a valid verdict and
    :class:`~envsim.llm.ModelCallError` when the call fails.
    """
    messages = checker_messages(
        text, scenario=scenario, revealed=revealed, agent_message=agent_message, history=history
    )
    completion = complete(model, messages, **kwargs)
    verdict = parse_verdict(completion.text)
    faults = [Fault(kind=f.kind, detail=f.detail or "reported by the checker", source="llm") for f in verdict.faults]
    return faults, completion
