"""Reviewing mined drafts (``envsim scenarios review``): verify, accept, reject, find the source conversation.

- A draft is a ``*.yaml`` file directly in the drafts folder whose top-level ``status`` is ``draft``.
- :func:`verify` loads it as ``envsim validate`` does (schema and lint, the replay of its expected
  actions on its world included): the problems, or none.
- :func:`accept` sets ``status: accepted`` in place (only that line changes, so a reviewer's edits
  and comments stay); only a draft that verifies may be accepted.
- :func:`reject` deletes the draft and records its source in ``rejected.jsonl`` of the folder, so
  that mining the same log again does not bring it back.
- :func:`source_conversations` reads each draft's conversation back from its log (``source.file``
  in ``source.format``; a path relative to the transcript corpus folder when it was mined from it).

Every file is replaced atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from envsim.errors import EnvsimError, ScenarioError
from envsim.factory.mining import REJECTED_FILE, status_of
from envsim.fileio import write_atomic
from envsim.scenario import Scenario
from envsim.transcripts.schema import Conversation

_STATUS_LINE = re.compile(r"^status:[^\n]*$", re.MULTILINE)


def draft_files(folder: Path) -> list[Path]:
    """The drafts in ``folder`` (not its sub-folders), sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
    return [p for p in files if status_of(p.read_text(encoding="utf-8")) == "draft"]


def verify(path: Path) -> list[str]:
    """Every problem that keeps the draft at ``path`` from being a valid scenario (empty when it verifies)."""
    from envsim.loader import load_scenario

    try:
        load_scenario(path)
    except ScenarioError as error:
        return [str(problem) for problem in error.problems]
    return []


def read_draft(path: Path) -> Scenario | None:
    """The draft as a scenario (schema only, no lint), or ``None`` when it does not even parse."""
    from envsim.loader import load_scenario

    try:
        return load_scenario(path, lint=False)
    except ScenarioError:
        return None


def accept(path: Path) -> None:
    """Mark the draft at ``path`` accepted: its ``status:`` line becomes ``status: accepted``."""
    text = path.read_text(encoding="utf-8")
    if _STATUS_LINE.search(text):
        text = _STATUS_LINE.sub("status: accepted", text, count=1)
    else:
        text = text.rstrip("\n") + "\nstatus: accepted\n"
    write_atomic(path, text)


def reject(path: Path, scenario: Scenario | None) -> None:
    """Delete the draft at ``path``, recording its source in the folder's ``rejected.jsonl`` first."""
    record = {"id": path.stem, "corpus": None, "conversation_id": None, "file": None}
    if scenario is not None and scenario.source is not None:
        record.update(
            id=scenario.id,
            corpus=scenario.source.corpus,
            conversation_id=scenario.source.conversation_id,
            file=scenario.source.file,
        )
    ledger = path.parent / REJECTED_FILE
    before = ledger.read_text(encoding="utf-8") if ledger.is_file() else ""
    write_atomic(ledger, before + json.dumps(record, sort_keys=True) + "\n")
    path.unlink()


def source_path(scenario: Scenario, corpus: Path | None) -> Path | None:
    """Where the draft's log is: ``source.file`` as given when it exists, else under the corpus folder."""
    source = scenario.source
    if source is None or not source.file:
        return None
    given = Path(source.file)
    if given.exists():
        return given
    if corpus is not None and (corpus / given).exists():
        return corpus / given
    return None


def source_conversations(drafts: Iterable[Scenario], corpus: Path | None) -> dict[str, Conversation | str]:
    """Per draft id, its source conversation, or why it cannot be shown. Each log is read once."""
    from envsim.transcripts.importers import read

    wanted: dict[tuple[Path, str], dict[str, str]] = {}  # (log, format) -> conversation id -> draft id
    found: dict[str, Conversation | str] = {}
    for scenario in drafts:
        source = scenario.source
        path = source_path(scenario, corpus)
        if source is None or path is None or not source.format or source.conversation_id is None:
            found[scenario.id] = "the source log is not available here (source.file, source.format)"
            continue
        wanted.setdefault((path, source.format), {})[source.conversation_id] = scenario.id
        found[scenario.id] = f"conversation {source.conversation_id} is not in {path}"
    for (path, format), ids in wanted.items():
        remaining = dict(ids)
        try:
            for conversation in read(format, path):
                draft_id = remaining.pop(conversation.id, None)
                if draft_id is not None:
                    found[draft_id] = conversation
                if not remaining:
                    break
        except (EnvsimError, OSError) as error:
            for draft_id in remaining.values():
                found[draft_id] = f"cannot read {path}: {error}"
    return found
