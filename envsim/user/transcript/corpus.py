"""Reading STAR for the transcript user: its dialogues streamed from the transcripts folder, selected cheaply.

:func:`read_star` reads the shared ``dialogues.jsonl(.gz)`` line by line and decides on the raw
line (the dialogue id, a :data:`PERSONA_HINT` word) before parsing any JSON; other layouts go
through the STAR importer (:mod:`envsim.transcripts.importers.star`). No corpus text is in this
repository: it is read at run time from :func:`envsim.transcripts.corpus.corpus_dir`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from envsim.transcripts.schema import Conversation

CORPUS = "star"
"""The corpus the transcript user retrieves from (its folder under the transcripts folder)."""


# -- reading STAR ----------------------------------------------------------------------------

_DIALOGUE_ID = re.compile(rb'"DialogueID"\s*:\s*"?([^",}\s]+)')
PERSONA_HINT = re.compile(
    r"grumpy|riddle|explosion|forget what|memory|orientation|wrong bus|contact the bank|typos"
    r"|cannot remember|be there soon|under attack|life support",
    re.IGNORECASE,
)
"""Words of every persona instruction (a superset of :data:`envsim.calibrate.GROUPS`' rules): dialogues
whose raw text has none are in the calm pool, which is sampled."""
_HINT_WORDS = tuple(word.encode() for word in PERSONA_HINT.pattern.split("|"))


def star_file(path: str | Path) -> Path:
    """The STAR location under ``path``: a transcripts folder's ``star/``, else ``path`` itself."""
    path = Path(path)
    return path / CORPUS if (path / CORPUS).exists() else path


def read_star(
    path: str | Path, select: Callable[[str], bool] | None = None, calm_share: float = 1.0
) -> Iterator[Conversation]:
    """Stream the STAR dialogues of ``path`` whose id ``select`` accepts (default: all).

    With ``calm_share`` below 1, a dialogue whose raw text has no :data:`PERSONA_HINT` word
    (the calm pool) is kept only when a hash of its id falls in that share. For the shared
    ``dialogues.jsonl(.gz)`` both checks run on the raw line, before any JSON parsing (which
    makes a selective read fast); other layouts are read whole with the importer
    (:func:`envsim.transcripts.importers.read`) and filtered after.
    """
    from envsim.transcripts.importers import read
    from envsim.transcripts.importers.star import convert

    def wanted(dialogue_id: str, hinted: Callable[[], bool]) -> bool:
        if select is not None and not select(dialogue_id):
            return False
        return calm_share >= 1.0 or _sampled(dialogue_id, calm_share) or hinted()

    location = star_file(path)
    jsonl = next((location / n for n in ("dialogues.jsonl.gz", "dialogues.jsonl") if (location / n).is_file()), None)
    if jsonl is None and location.is_file() and location.name.endswith((".jsonl", ".jsonl.gz")):
        jsonl = location
    if jsonl is None:
        for conversation in read(CORPUS, location):
            labels = conversation.labels
            hint = " ".join([*map(str, labels.get("persona_instructions", [])), str(labels.get("user_task"))])
            if wanted(conversation.id, _constant(PERSONA_HINT.search(hint) is not None)):
                yield conversation
        return
    opener = gzip.open if jsonl.name.endswith(".gz") else open
    with opener(jsonl, "rb") as handle:
        raw: bytes = handle.read()
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        match = _DIALOGUE_ID.search(line)
        hinted = _hint_check(line)
        if match is not None and not wanted(match.group(1).decode(), hinted):
            continue
        conversation = convert(json.loads(line))
        if match is not None or wanted(conversation.id, hinted):
            yield conversation


def _constant(value: bool) -> Callable[[], bool]:
    return lambda: value


def _hint_check(line: bytes) -> Callable[[], bool]:
    """A deferred check for a :data:`PERSONA_HINT` word in a raw line (run only when needed)."""
    return lambda: any(word in line.lower() for word in _HINT_WORDS)


def _sampled(dialogue_id: str, share: float) -> bool:
    digest = hashlib.sha256(f"{CORPUS}/pool/{dialogue_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
