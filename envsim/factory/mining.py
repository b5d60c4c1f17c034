"""Mining scenario drafts from conversation logs (``envsim scenarios mine``).

Each conversation of a log, read by an importer into the canonical transcript schema
(:mod:`envsim.transcripts`), becomes a draft scenario file:

- ``user.opening``: the customer's first turn (``source.turn`` is its index);
- ``user.goal``: the role-player's first instruction (STAR), else the intent label and the
  opening (ABCD), else a ``goal`` label of the log, else the opening;
- ``user.facts``: the slot values the customer gave when the agent asked
  (:func:`envsim.factory.slots.customer_facts`);
- ``user.persona``: from the customer's affect (:mod:`envsim.user.affect_scorer`, the most over
  their turns, recorded in ``source.affect``): fear or nervousness → ``panicked_caller``, anger or
  annoyance (or STAR's "the user became annoyed") → ``annoyed``, confusion → ``confused``, the
  strongest at or over :data:`PERSONA_THRESHOLD`; else ``calm``;
- ``expected.actions``: the agent's logged tool calls mapped onto the toolkit
  (:mod:`envsim.factory.mapping`); when one cannot be mapped, or the log holds none, the actions
  are left out and ``source.notes`` says why (``envsim validate`` then reports "no criteria" until
  a reviewer completes the draft);
- the world is the toolkit's default fixture (or the mapping's ``world``) and the agent's
  guidelines a template listing the toolkit's tools (or the mapping's ``guidelines``).

Drafts have ``status: draft`` and their provenance in ``source`` (corpus, format, file,
conversation id, turn). Nothing is written until every conversation has been read, so a bad line
leaves no file behind; each file is then written atomically. A rerun overwrites drafts but never a
file a reviewer accepted, and skips the conversations a reviewer rejected (``rejected.jsonl``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envsim.factory.mapping import MiningMapping, source_arguments
from envsim.factory.slots import customer_facts
from envsim.fileio import write_atomic
from envsim.prompts import render
from envsim.scenario import Expected, Scenario, ToolCallSpec
from envsim.toolkits import get_toolkit
from envsim.transcripts.schema import Conversation
from envsim.user.affect_scorer import AffectScorer, default_scorer
from envsim.world import WorldSpec

MINER = "envsim-mine/1"
"""Written in each draft's ``source.generator``."""

PERSONA_THRESHOLD = 0.25
"""The affect intensity (0-1) at or over which a draft's persona follows the customer's affect."""

PERSONA_BY_AFFECT: dict[str, tuple[str, ...]] = {
    "panicked_caller": ("fear", "nervousness"),
    "annoyed": ("anger", "annoyance"),
    "confused": ("confusion",),
}
"""Persona → the affects that choose it."""

HUMAN_WRITTEN = frozenset({"star", "abcd", "banking77", "goemotions"})
"""Public corpora: human-written, role-played (or crowd-written) conversations, not real customer calls."""

OUTCOME_LABELS = ("outcome", "complaint")
"""Conversation labels (e.g. a production log's ``metadata``) that say how it went: noted for the reviewer."""

REJECTED_FILE = "rejected.jsonl"
"""In a drafts folder: one line per rejected draft (id, corpus, conversation_id); ``mine`` skips them."""


@dataclass
class Draft:
    """One mined draft: the scenario and its YAML text."""

    scenario: Scenario
    text: str

    @property
    def file_name(self) -> str:
        """The draft's file name in the output folder."""
        return f"{self.scenario.id}.yaml"


@dataclass
class MineResult:
    """What mining a log gave: the drafts, and the conversations skipped by reason."""

    drafts: list[Draft] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        """Counts for the ``--json`` line."""
        with_actions = sum(bool(d.scenario.expected.actions) for d in self.drafts)
        return {
            "drafts": len(self.drafts),
            "with_actions": with_actions,
            "without_actions": len(self.drafts) - with_actions,
            "skipped": dict(sorted(self.skipped.items())),
        }


