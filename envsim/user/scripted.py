"""The offline scripted user: driven by the scenario and its persona, no model needed.

It opens with the scenario's opening line, reveals a fact only when the agent's message
asks for it (one of the fact's ``asked_by`` words), closes when the scenario's goal is met
(:func:`~envsim.user.base.satisfied`: the expected writes done in the world, and one of the
``satisfied_by`` phrases said when the scenario lists any; a scenario's ``follow_ups`` are said there first, one
each time, as written), and otherwise nudges (persona and
scenario lines, chosen with the environment's generator) until its persona's patience runs out
and it gives up. Being asked again for a fact it already gave costs patience too ("I already
told you. ..."). Asked for a detail it does not have (:func:`~envsim.user.affect.unknown_details`: a date of birth, a
maiden name, ... that no fact of the scenario is), it says so (:data:`DONT_KNOW_LINES`) and
carries on: that costs no patience, unless the agent asks for it again.

Its affect is state (:mod:`envsim.user.affect`): each agent message is classified into
events that move an :class:`~envsim.user.affect.AffectMachine`, which decides when the user
gives up and when it demands a person ("I want to speak to a person." lines from the
persona's ``human_demands``); every :class:`~envsim.user.base.UserTurn` reports the affect.
The persona's traits act on the text, all through the environment's generator:

- ``disclosure: volunteers``: the opening also gives the first fact, unasked;
- ``verbosity``: a nudge is trimmed to whole sentences, or extended with further nudge lines,
  towards a word count drawn from the persona's distribution;
- ``question_rate``: the share of nudges drawn from the question-shaped lines;
- ``typo_rate``: each lower-case word (3+ letters, not part of a fact value) gets a typo
  with that probability; names, numbers and addresses are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from envsim.prompts import render_remembered
from envsim.scenario import Fact, Scenario
from envsim.user.affect import (
    SETBACK,
    AffectMachine,
    AffectState,
    classify_agent_turn,
    is_emergency,
    read_part,
    scenario_persona,
    unknown_details,
)
from envsim.user.base import UserSimulator, UserTurn, satisfied
from envsim.user.persona import Persona
from envsim.user.recall import NOT_AT_HAND_LINES, Recall, correction_line, found_line, say

DONT_KNOW_LINES: tuple[str, ...] = (
    "Sorry, I don't have that.",
    "I'm not sure, I don't know it.",
    "I can't remember that, sorry.",
)
"""What the user says when asked for a detail it does not have (the transcript user, when no human turn
can be retrieved)."""

ANOTHER_OPTION_LINES: tuple[str, ...] = (
    "Is there another option, then?",
    "What else could work instead?",
    "Can you try something else for me?",
)
"""What the user says when the agent says what it asked for cannot be had (:data:`~envsim.user.affect.SETBACK`)
and its goal is not met: it asks for another option, as the transcript user does (intent ``other``), never a
thank-you and goodbye."""


def _keyboard_neighbours() -> dict[str, str]:
    """Letter -> the letters next to it on a QWERTY keyboard (same row, and above/below)."""
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    out: dict[str, str] = {}
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            near = [row[i] for i in (c - 1, c + 1) if 0 <= i < len(row)]
            near += [rows[rr][c] for rr in (r - 1, r + 1) if 0 <= rr < len(rows) and c < len(rows[rr])]
            out[ch] = "".join(near)
    return out


_NEIGHBOURS = _keyboard_neighbours()
_ELIGIBLE = re.compile(r"(?<!\S)([^A-Za-z0-9\s]*)([a-z]{3,})([^A-Za-z0-9\s]*)(?!\S)")
"""A whole whitespace-separated token that is one all-lower-case word of three or more letters, with any other
non-alphanumeric characters around it (groups: before, the word, after)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _typo(word: str, rng: np.random.Generator) -> str:
    """One typo in ``word``: swapped neighbours, a dropped, a doubled or a mistyped letter."""
    kind = int(rng.integers(4))
    i = int(rng.integers(len(word) - 1))
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    if kind == 2:
        return word[: i + 1] + word[i] + word[i + 1 :]
    near = _NEIGHBOURS.get(word[i], "")
    return word[:i] + near[int(rng.integers(len(near)))] + word[i + 1 :] if near else word


