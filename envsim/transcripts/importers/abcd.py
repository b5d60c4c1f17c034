"""ABCD (ASAPP, 2021): Action-Based Conversations Dataset, in its published JSON.

Input: the sample list (``abcd_sample.json``: a JSON list of conversation objects), the full
public corpus (``data/abcd_v1.1.json.gz``: a dict ``{"train": [...], "dev": [...], "test": [...]}``
of the same objects), plain or gzipped whatever the name, or a folder holding one of
``abcd_v1.1.json.gz``, ``abcd_v1.1.json``, ``abcd_sample.json``. JSON has no streaming parser
in the standard library, so a file is parsed whole; conversations are then yielded one by one.

Turns come from ``original`` (``[speaker, text]`` pairs): ``customer`` → ``user``, ``agent`` →
``agent``, ``action`` → a ``tool`` turn whose text is the action's system message. The
button pressed and its values come from the aligned ``delexed`` entry (``targets[2]`` and
``targets[3]``) when present: ``ToolEvent(name="notify-team", arguments={"values": ["manager"]})``.

Conversation labels: ``flow``, ``subflow``, ``intent`` (= ``subflow``, ABCD's 55 intents),
``escalated`` (a ``notify-team`` action, or an action message saying a manager or team was
notified), ``escalation_teams``, ``split`` (full corpus only) and ``scenario`` (the rest of
the conversation's scenario: personal, order, product).

Example:
    >>> obj = {"convo_id": 5, "scenario": {"flow": "order_issue", "subflow": "manage_cancel"},
    ...        "original": [["customer", "cancel it"], ["action", "The manager has been notified."]]}
    >>> c = convert(obj)
    >>> [(t.role, t.text) for t in c.turns]
    [('user', 'cancel it'), ('tool', 'The manager has been notified.')]
    >>> c.labels["escalated"], c.labels["intent"]
    (True, 'manage_cancel')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envsim.errors import TranscriptFormatError
from envsim.transcripts.importers.common import open_text
from envsim.transcripts.schema import Conversation, Role, ToolEvent, Turn

CORPUS = "abcd"
SPEAKERS: dict[str, Role] = {"customer": "user", "agent": "agent", "action": "tool"}
SPLITS = ("train", "dev", "test")
FOLDER_FILES = ("abcd_v1.1.json.gz", "abcd_v1.1.json", "abcd_sample.json")
ESCALATION_ACTIONS = frozenset({"notify-team"})
ESCALATION_TEXT = re.compile(r"\b(manager|team)\b.*\bnotified\b", re.IGNORECASE)


def read(path: Path) -> Iterator[Conversation]:
    """Stream the ABCD conversations of ``path`` (see the module docstring for what is accepted)."""
    file = _file(path)
    with open_text(file) as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise TranscriptFormatError(file, error.lineno, f"invalid JSON: {error.msg}", column=error.colno) from None
        except (UnicodeDecodeError, OSError) as error:
            raise TranscriptFormatError(file, None, f"unreadable: {error}") from None
    if isinstance(data, list):
        groups: list[tuple[str | None, Any]] = [(None, data)]
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        known = [s for s in SPLITS if s in data]
        groups = [(s, data[s]) for s in [*known, *(k for k in data if k not in SPLITS)]]
    else:
        raise TranscriptFormatError(
            file, None, "expected a list of ABCD conversations or a dict of them by split (train, dev, test)"
        )
    for split, conversations in groups:
        for index, obj in enumerate(conversations):
            try:
                yield convert(obj, split)
            except (KeyError, TypeError, ValueError, IndexError) as error:
                where = f"{split}[{index}]" if split else f"[{index}]"
                detail = f"missing field {error.args[0]!r}" if isinstance(error, KeyError) else str(error)
                raise TranscriptFormatError(file, None, f"conversation {where}: {detail}") from None


def _file(path: Path) -> Path:
    if not path.is_dir():
        return path
    for name in FOLDER_FILES:
        if (path / name).is_file():
            return path / name
    raise TranscriptFormatError(path, None, f"folder holds none of {', '.join(FOLDER_FILES)}")


def convert(obj: dict[str, Any], split: str | None = None) -> Conversation:
    """One published ABCD conversation object as a :class:`Conversation`.

    Raises ``KeyError``/``TypeError``/``ValueError`` on an object that is not an ABCD
    conversation; :func:`read` turns these into located :class:`TranscriptFormatError`.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
    original = obj["original"]
    delexed = obj.get("delexed")
    aligned = delexed if isinstance(delexed, list) and len(delexed) == len(original) else None
    turns: list[Turn] = []
    escalated = False
    teams: list[str] = []
    for index, pair in enumerate(original):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ValueError(f"turn {index}: expected [speaker, text], got {json.dumps(pair)[:80]}")
        speaker, text = pair
        role = SPEAKERS.get(speaker)
        if role is None:
            raise ValueError(f"turn {index}: unknown speaker {speaker!r} (expected agent, customer or action)")
        if role != "tool":
            turns.append(Turn(role=role, text=text))
            continue
        name, values = _action(aligned[index] if aligned is not None else None)
        if name in ESCALATION_ACTIONS or ESCALATION_TEXT.search(text):
            escalated = True
            if name in ESCALATION_ACTIONS:
                teams.extend(str(v) for v in values)
        tool = ToolEvent(name=name, arguments={"values": values})
        turns.append(Turn(role="tool", text=text, tool=tool, labels={"action": name}))
    scenario = dict(obj.get("scenario") or {})
    flow, subflow = scenario.pop("flow", None), scenario.pop("subflow", None)
    labels: dict[str, Any] = {"flow": flow, "subflow": subflow, "intent": subflow, "escalated": escalated}
    if teams:
        labels["escalation_teams"] = teams
    if split is not None:
        labels["split"] = split
    labels["scenario"] = scenario
    return Conversation(corpus=CORPUS, id=str(obj["convo_id"]), turns=turns, labels=labels)


def _action(entry: Any) -> tuple[str, list[Any]]:
    """The button name and values of a delexed action entry, or ``("action", [])`` when unknown."""
    if isinstance(entry, dict) and entry.get("speaker") == "action":
        targets = entry.get("targets")
        if isinstance(targets, list) and len(targets) > 3 and isinstance(targets[2], str):
            values = targets[3] if isinstance(targets[3], list) else []
            return targets[2], list(values)
    return "action", []
