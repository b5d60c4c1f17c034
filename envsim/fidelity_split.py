"""The held-out split of ``envsim fidelity``: by scenario template, so no evaluated task is in the retrieval pool.

STAR's role-players were each given a *scenario*: a task text (``user_task``) and, for the
persona dialogues, a sequence of instructions (``persona_instructions``), both filled in from
STAR's templates (names, flight ids, times). Several dialogues were played from the same filled
scenario, so a split by dialogue id alone leaves the same scenario on both sides: a user that
retrieves from the pool then answers with turns written for the very task it is evaluated on.

:func:`split_by_template` keys each dialogue by its scenario (:func:`template_key`: the task
text and the instructions, lower-cased, whitespace collapsed). The *evaluation* side is every
dialogue held out by id (:func:`envsim.calibrate.is_heldout`, the calibration's split, so the
calibrated personas never saw one); its scenarios are held out whole: a dialogue that is not held
out by id but shares one of them goes to neither side (``excluded``). The *pool* is everything
else, the only STAR dialogues the mock user may retrieve from (:func:`write_pool` writes them for
the transcript user) and the coherence model is fitted on. :func:`check_split` refuses a split
with a scenario on both sides.

A coarser template (numbers, quoted values and capitalised names masked, :func:`coarse_template`)
is reported, not enforced: STAR's persona categories come from one to a few such templates each
(every annoyed and riddler dialogue is "Reserve flight with id #. Your name is X."), so holding
them out whole would leave a persona with no turns of its own to retrieve.

Example:
    >>> from envsim.transcripts.schema import Conversation
    >>> def c(i: str, task: str) -> Conversation:
    ...     return Conversation(corpus="star", id=i, turns=[], labels={"user_task": task})
    >>> split = split_by_template([c("1", "Book A"), c("2", "Book  a"), c("3", "Book B")], lambda i: i == "1")
    >>> [d.id for d in split.evaluation], [d.id for d in split.pool], split.excluded
    (['1'], ['3'], 1)
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from envsim.errors import EnvsimError, SplitLeakError
from envsim.transcripts.schema import Conversation

POOL_FILE = "dialogues.jsonl"
"""The pool's file name under ``<folder>/star/`` (:func:`write_pool`)."""


def template_key(conversation: Conversation) -> str:
    """The scenario a dialogue was played from: task text and persona instructions, lower-cased, spaces collapsed.

    Example:
        >>> from envsim.transcripts.schema import Conversation
        >>> template_key(Conversation(corpus="star", id="1", turns=[],
        ...     labels={"user_task": "Book  a table.", "persona_instructions": ["Be rude."]}))
        'book a table. || be rude.'
    """
    labels = conversation.labels
    parts = [str(labels.get("user_task") or ""), *map(str, labels.get("persona_instructions") or [])]
    return " || ".join(" ".join(p.lower().split()) for p in parts)


_NUMBER = re.compile(r"\d+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NAME = re.compile(r"(?<=[a-z,(] )[A-Z][a-z]+|\([A-Z][a-z]+\)")


def coarse_template(conversation: Conversation) -> str:
    """The scenario with its filled-in values masked: numbers as ``#``, quoted values and mid-sentence names as ``X``.

    Example:
        >>> from envsim.transcripts.schema import Conversation
        >>> coarse_template(Conversation(corpus="star", id="1", turns=[],
        ...     labels={"user_task": "Reserve flight with id 33. Your name is Mark."}))
        'reserve flight with id #. your name is x.'
    """
    labels = conversation.labels
    parts = [str(labels.get("user_task") or ""), *map(str, labels.get("persona_instructions") or [])]
    masked = [_NAME.sub("X", _QUOTED.sub("X", _NUMBER.sub("#", p))) for p in parts]
    return " || ".join(" ".join(p.lower().split()) for p in masked)


@dataclass(frozen=True)
class Split:
    """Evaluation and pool dialogues (see the module docstring)."""

    evaluation: list[Conversation]
    pool: list[Conversation]
    excluded: int

    def summary(self) -> dict[str, int]:
        """Counts for the report: dialogues and templates per side, the coarse templates on both sides, and the
        evaluation dialogues whose task text alone (their instructions differ) is also in the pool."""
        coarse_eval = {coarse_template(c) for c in self.evaluation}
        coarse_pool = {coarse_template(c) for c in self.pool}
        pool_tasks = {" ".join(str(c.labels.get("user_task") or "").lower().split()) for c in self.pool}
        return {
            "dialogues_evaluation": len(self.evaluation),
            "dialogues_pool": len(self.pool),
            "dialogues_excluded": self.excluded,
            "templates_evaluation": len({template_key(c) for c in self.evaluation}),
            "templates_pool": len({template_key(c) for c in self.pool}),
            "templates_shared": 0,
            "coarse_templates_evaluation": len(coarse_eval),
            "coarse_templates_shared": len(coarse_eval & coarse_pool),
            "task_text_only_shared_dialogues": sum(
                " ".join(str(c.labels.get("user_task") or "").lower().split()) in pool_tasks for c in self.evaluation
            ),
        }


def check_split(evaluation: Iterable[Conversation], pool: Iterable[Conversation]) -> None:
    """Refuse a split with a scenario template on both sides.

    Raises:
        SplitLeakError: Naming how many templates are shared and one dialogue of each side.
    """
    held = {template_key(c): c.id for c in evaluation}
    shared = [(held[key], c.id) for c in pool if (key := template_key(c)) in held]
    if shared:
        first, second = shared[0]
        raise SplitLeakError(
            f"fidelity split leaks: {len({a for a, _ in shared})} evaluated dialogue(s) share their scenario "
            f"template with the pool (e.g. dialogue {first} and pool dialogue {second})"
        )


def split_by_template(conversations: Iterable[Conversation], heldout: Callable[[str], bool]) -> Split:
    """Evaluation: the dialogues ``heldout`` accepts by id; pool: those whose template no evaluated dialogue has."""
    everything = list(conversations)
    evaluation = [c for c in everything if heldout(c.id)]
    held = {template_key(c) for c in evaluation}
    rest = [c for c in everything if not heldout(c.id)]
    pool = [c for c in rest if template_key(c) not in held]
    split = Split(evaluation=evaluation, pool=pool, excluded=len(rest) - len(pool))
    check_split(split.evaluation, split.pool)
    return split


def write_pool(source: Path, pool_ids: Sequence[str] | set[str], folder: Path) -> Path:
    """Copy the raw lines of the pool dialogues of ``source`` (STAR ``dialogues.jsonl(.gz)``) to ``folder/star/``.

    The transcript user pointed at ``folder`` retrieves from the pool only. Returns ``folder``.

    Raises:
        EnvsimError: When ``source`` is not a STAR JSONL file.
    """
    if not source.is_file() or not source.name.endswith((".jsonl", ".jsonl.gz")):
        raise EnvsimError(f"{source}: envsim fidelity needs STAR's dialogues.jsonl(.gz)")
    keep = set(pool_ids)
    opener = gzip.open if source.name.endswith(".gz") else open
    with opener(source, "rb") as handle:
        raw: bytes = handle.read()
    target = folder / "star"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / POOL_FILE, "wb") as out:
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                dialogue_id = str(json.loads(line)["DialogueID"])
            except (ValueError, KeyError, TypeError) as error:
                raise EnvsimError(f"{source}:{number}: not a STAR dialogue ({error})") from error
            if dialogue_id in keep:
                out.write(line + b"\n")
    return folder