def apply_typos(text: str, rate: float, rng: np.random.Generator, protected: Collection[str] = ()) -> str:
    """``text`` with a typo in each eligible word with probability ``rate`` (draws from ``rng``).

    Eligible: an all-lower-case word of three or more letters (surrounding punctuation aside)
    that is not in ``protected``; names, numbers, emails and ids are never changed.

    Example:
        >>> apply_typos("Please call me at 555-0142, Walter.", 1.0, np.random.default_rng(0))
        'Please ccall me at 555-0142, Walter.'
        >>> apply_typos("Please hurry", 0.0, np.random.default_rng(0))
        'Please hurry'
    """
    if rate <= 0:
        return text

    def swap(match: re.Match[str]) -> str:
        before, word, after = match.groups()
        if word in protected or rng.random() >= rate:
            return match.group(0)
        return before + _typo(word, rng) + after

    return _ELIGIBLE.sub(swap, text)


def _words(text: str) -> int:
    return len(text.split())


def fit_length(line: str, others: Sequence[str], target: int) -> str:
    """``line`` trimmed to whole sentences, or extended with ``others``, towards ``target`` words.

    Trimming keeps at least the first sentence; extending adds whole lines while the total
    stays within ``target``.

    Example:
        >>> fit_length("Hurry. He is grey. Please!", [], 4)
        'Hurry. He is grey.'
        >>> fit_length("Hello?", ["Anyone there?", "Please answer."], 4)
        'Hello? Anyone there?'
    """
    if _words(line) > target:
        kept: list[str] = []
        for sentence in _SENTENCE_END.split(line.strip()):
            if kept and _words(" ".join([*kept, sentence])) > target:
                break
            kept.append(sentence)
        return " ".join(kept)
    out = [line]
    total = _words(line)
    for other in others:
        n = _words(other)
        if total + n > target:
            break
        out.append(other)
        total += n
    return " ".join(out)