@dataclass
class Miner:
    """Drafts scenarios for one toolkit from conversations of one log file."""

    toolkit: str
    mapping: MiningMapping = field(default_factory=MiningMapping)
    file: str = ""
    format: str = ""
    scorer: AffectScorer = field(default_factory=default_scorer)

    def __post_init__(self) -> None:
        self.specs = get_toolkit(self.toolkit).tool_specs
        self.guidelines = self.mapping.guidelines or default_guidelines(self.toolkit)
        self.world = self.mapping.world or WorldSpec(fixture="default", seed=0)

    def mine(
        self,
        conversations: Iterable[Conversation],
        *,
        limit: int | None = None,
        mapped_only: bool = False,
        skip: frozenset[tuple[str, str]] = frozenset(),
    ) -> MineResult:
        """Draft every conversation (up to ``limit`` drafts); ``mapped_only`` keeps only those whose actions
        map; ``skip`` holds ``(corpus, conversation id)`` pairs not to draft (rejected before)."""
        result = MineResult()
        ids: set[str] = set()
        for conversation in conversations:
            if limit is not None and len(result.drafts) >= limit:
                break
            if (conversation.corpus, conversation.id) in skip:
                result.skipped["rejected_before"] += 1
                continue
            scenario, reason = self.draft(conversation)
            if scenario is None:
                result.skipped[reason] += 1
                continue
            if mapped_only and not scenario.expected.actions:
                result.skipped["actions_not_mapped"] += 1
                continue
            if scenario.id in ids:
                suffix = hashlib.sha256(f"{conversation.corpus}/{conversation.id}".encode()).hexdigest()[:8].upper()
                scenario = scenario.model_copy(update={"id": f"{scenario.id}X{suffix}"})
            ids.add(scenario.id)
            result.drafts.append(Draft(scenario, dump_draft(scenario)))
        return result

    def draft(self, conversation: Conversation) -> tuple[Scenario | None, str]:
        """The draft of one conversation, or ``None`` and why it has none."""
        opening_at = next((i for i, t in enumerate(conversation.turns) if t.role == "user" and t.text.strip()), None)
        if opening_at is None:
            return None, "no_customer_turn"
        opening = conversation.turns[opening_at].text.strip()
        facts = [fact for fact, _ in customer_facts(conversation.turns)]
        affect = self._affect(conversation)
        actions, notes = self._actions(conversation)
        logged = [f"{key}: {conversation.labels[key]}" for key in OUTCOME_LABELS if conversation.labels.get(key)]
        if logged:
            notes.append(
                "the log says " + "; ".join(logged) + ": to make this a regression scenario, add what catches the "
                "failure (required statements, forbidden actions, no_change)"
            )
        last = self.specs.get(actions[-1].name) if actions else None
        escalates = last is not None and last.flags.escalation
        corpus = conversation.corpus
        origin = (
            f"the {corpus} corpus (human-written, role-played conversations; not real customer calls)"
            if corpus in HUMAN_WRITTEN
            else (self.file or corpus)
        )
        intent = conversation.labels.get("intent")
        body: dict[str, Any] = {
            "id": scenario_id(conversation),
            "domain": self.toolkit,
            "description": f"Drafted from conversation {conversation.id} of {origin}"
            + (f", intent {intent}" if isinstance(intent, str) and intent else "")
            + ". Review the opening, goal, facts and expected actions before accepting it.",
            "toolkits": [self.toolkit],
            "world": self.world,
            "agent": {"guidelines": self.guidelines},
            "user": {
                "goal": _goal(conversation, opening),
                "opening": opening,
                "facts": facts,
                "persona": {"ref": _persona(affect, conversation.labels)},
            },
            "expected": Expected(actions=actions, escalation="required" if escalates else "optional"),
            "max_turns": min(60, max(12, 2 * len(facts) + len(actions) + 6)),
            "tags": ["mined", corpus],
            "source": {
                "corpus": corpus,
                "format": self.format or corpus,
                "file": self.file or None,
                "conversation_id": conversation.id,
                "turn": opening_at,
                "generator": MINER,
                "affect": affect,
                "notes": notes,
            },
            "status": "draft",
        }
        return Scenario.model_validate(body), ""

    def _affect(self, conversation: Conversation) -> dict[str, float]:
        texts = [t.text for t in conversation.turns if t.role == "user" and t.text.strip()]
        if not texts:
            return {}
        scores = self.scorer.score_many(texts).max()
        return {name: round(float(scores[name]), 3) for name in self.scorer.affects}

    def _actions(self, conversation: Conversation) -> tuple[list[ToolCallSpec], list[str]]:
        """The expected actions (empty when any logged call cannot be mapped) and the reviewer's notes."""
        actions: list[ToolCallSpec] = []
        problems: list[str] = []
        dropped: list[str] = []
        calls = [(i, t.tool) for i, t in enumerate(conversation.turns) if t.tool is not None]
        for index, event in calls:
            entry = self.mapping.actions.get(event.name)
            given = source_arguments(event.arguments)
            if entry is None:
                if event.name in self.specs:
                    actions.append(ToolCallSpec(name=event.name, arguments=given))
                else:
                    problems.append(f"turn {index}: no mapping for the logged action {event.name!r}")
                continue
            if entry.tool is None:
                dropped.append(f"turn {index}: {event.name}")
                continue
            missing = [src for src in entry.arguments.values() if src not in given]
            if missing:
                problems.append(
                    f"turn {index}: the logged {event.name} has no argument {missing[0]!r} (it has: "
                    f"{', '.join(given) or 'none'})"
                )
                continue
            arguments = {name: given[src] for name, src in entry.arguments.items()}
            actions.append(ToolCallSpec(name=entry.tool, arguments={**arguments, **entry.constants}))
        notes: list[str] = []
        if not calls:
            notes.append(
                "expected actions left out: the log holds no tool calls; give the expected actions (or no_change "
                "and forbidden actions, or required statements) before accepting"
            )
        elif problems:
            notes.append(
                "expected actions left out: " + "; ".join(problems) + " (add it to the mapping file, or write the "
                "expected actions by hand)"
            )
            actions = []
        if dropped:
            notes.append("logged actions without a counterpart, dropped: " + "; ".join(dropped))
        if actions:
            notes.append(
                f"expected actions mapped from the log onto {self.toolkit}'s {self.world.fixture} world (seed "
                f"{self.world.seed}): check that they replay (envsim scenarios review --accept-verified does)"
            )
        return actions, notes


