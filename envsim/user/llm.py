"""The LLM user: a language model (any litellm provider/model string) plays the scenario's customer.

What the model is told (system prompt, template ``user_system.j2``):

- the persona, goal and known details, in words, from :func:`render_persona`,
  at the user's current affect (:mod:`envsim.user.affect` advances it on every agent turn);
- which of the scenario's hidden facts it has not given yet, and that it may give one only
  when the agent asks for it (the words that count as asking are listed);
- a few exemplars: user turns from transcripts that match the scenario (the persona's own
  calibrated exemplar references first, then the best word-overlap matches);
- to end the conversation by writing :data:`~envsim.user.faults.STOP_MARKER`.

Endings are rules here too (:mod:`envsim.user.base`): the model's stop marker ends the
conversation unless the attached goal check says the scenario's goal is not met in the world
(:meth:`~envsim.user.base.UserSimulator.goal_met` is ``False``); then the turn is said without
ending, and the user carries on until the goal is met or its persona's patience runs out (the
affect machine's give-up always ends it). Without a goal check (outside an environment) the
marker alone decides.

The conversation follows with the roles flipped: the agent's messages are the model's
``user`` turns and the simulated user's own messages its ``assistant`` turns; tool results and
system messages are not shown. The opening is the scenario's opening line, word for word.

Every turn the model writes is checked (:func:`~envsim.user.faults.check_user_turn`, and the
LLM checker when ``checker_model`` is set). A turn with faults is regenerated, with the
problems named, up to ``max_retries`` times; if the last attempt still has faults, the reply
carries ``fault`` (the reasons in one line) and the episode should be marked ``sim_fault``.

Seeds: every call gets ``seed`` (the per-episode seed plus the number of calls made in the
episode so far, so that a regenerated turn is a new sample). The per-episode seed is the
``seed`` option when given, otherwise it is drawn from a child of the generator passed to
:meth:`LLMUser.reset` (``rng.spawn``), so the same environment seed gives the same calls and
the environment's own random stream is left untouched.

Example (litellm's own ``mock_response``, no network):
    >>> import numpy as np
    >>> from envsim.registration import load_registered
    >>> user = LLMUser("openai/gpt-4o-mini", completion_options={"mock_response": "Please hurry! ###STOP###"})
    >>> scenario = load_registered("MedicalSupplyPanicCaller")
    >>> user.reset(scenario, np.random.default_rng(0)) == scenario.user.opening
    True
    >>> turn = user.reply("Help is on the way.", [])
    >>> turn.text, turn.done, turn.fault, user.usage.calls
    ('Please hurry!', True, None, 1)
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envsim.errors import CheckerError
from envsim.llm import Completion, ModelClient, UsageMeter, check_settings, default_client
from envsim.prompts import render, render_scenario_text
from envsim.scenario import Fact, Scenario
from envsim.transcripts.schema import Conversation
from envsim.user.affect import (
    AffectMachine,
    AffectState,
    classify_agent_turn,
    is_emergency,
    read_part,
    scenario_persona,
)
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.faults import (
    STOP_MARKER,
    Fault,
    check_user_turn,
    checker_messages,
    fault_reason,
    mentions,
    parse_verdict,
    split_stop,
    spoken_turns,
)
from envsim.user.persona import Affect, Persona
from envsim.user.recall import Recall

DEFAULT_MODEL = "openai/gpt-4o-mini"
"""The user model when none is given (any litellm ``provider/model`` string works)."""

_SEED_RANGE = 2**31 - 1


UserUsage = UsageMeter
"""The meter of an LLM user's model calls (:class:`envsim.llm.UsageMeter`: ``calls`` counts user turns,
regenerations and checks; ``checker_calls`` and ``retries`` say how many were checks and regenerations)."""


@dataclass(frozen=True)
class _Call:
    """One model call the reply logic needs made (sync or async)."""

    model: str
    messages: list[dict[str, Any]]
    kwargs: dict[str, Any] = field(default_factory=dict)


# -- the persona in words ----------------------------------------------------------------------


def _amount(rate: float) -> str:
    """A rate in words: never, rarely, sometimes, often, usually."""
    if rate <= 0:
        return "never"
    if rate < 0.15:
        return "rarely"
    if rate < 0.45:
        return "sometimes"
    if rate < 0.75:
        return "often"
    return "usually"


def _strength(intensity: float) -> str:
    """An intensity in words."""
    if intensity < 0.34:
        return "slightly"
    if intensity < 0.67:
        return "clearly"
    return "extremely"


def render_persona(
    persona: Persona,
    *,
    goal: str,
    facts_known: Sequence[Fact] | Mapping[str, str],
    affect: AffectState | Affect,
) -> str:
    """The role-play instructions for an LLM playing ``persona`` (template ``persona.j2``).

    Args:
        persona: Who the user is.
        goal: What the user wants, in the user's terms.
        facts_known: The details the user knows (scenario facts, or ``key -> value``).
        affect: The user's current affect state (from :mod:`envsim.user.affect`), or just an
            affect name (then at its starting intensity, with nothing due yet).

    Example:
        >>> from envsim.user.persona import load_persona
        >>> text = render_persona(load_persona("annoyed"), goal="Cancel order #W1.",
        ...                       facts_known={"email": "a@b.c"}, affect="frustrated")
        >>> "Cancel order #W1." in text and "email: a@b.c" in text
        True
    """
    state = affect if isinstance(affect, AffectState) else AffectState.start(persona, affect=affect)
    if isinstance(facts_known, Mapping):
        facts = [{"key": key.replace("_", " "), "value": value} for key, value in facts_known.items()]
    else:
        facts = [{"key": f.key.replace("_", " "), "value": f.value} for f in facts_known]
    low, high = persona.verbosity.typical_range()
    return render(
        "persona.j2",
        name=persona.name,
        description=persona.description,
        goal=goal,
        facts=facts,
        disclosure=persona.disclosure,
        register=persona.speech_register,
        words_median=round(persona.verbosity.median_words),
        words_low=low,
        words_high=high,
        typo_every=round(1 / persona.typo_rate) if persona.typo_rate > 0 else 0,
        questions=_amount(persona.question_rate),
        patience=persona.patience,
        escalation=_amount(persona.escalation_propensity),
        panic=persona.panic_intensity,
        panic_strength=_strength(persona.panic_intensity),
        affect=state.affect,
        affect_strength=_strength(state.intensity),
        emergency=state.emergency,
        wants_human=state.wants_human,
        gives_up=state.gives_up,
        requires_emergency=state.requires_emergency,
        demanded_human=state.demanded_human,
        human_demand=persona.human_demands[0],
        give_up=persona.give_up,
    )


# -- exemplars -------------------------------------------------------------------------------

# fmt: off
_STOPWORDS = frozenset({
    "the", "and", "for", "you", "your", "with", "that", "this", "have", "are", "was", "but", "not", "what", "can",
    "from", "they", "she", "his", "her", "him", "has", "had", "our", "out", "all", "any", "get", "got", "just",
    "about", "would", "could", "there", "their", "them", "then", "than", "when", "will", "been", "were", "into",
    "one", "some", "like", "yes", "yeah", "okay", "please", "thanks", "thank", "hello", "want", "need", "know",
})
# fmt: on
_LETTERS = re.compile(r"[a-z]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(w for w in _LETTERS.findall(text.lower()) if len(w) >= 3 and w not in _STOPWORDS)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def retrieve_exemplars(
    scenario: Scenario, conversations: Iterable[Conversation], *, k: int = 3, max_chars: int = 240
) -> list[str]:
    """Up to ``k`` user turns from ``conversations`` that show how a user in ``scenario`` writes.

    The persona's calibrated exemplar references (``persona.exemplars``) come first; the rest
    are the best-matching conversations by word overlap between their user turns and labels
    (intent, domains, persona instructions) and the scenario's domain, description, goal,
    opening and persona description (conversations labelled ``annoyed`` count more for a
    frustrated or angry persona), one turn from each: the one that overlaps most. Ties go to
    the smaller ``(corpus, id)``, so the choice is deterministic.

    Example:
        >>> from envsim.registration import load_registered
        >>> from envsim.transcripts.schema import Turn
        >>> chats = [Conversation(corpus="plain", id=str(i), turns=[Turn(role="user", text=t)])
        ...          for i, t in enumerate(["I want to book a hotel.", "My dad collapsed and can't breathe!"])]
        >>> retrieve_exemplars(load_registered("MedicalSupplyPanicCaller"), chats, k=1)
        ["My dad collapsed and can't breathe!"]
    """
    persona = scenario_persona(scenario)
    chats = list(conversations)
    lines: list[str] = []
    by_id = {(c.corpus, c.id): c for c in chats}
    for ref in persona.exemplars:
        chat = by_id.get((ref.corpus, ref.dialogue_id))
        if chat is not None and ref.turn_index < len(chat.turns):
            turn = chat.turns[ref.turn_index]
            line = _clip(turn.text, max_chars)
            if turn.role == "user" and line and line not in lines:
                lines.append(line)
    spec = scenario.user
    query = _words(" ".join([scenario.domain, scenario.description, spec.goal, spec.opening, persona.description]))
    upset = persona.initial_affect in ("frustrated", "angry")
    ranked: list[tuple[float, str, str, Conversation]] = []
    for chat in chats:
        said = " ".join(t.text for t in chat.user_turns())
        labels = " ".join(str(chat.labels.get(key, "")) for key in ("intent", "domains", "persona_instructions"))
        doc = _words(f"{said} {labels}")
        overlap = len(query & doc)
        if overlap:
            score = overlap / math.sqrt(len(doc)) * (1.5 if upset and chat.labels.get("annoyed") else 1.0)
            ranked.append((-score, chat.corpus, chat.id, chat))
    ranked.sort(key=lambda r: r[:3])
    for *_, chat in ranked:
        if len(lines) >= k:
            break
        turns = [t for t in chat.user_turns() if t.text.strip()]
        best = max(turns, key=lambda t: len(query & _words(t.text)))  # first of the best on ties
        line = _clip(best.text, max_chars)
        if line not in lines:
            lines.append(line)
    return lines[:k]


_QUOTES = {'"': '"', "\u201c": "\u201d", "'": "'"}


def _unquote(text: str) -> str:
    """``text`` without one pair of quotation marks around all of it (models often add them).

    Example:
        >>> _unquote('  "Please hurry!"  '), _unquote("'Tis the season")
        ('Please hurry!', "'Tis the season")
    """
    text = text.strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1] and text[0] not in text[1:-1]:
        return text[1:-1].strip()
    return text


def _say(fact: Fact) -> str | None:
    """The scenario's wording of a fact (its ``say`` template rendered), if it has one."""
    return render_scenario_text(fact.say, value=fact.value, key=fact.key) if fact.say else None