class ScriptedUser(UserSimulator):
    """A deterministic, scenario-driven mock user with affect.

    Args:
        typos: Apply the persona's ``typo_rate`` (``False`` keeps every authored line verbatim).

    Example:
        >>> import numpy as np
        >>> from envsim.registration import load_registered
        >>> user = ScriptedUser()
        >>> opening = user.reset(load_registered("MedicalSupplyPanicCaller"), np.random.default_rng(0))
        >>> user.affect
        'panicked'
        >>> turn = user.reply("What is your phone number?", [])
        >>> turn.text, turn.affect
        ('My phone number is 555-0142.', 'panicked')
    """

    def __init__(self, *, typos: bool = True) -> None:
        self.typos = typos
        self._facts: list[tuple[Fact, tuple[str, ...], str]] = []
        self._revealed: set[str] = set()
        self._satisfied: tuple[str, ...] = ()
        self._nudges: list[str] = []
        self._questions: list[str] = []
        self._statements: list[str] = []
        self._persona: Persona | None = None
        self._scenario: Scenario | None = None
        self._emergency = False
        self._protected: frozenset[str] = frozenset()
        self._closing = ""
        self._goal = ""
        self._opening = ""
        self._rng: np.random.Generator | None = None
        self._machine: AffectMachine | None = None
        self._ended: str | None = None
        self._recall = Recall()
        self._follow_ups: list[str] = []

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        """Start a conversation and return the opening line (with a volunteered fact, if the persona volunteers)."""
        if self._scenario is not scenario:  # prepare once per scenario object
            spec = scenario.user
            self._persona = scenario_persona(scenario)
            self._facts = [(f, tuple(k.lower() for k in f.asked_by), say(f)) for f in spec.facts]
            self._satisfied = tuple(p.lower() for p in spec.satisfied_by)
            self._nudges = [*spec.nudges, *self._persona.nudges] or [f"I still need help: {spec.goal}"]
            self._questions = [n for n in self._nudges if n.rstrip().endswith("?")]
            self._statements = [n for n in self._nudges if not n.rstrip().endswith("?")]
            self._protected = frozenset(w for f in spec.facts for w in re.findall(r"[a-z]+", f.value.lower()))
            self._emergency = is_emergency(scenario)
            self._closing = spec.closing
            self._goal = spec.goal
            self._opening = spec.opening
            self._scenario = scenario
        assert self._persona is not None
        self._rng = rng
        self._revealed = set()
        self._ended = None
        self._follow_ups = list(scenario.user.follow_ups)
        self._recall.reset()
        self._machine = AffectMachine(self._persona, emergency=self._emergency)
        opening = self._opening
        if self._persona.disclosure == "volunteers" and self._facts and not self._facts[0][0].found_after:
            fact = self._recall.giving(self._facts[0][0])
            opening = f"{opening} {render_remembered('user_fact.j2', key=fact.key, value=fact.value)}"
            self._revealed.add(fact.key)
        return self._typed(opening)

    @property
    def affect(self) -> str | None:
        """The user's current affect (``None`` before :meth:`reset`)."""
        return self._machine.affect if self._machine is not None else None

    @property
    def affect_state(self) -> AffectState | None:
        """The user's full affect state (``None`` before :meth:`reset`)."""
        return self._machine.state if self._machine is not None else None

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        """Reveal asked-for facts, close when the goal is met (:func:`~envsim.user.base.satisfied`), else nudge,
        demand a person, or give up."""
        persona, rng, machine, scenario = self._persona, self._rng, self._machine, self._scenario
        assert persona is not None and rng is not None and machine is not None and scenario is not None, (
            "call reset() first"
        )
        if self._ended is not None:
            return UserTurn(self._ended, done=True, affect=machine.affect)
        world = self.goal_met()  # claims without the goal met are no resolution (affect) and no ending
        step = machine.observe(classify_agent_turn(agent_message, messages, scenario, self._revealed, goal_met=world))
        state = step.after
        text = read_part(agent_message).lower()  # what the user reads of it
        slips = {f.key for f in self._recall.corrections()}  # given wrongly in the last reply: corrected first
        corrected = [correction_line(f) for f, _, _ in self._facts if f.key in slips]
        asked = [(fact, said) for fact, keys, said in self._facts if any(k in text for k in keys)]
        new = [(fact, said) for fact, said in asked if fact.key not in self._revealed]
        # what it went looking for after the last reply and found: it says so, asked or not
        back = self._recall.announcements(exclude={*self._revealed, *(f.key for f, _ in new)})
        at_hand = [(fact, said) for fact, said in new if self._recall.at_hand(fact)]
        if back and not state.gives_up and (at_hand or not satisfied(world, self._satisfied, text)):
            self._revealed.update(fact.key for fact in back)
            corrected += [found_line(self._recall.giving(fact)) for fact in back]
        if at_hand and not state.gives_up:
            self._revealed.update(fact.key for fact, _ in at_hand)
            parts = list(corrected)
            for fact, said in at_hand:
                giving = self._recall.giving(fact)  # with its said_first value the first time
                parts.append(said if giving is fact else say(giving))
            if state.wants_human:
                parts.append(self._pick(persona.human_demands))
            return self._turn(" ".join(parts), state)
        if satisfied(world, self._satisfied, text) and self._follow_ups and not state.gives_up:
            return self._turn(" ".join([*corrected, self._follow_ups.pop(0)]), state)  # the next request, not goodbye
        if satisfied(world, self._satisfied, text):
            self._ended = self._typed(self._closing)
            return UserTurn(self._ended, done=True, affect=state.affect)
        if state.gives_up:
            self._ended = self._typed(persona.give_up)
            return UserTurn(self._ended, done=True, affect=state.affect)
        parts = corrected
        given = [(fact, said) for fact, said in asked if fact.key in self._revealed and fact.key not in slips]
        if given:  # asked again for what it already said
            parts.append("I already told you. " + " ".join(said for _, said in given))
        ignored = step.before.requires_emergency and "ignores_emergency" in step.events
        if state.wants_human:
            parts.append(self._pick(persona.human_demands))
        elif new and not given:  # asked for what it has not found yet (found_after)
            parts.append(self._pick(NOT_AT_HAND_LINES))
        elif not asked and not ignored and unknown_details(agent_message, scenario):
            parts.append(self._pick(DONT_KNOW_LINES))
        elif not asked and not back and SETBACK.search(text) and world is not True:
            parts.append(self._pick(ANOTHER_OPTION_LINES))  # 'no appointment available at 5 pm': another one?
        elif not asked and not back:
            parts.append(self._nudge(persona, rng))
        return self._turn(" ".join(parts), state)

    # -- internals -----------------------------------------------------------------------

    def _turn(self, text: str, state: AffectState) -> UserTurn:
        return UserTurn(self._typed(text), affect=state.affect)

    def _typed(self, text: str) -> str:
        assert self._persona is not None and self._rng is not None
        return apply_typos(text, self._persona.typo_rate, self._rng, self._protected) if self.typos else text

    def _pick(self, lines: Sequence[str]) -> str:
        assert self._rng is not None
        return lines[int(self._rng.integers(len(lines)))]

    def _nudge(self, persona: Persona, rng: np.random.Generator) -> str:
        """A nudge: a question with probability ``question_rate``, fitted to a drawn length."""
        ask = bool(self._questions) and (not self._statements or rng.random() < persona.question_rate)
        pool = self._questions if ask else self._statements
        line = self._pick(pool)
        start = self._nudges.index(line)
        others = [n for n in self._nudges[start + 1 :] + self._nudges[:start] if n != line]
        return fit_length(line, others, persona.verbosity.sample(rng))