def default_guidelines(toolkit: str) -> str:
    """The drafts' agent guidelines for ``toolkit``: a template over its tools."""
    specs = get_toolkit(toolkit).tool_specs
    tools = [{"name": name, "summary": spec.description.split("\n")[0].strip()} for name, spec in specs.items()]
    escalation = next((name for name, spec in specs.items() if spec.flags.escalation), None)
    return render("mined_guidelines.j2", toolkit=toolkit, tools=tools, escalation_tool=escalation)


def scenario_id(conversation: Conversation) -> str:
    """``Mined`` + the corpus + the conversation id, in CamelCase letters and digits.

    Example:
        >>> scenario_id(Conversation(corpus="openai", id="chat-7/b", turns=[]))
        'MinedOpenaiChat7B'
    """
    parts = re.findall(r"[A-Za-z0-9]+", f"{conversation.corpus} {conversation.id}")
    return "Mined" + "".join(p[:1].upper() + p[1:] for p in parts)


def _goal(conversation: Conversation, opening: str) -> str:
    from envsim.transcripts.importers.star import instruction_text

    instructions = conversation.labels.get("persona_instructions")
    if isinstance(instructions, list) and instructions and isinstance(instructions[0], str):
        first = instruction_text(instructions[0]).strip()
        if first:
            return first
    goal = conversation.labels.get("goal")
    if isinstance(goal, str) and goal.strip():
        return goal.strip()
    intent = conversation.labels.get("intent")
    if isinstance(intent, str) and intent.strip():
        return f"{intent.replace('_', ' ').strip().capitalize()}: {opening}"
    return opening


def _persona(affect: dict[str, float], labels: dict[str, Any]) -> str:
    best, strength = "calm", 0.0
    for persona, kinds in PERSONA_BY_AFFECT.items():
        score = max(affect.get(kind, 0.0) for kind in kinds)
        if score >= PERSONA_THRESHOLD and score > strength:
            best, strength = persona, score
    if best == "calm" and labels.get("annoyed") is True:
        return "annoyed"
    return best


class _DraftDumper(yaml.SafeDumper):
    """Multi-line strings as ``|`` blocks, so that guidelines and notes read as written."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    short = all(isinstance(v, str | int | float | bool) and len(str(v)) <= 40 for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=short)


_DraftDumper.add_representer(str, _string)
_DraftDumper.add_representer(list, _list)


def dump_draft(scenario: Scenario) -> str:
    """A draft's YAML text: the model's fields in order, defaults left out (but the world, persona and status
    kept); short lists in flow style."""
    data = scenario.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    data["world"] = scenario.world.model_dump(
        mode="json", include={"fixture", "seed"} | scenario.world.model_fields_set
    )
    data["user"]["persona"] = scenario.user.persona.model_dump(mode="json", exclude_none=True)
    ordered = {name: data[name] for name in Scenario.model_fields if name in data}
    header = (
        "# A draft mined from a conversation log (envsim scenarios mine): review it with envsim scenarios review.\n"
    )
    text = yaml.dump(ordered, Dumper=_DraftDumper, sort_keys=False, allow_unicode=True, width=110)
    return header + text


def rejected_sources(folder: Path) -> frozenset[tuple[str, str]]:
    """``(corpus, conversation id)`` of the drafts a reviewer rejected in ``folder``."""
    path = folder / REJECTED_FILE
    if not path.is_file():
        return frozenset()
    found: set[tuple[str, str]] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            found.add((str(entry.get("corpus")), str(entry.get("conversation_id"))))
    return frozenset(found)


def write_drafts(drafts: Iterable[Draft], folder: Path) -> Counter[str]:
    """Write each draft atomically into ``folder``; a file a reviewer accepted is kept as it is.

    Returns counts: ``written``, ``unchanged`` (same bytes already there), ``kept_accepted``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    for draft in drafts:
        path = folder / draft.file_name
        if path.is_file():
            existing = path.read_text(encoding="utf-8")
            if existing == draft.text:
                counts["unchanged"] += 1
                continue
            if is_accepted(existing):
                counts["kept_accepted"] += 1
                continue
        write_atomic(path, draft.text)
        counts["written"] += 1
    return counts


_STATUS = re.compile(r"^status:\s*(\S+)\s*(?:#.*)?$", re.MULTILINE)


def status_of(text: str) -> str | None:
    """The top-level ``status:`` of a scenario file's text (``draft``, ``accepted``), or ``None``.

    Example:
        >>> status_of("id: X\\nstatus: accepted  # reviewed\\n"), status_of("id: X\\n")
        ('accepted', None)
    """
    match = _STATUS.search(text)
    return match.group(1).strip("'\"") if match else None


def is_accepted(text: str) -> bool:
    """Whether a scenario file's text says ``status: accepted``."""
    return status_of(text) == "accepted"