# -- the user --------------------------------------------------------------------------------


class LLMUser(UserSimulator):
    """A mock user played by a language model through litellm (see the module docstring).

    Args:
        model: litellm model string, e.g. ``openai/gpt-4o-mini`` or ``ollama/llama3``.
        temperature: Sampling temperature of the user model.
        seed: Per-episode seed of the calls; ``None`` derives it from the environment's generator.
        max_retries: Regenerations of a turn that has faults before it is returned with ``fault``.
        checker_model: A model that also checks every turn (JSON verdict); ``None``: rules only.
        api_base: Endpoint of the user model (a local server, a proxy).
        exemplars: Transcripts to draw exemplar user turns from: conversations, or a canonical
            JSONL file or folder of them; ``None``: no exemplars.
        n_exemplars: How many exemplar turns go into the prompt.
        max_tokens: Cap on each user turn's tokens (``None``: the provider's default).
        checker_api_base: Endpoint of the checker model.
        completion_options: Further keyword arguments of every user-model call (e.g. ``mock_response``).
        client: The model client of the user and checker calls (default: litellm, :func:`envsim.llm.default_client`).

    Attributes:
        usage: The current episode's calls, tokens and cost (:class:`~envsim.llm.UsageMeter`).
        fault_log: Every fault found in the current episode, including those a regeneration fixed.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        temperature: float = 0.7,
        seed: int | None = None,
        max_retries: int = 2,
        checker_model: str | None = None,
        api_base: str | None = None,
        exemplars: Iterable[Conversation] | str | Path | None = None,
        *,
        n_exemplars: int = 3,
        max_tokens: int | None = None,
        checker_api_base: str | None = None,
        completion_options: Mapping[str, Any] | None = None,
        client: ModelClient | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        check_settings(model, temperature=temperature, max_tokens=max_tokens)
        self.model = model
        self.temperature = temperature
        self.seed = seed
        self.max_retries = max_retries
        self.checker_model = checker_model
        self.api_base = api_base
        self.n_exemplars = n_exemplars
        self.max_tokens = max_tokens
        self.checker_api_base = checker_api_base
        self.completion_options = dict(completion_options or {})
        self.client = client if client is not None else default_client()
        self._corpus: list[Conversation] = self._read_exemplars(exemplars)
        self.usage = UsageMeter()
        self.fault_log: list[Fault] = []
        self._scenario: Scenario | None = None
        self._persona: Persona | None = None
        self._exemplars: list[str] = []
        self._affect: AffectMachine | None = None
        self._episode_seed = 0
        self._history: list[dict[str, Any]] = []
        self._revealed: set[str] = set()
        self._recall = Recall()
        self._correcting: list[Fact] = []
        self._found: list[Fact] = []
        self._not_found: set[str] = set()

    @staticmethod
    def _read_exemplars(exemplars: Iterable[Conversation] | str | Path | None) -> list[Conversation]:
        if exemplars is None:
            return []
        if isinstance(exemplars, str | Path):
            from envsim.transcripts.importers import read_jsonl

            return list(read_jsonl(exemplars))
        return list(exemplars)

    # -- UserSimulator ---------------------------------------------------------------------

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """Start an episode: fresh affect, usage and seed; return the scenario's opening line."""
        if self._scenario is None or (self._scenario is not scenario and self._scenario != scenario):
            self._persona = scenario_persona(scenario)
            self._exemplars = retrieve_exemplars(scenario, self._corpus, k=self.n_exemplars) if self._corpus else []
        assert self._persona is not None
        self._scenario = scenario
        self._affect = AffectMachine(self._persona, emergency=is_emergency(scenario))
        if self.seed is not None:
            self._episode_seed = self.seed
        else:
            try:  # a child generator leaves the environment's stream as it is
                child = rng.spawn(1)[0]
            except (AttributeError, TypeError):  # numpy < 1.25, or a generator without a seed sequence
                child = rng
            self._episode_seed = int(child.integers(_SEED_RANGE))
        self.usage = UsageMeter()
        self.fault_log = []
        self._revealed = set()
        self._recall.reset()
        self._correcting = []
        self._found = []
        self._not_found = set()
        opening = scenario.user.opening
        self._history = [{"role": "user", "content": opening}]
        return opening

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """Answer one agent message with the user model (checked, regenerated on faults)."""
        steps = self._steps(agent_message, messages)
        try:
            call = next(steps)
            while True:
                call = steps.send(self.client.complete(call.model, call.messages, **call.kwargs))
        except StopIteration as stop:
            turn: UserTurn = stop.value
            return turn

    async def areply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """The async form of :meth:`reply` (the client's ``acomplete``)."""
        steps = self._steps(agent_message, messages)
        try:
            call = next(steps)
            while True:
                call = steps.send(await self.client.acomplete(call.model, call.messages, **call.kwargs))
        except StopIteration as stop:
            turn: UserTurn = stop.value
            return turn

    # -- what the model sees ---------------------------------------------------------------

    @property
    def affect_state(self) -> AffectState:
        """The user's current affect state (after the last agent turn)."""
        return self._ready()[2].state

    @property
    def revealed(self) -> frozenset[str]:
        """Keys of the facts the user has given so far in this episode."""
        return frozenset(self._revealed)

    def system_prompt(self, affect: AffectState | None = None) -> str:
        """The user model's system prompt at ``affect`` (default: the current affect state)."""
        scenario, persona, machine = self._ready()
        spec = scenario.user
        hidden: list[Fact] = [] if persona.disclosure == "volunteers" else spec.facts
        unsaid = [f for f in spec.facts if f.key not in self._revealed]
        found = {f.key for f in self._found}
        return render(
            "user_system.j2",
            persona=render_persona(persona, goal=spec.goal, facts_known=spec.facts, affect=affect or machine.state),
            hidden=[
                {"key": f.key, "asked_by": f.asked_by, "say": _say(f)}
                for f in hidden
                if f.key not in self._revealed and f.key not in found
            ],
            missing=[f.key.replace("_", " ") for f in unsaid if f.key in self._not_found or not self._recall.has(f)],
            slips=[
                {"key": f.key.replace("_", " "), "wrong": f.said_first}
                for f in unsaid
                if f.said_first and f.key not in self._recall.slipped
            ],
            corrections=[
                {"key": f.key.replace("_", " "), "wrong": f.said_first, "value": f.value} for f in self._correcting
            ],
            found=[
                {
                    "key": f.key.replace("_", " "),
                    "value": f.said_first if f.said_first and f.key not in self._recall.slipped else f.value,
                }
                for f in self._found
                if f.key not in self._revealed
            ],
            given=[f.key.replace("_", " ") for f in spec.facts if f.key in self._revealed],
            follow_ups=spec.follow_ups,
            exemplars=self._exemplars,
            stop=STOP_MARKER,
        )

    def conversation(self, agent_message: str, messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The conversation as the user model sees it: roles flipped, tool and system messages left out.

        ``messages`` is the environment's message list (it may end with ``agent_message``);
        empty, the user's own record of the episode is used.
        """
        source = messages or self._history
        flipped: list[dict[str, Any]] = [{"role": "user", "content": render("user_start.j2")}]
        for role, text in spoken_turns(source, agent_message):
            mine = "assistant" if role == "user" else "user"
            if flipped[-1]["role"] == mine:
                flipped[-1] = {"role": mine, "content": f"{flipped[-1]['content']}\n\n{text}"}
            else:
                flipped.append({"role": mine, "content": text})
        return flipped

    # -- the reply logic (shared by reply and areply) --------------------------------------

    def _ready(self) -> tuple[Scenario, Persona, AffectMachine]:
        if self._scenario is None or self._persona is None or self._affect is None:
            raise RuntimeError("call reset() before reply()")
        return self._scenario, self._persona, self._affect

    def _call(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> _Call:
        seed = (self._episode_seed + self.usage.calls) % _SEED_RANGE
        return _Call(model, messages, {**kwargs, "seed": seed})

    def _user_call(self, messages: list[dict[str, Any]]) -> _Call:
        options: dict[str, Any] = {"temperature": self.temperature, **self.completion_options}
        if self.api_base is not None:
            options["api_base"] = self.api_base
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        return self._call(self.model, messages, **options)

    def _steps(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> Generator[_Call, Completion, UserTurn]:
        scenario, persona, machine = self._ready()
        history: list[dict[str, Any]] = [dict(m) for m in (messages or self._history)]
        world = self.goal_met()  # claims without the goal met are no resolution (affect) and no ending
        events = classify_agent_turn(agent_message, history, scenario, self._revealed, goal_met=world)
        state = machine.observe(events).after
        self._correcting = self._recall.corrections()  # slips of the last reply, corrected in this one
        self._found = self._recall.announcements(exclude=self._revealed)  # looked for after the last reply: found
        heard = read_part(agent_message).lower()
        self._not_found = {  # requests counted as the scripted user counts them (an asked_by word)
            fact.key
            for fact in scenario.user.facts
            if fact.key not in self._revealed
            and any(k.lower() in heard for k in fact.asked_by)
            and not self._recall.at_hand(fact)
        }
        system = self.system_prompt(state)
        conversation = self.conversation(agent_message, history)
        draft, text, done = "", "", False
        faults: list[Fault] = []
        for attempt in range(self.max_retries + 1):
            prompt = system
            if attempt:
                prompt = f"{system}\n\n{render('user_retry.j2', draft=split_stop(draft)[0], faults=faults)}"
            completion = yield self._user_call([{"role": "system", "content": prompt}, *conversation])
            self.usage.add(completion, retry=attempt > 0)
            draft = _unquote(completion.text)
            text, marked = split_stop(draft)
            done = state.gives_up or (marked and world is not False)
            faults = check_user_turn(
                draft,
                scenario=scenario,
                revealed=self._revealed,
                agent_message=agent_message,
                history=history,
                done=done,
            )
            if state.gives_up:  # the affect machine ended it: never too early
                faults = [f for f in faults if f.kind != "ends_too_early"]
            if not faults and self.checker_model is not None:
                faults = yield from self._check(draft, scenario, agent_message, history)
            self.fault_log.extend(faults)
            if not faults:
                break
        if done and not text:
            text = persona.give_up if state.gives_up else scenario.user.closing
        self._revealed.update(f.key for f in scenario.user.facts if mentions(text, f.value))
        for fact in scenario.user.facts:  # a slip said: corrected in the next reply
            if fact.said_first and fact.key not in self._recall.slipped and mentions(text, fact.said_first):
                self._recall.giving(fact)
        if not history or history[-1] != {"role": "assistant", "content": agent_message}:
            history.append({"role": "assistant", "content": agent_message})
        self._history = [*history, {"role": "user", "content": text}]
        return UserTurn(text, done=done, affect=state.affect, fault=fault_reason(faults))

    def _check(
        self, draft: str, scenario: Scenario, agent_message: str, history: Sequence[Mapping[str, Any]]
    ) -> Generator[_Call, Completion, list[Fault]]:
        assert self.checker_model is not None
        prompt = checker_messages(
            draft, scenario=scenario, revealed=self._revealed, agent_message=agent_message, history=history
        )
        options: dict[str, Any] = {"temperature": 0.0}
        if self.checker_api_base is not None:
            options["api_base"] = self.checker_api_base
        completion = yield self._call(self.checker_model, prompt, **options)
        self.usage.add(completion, checker=True)
        try:
            verdict = parse_verdict(completion.text)
        except CheckerError as error:
            return [Fault(kind="checker_failed", detail=str(error), source="llm")]
        return [Fault(kind=f.kind, detail=f.detail or "reported by the checker", source="llm") for f in verdict.faults]
