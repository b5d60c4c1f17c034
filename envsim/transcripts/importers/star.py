"""STAR (Rasa, 2020): Wizard-of-Oz task dialogues, in their published JSON.

Input: ``dialogues.jsonl(.gz)`` (one original dialogue object per line, as in the shared
corpus), a single dialogue ``.json`` file, or a folder holding either (the published
``dialogues/`` folder of ``<id>.json`` files included).

Each event becomes at most one turn, in order:

* ``User`` ``utter`` → a ``user`` turn; ``User`` ``complete`` (the end button) sets the
  ``user_completed`` conversation label instead.
* ``UserGuide`` → an ``instruction`` turn (the note shown to the role-playing user).
* ``Wizard`` ``utter`` / ``pick_suggestion`` → an ``agent`` turn: the messages the user saw.
  ``request_suggestions`` texts were drafts the user never saw: they are kept, in order, in
  the ``drafts`` label of the next agent turn (or the ``unsent_drafts`` conversation label).
  ``select_task`` / ``select_primary`` / ``select_secondary`` are interface clicks and are
  dropped.
* ``Wizard`` ``query`` plus the ``KnowledgeBase`` ``return_item`` answering it → one ``tool``
  turn: ``ToolEvent(name=APIName, arguments={"constraints": Constraints}, result=Item)``.

Every turn keeps the original ``Action`` in ``labels["action"]`` (and ``ActionLabel`` in
``labels["action_label"]``); ``UnixTime`` becomes ``timestamp``.

Conversation labels: ``persona_instructions`` (the UserGuide texts), ``annoyed`` (the wizard's
answer to "did the user become aggressive or annoyed"), ``changed_mind``, ``confused``,
``wizard_unsure``, ``assistant_calm`` (when asked), ``domains``, ``happy``, ``multi_task``,
``user_task``, ``wizard_task``, ``tasks``, ``completion_level``, ``introduces_conflicts``,
``batch_id``, ``user_worker``, ``wizard_worker`` and the raw ``user_questionnaire`` /
``wizard_questionnaire`` as ``{question: answer}``.

Example:
    >>> dialogue = {"DialogueID": 7, "Scenario": {"Domains": ["bank"], "Happy": True}, "Events": [
    ...     {"Agent": "User", "Action": "utter", "Text": "hi", "UnixTime": 10},
    ...     {"Agent": "Wizard", "Action": "request_suggestions", "Text": "hello?", "UnixTime": 12},
    ...     {"Agent": "Wizard", "Action": "pick_suggestion", "Text": "Hello!", "UnixTime": 13,
    ...      "ActionLabel": "hello"}],
    ...     "WizardQuestionnaire": [{"Question": "Did the user become aggressive or annoyed?", "Answer": False}]}
    >>> c = convert(dialogue)
    >>> [(t.role, t.text, t.timestamp) for t in c.turns]
    [('user', 'hi', 10.0), ('agent', 'Hello!', 13.0)]
    >>> c.turns[1].labels
    {'action': 'pick_suggestion', 'action_label': 'hello', 'drafts': ['hello?']}
    >>> c.labels["annoyed"], c.labels["domains"]
    (False, ['bank'])
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envsim.errors import TranscriptFormatError
from envsim.transcripts.importers.common import input_files, numbered_lines, open_text
from envsim.transcripts.schema import Conversation, ToolEvent, Turn

CORPUS = "star"
SENT_WIZARD_ACTIONS = frozenset({"utter", "pick_suggestion"})
UI_WIZARD_ACTIONS = frozenset({"select_task", "select_primary", "select_secondary"})

# Questionnaire questions, matched by a phrase (the wording varies between batches).
WIZARD_QUESTIONS = {
    "aggressive or annoyed": "annoyed",
    "change his/her mind": "changed_mind",
    "seem confused": "confused",
    "unsure about what to do": "wizard_unsure",
}
USER_QUESTIONS = {"stay calm and helpful": "assistant_calm"}

SCENARIO_LABELS = {
    "Domains": "domains",
    "Happy": "happy",
    "MultiTask": "multi_task",
    "UserTask": "user_task",
    "WizardTask": "wizard_task",
}
TOP_LABELS = {
    "CompletionLevel": "completion_level",
    "IntroducesConflicts": "introduces_conflicts",
    "BatchID": "batch_id",
    "AnonymizedUserWorkerID": "user_worker",
    "AnonymizedWizardWorkerID": "wizard_worker",
}
INSTRUCTION_COUNTER = re.compile(r"\s*\[instruction \d+ of \d+\]\s*$")


def read(path: Path) -> Iterator[Conversation]:
    """Stream the STAR dialogues of ``path`` (see the module docstring for what is accepted)."""
    for file in _files(path):
        if not file.name.endswith((".json", ".json.gz")):
            yield from _read_jsonl(file)
            continue
        with open_text(file) as handle:
            try:
                dialogue = json.load(handle)
            except json.JSONDecodeError as error:
                raise TranscriptFormatError(
                    file, error.lineno, f"invalid JSON: {error.msg}", column=error.colno
                ) from None
        yield _convert_located(dialogue, file, None)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        for name in ("dialogues.jsonl.gz", "dialogues.jsonl"):
            if (path / name).is_file():
                return [path / name]
        if (path / "dialogues").is_dir():
            path = path / "dialogues"
        files = input_files(path, (".json", ".json.gz"))
        return sorted(files, key=lambda p: (not p.name.split(".")[0].isdigit(), _numeric_stem(p), p.name))
    return input_files(path, ())


def _numeric_stem(path: Path) -> int:
    stem = path.name.split(".")[0]
    return int(stem) if stem.isdigit() else 0


def _read_jsonl(file: Path) -> Iterator[Conversation]:
    with open_text(file) as handle:
        for number, line in numbered_lines(handle):
            try:
                dialogue = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as error:
                raise TranscriptFormatError(file, number, f"invalid JSON: {error.msg}", column=error.colno) from None
            yield _convert_located(dialogue, file, number)


def _convert_located(dialogue: Any, file: Path, line: int | None) -> Conversation:
    try:
        return convert(dialogue)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        detail = f"missing field {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
        raise TranscriptFormatError(file, line, f"not a STAR dialogue: {detail}") from None


def convert(dialogue: dict[str, Any]) -> Conversation:
    """One published STAR dialogue object as a :class:`Conversation`.

    Raises ``KeyError``/``TypeError``/``ValueError`` on an object that is not a STAR dialogue;
    :func:`read` turns these into located :class:`TranscriptFormatError`.
    """
    if not isinstance(dialogue, dict):
        raise TypeError(f"expected a JSON object, got {type(dialogue).__name__}")
    turns: list[Turn] = []
    instructions: list[str] = []
    drafts: list[str] = []
    pending_query: Turn | None = None
    completed = False
    for event in dialogue["Events"]:
        agent = event["Agent"]
        action = event.get("Action", "")
        stamp = event.get("UnixTime")
        timestamp = float(stamp) if stamp is not None else None
        if agent == "User":
            if action == "complete":
                completed = True
                continue
            turns.append(Turn(role="user", text=event.get("Text", ""), timestamp=timestamp, labels={"action": action}))
        elif agent == "UserGuide":
            text = event.get("Text", "")
            instructions.append(text)
            turns.append(Turn(role="instruction", text=text, timestamp=timestamp, labels={"action": action}))
        elif agent == "Wizard":
            if action == "request_suggestions":
                drafts.append(event.get("Text", ""))
            elif action == "query":
                pending_query = Turn(
                    role="tool",
                    timestamp=timestamp,
                    tool=ToolEvent(name=event["APIName"], arguments={"constraints": event.get("Constraints", [])}),
                    labels={"action": action},
                )
                turns.append(pending_query)
            elif action in SENT_WIZARD_ACTIONS:
                labels: dict[str, Any] = {"action": action}
                if "ActionLabel" in event:
                    labels["action_label"] = event["ActionLabel"]
                if drafts:
                    labels["drafts"] = drafts
                    drafts = []
                turns.append(Turn(role="agent", text=event.get("Text", ""), timestamp=timestamp, labels=labels))
            elif action not in UI_WIZARD_ACTIONS:
                raise ValueError(f"unknown Wizard action {action!r}")
        elif agent == "KnowledgeBase":
            _attach_result(turns, pending_query, event, timestamp)
            pending_query = None
        else:
            raise ValueError(f"unknown event Agent {agent!r}")
    return Conversation(
        corpus=CORPUS,
        id=str(dialogue["DialogueID"]),
        turns=turns,
        labels=_labels(dialogue, instructions, drafts, completed),
    )


def _attach_result(turns: list[Turn], query: Turn | None, event: dict[str, Any], timestamp: float | None) -> None:
    name = event.get("APIName", "")
    if query is not None and query.tool is not None and query.tool.name == name:
        query.tool.result = event.get("Item")
        query.labels["total_items"] = event.get("TotalItems")
        return
    turns.append(
        Turn(
            role="tool",
            timestamp=timestamp,
            tool=ToolEvent(name=name, result=event.get("Item")),
            labels={"action": event.get("Action", ""), "total_items": event.get("TotalItems")},
        )
    )


def _questionnaire(answers: list[dict[str, Any]]) -> dict[str, Any]:
    return {str(a["Question"]): a.get("Answer") for a in answers}


def _labels(dialogue: dict[str, Any], instructions: list[str], drafts: list[str], completed: bool) -> dict[str, Any]:
    labels: dict[str, Any] = {"persona_instructions": instructions}
    wizard = _questionnaire(dialogue.get("WizardQuestionnaire", []))
    user = _questionnaire(dialogue.get("UserQuestionnaire", []))
    for answers, phrases in ((wizard, WIZARD_QUESTIONS), (user, USER_QUESTIONS)):
        for question, answer in answers.items():
            for phrase, label in phrases.items():
                if phrase in question:
                    labels[label] = answer
    scenario = dialogue.get("Scenario", {})
    for key, label in SCENARIO_LABELS.items():
        if key in scenario:
            labels[label] = scenario[key]
    if "WizardCapabilities" in scenario:
        labels["tasks"] = [c.get("Task") for c in scenario["WizardCapabilities"]]
    for key, label in TOP_LABELS.items():
        if key in dialogue:
            labels[label] = dialogue[key]
    labels["user_completed"] = completed
    if drafts:
        labels["unsent_drafts"] = drafts
    labels["user_questionnaire"] = user
    labels["wizard_questionnaire"] = wizard
    return labels


def instruction_text(text: str) -> str:
    """An instruction without STAR's trailing ``[instruction k of n]`` counter.

    Example:
        >>> instruction_text("Say hello. [instruction 1 of 3]")
        'Say hello.'
    """
    return INSTRUCTION_COUNTER.sub("", text)
