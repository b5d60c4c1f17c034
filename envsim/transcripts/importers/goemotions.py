"""GoEmotions (Google, 2020): Reddit comments labelled with 27 emotions plus neutral.

Input: a published TSV file (``train.tsv``, ``dev.tsv``, ``test.tsv``: text, comma-separated
label ids, comment id; no header), plain or gzipped, or a folder of them (read train, dev,
test). ``labels.txt`` beside the file gives the emotion names in id order. Each comment
becomes a one-turn conversation: a ``user`` turn whose conversation labels are ``emotions``
(names, in the file's order) and ``split``; the id is the comment id.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "labels.txt").write_text("anger\\nfear\\nneutral\\n")
    >>> _ = (folder / "dev.tsv").write_text("Why would you do that\\t0,1\\tabc1\\n")
    >>> [(c.id, c.turns[0].text, c.labels) for c in read(folder)]
    [('abc1', 'Why would you do that', {'emotions': ['anger', 'fear'], 'split': 'dev'})]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envsim.errors import TranscriptFormatError
from envsim.transcripts.importers.common import in_split_order, input_files, numbered_lines, open_text, split_name
from envsim.transcripts.schema import Conversation, Turn

CORPUS = "goemotions"
LABELS_FILE = "labels.txt"


def read(path: Path) -> Iterator[Conversation]:
    """Stream one single-turn conversation per comment in ``path`` (a TSV file or a folder of them)."""
    for file in in_split_order(input_files(path, (".tsv", ".tsv.gz"))):
        yield from _read_file(file, emotion_names(file.parent / LABELS_FILE))


def emotion_names(path: Path) -> list[str]:
    """The emotion names of ``labels.txt``, one a line, in label-id order."""
    if not path.is_file():
        raise TranscriptFormatError(path, None, "no such file (GoEmotions needs labels.txt beside the TSV files)")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise TranscriptFormatError(path, None, "no emotion names")
    return names


def _read_file(file: Path, names: list[str]) -> Iterator[Conversation]:
    split = split_name(file)
    with open_text(file) as handle:
        for number, line in numbered_lines(handle):
            fields = line.rstrip("\r\n").rsplit("\t", 2)
            if len(fields) != 3:
                raise TranscriptFormatError(file, number, f"expected 3 tab-separated fields, got {len(fields)}")
            text, ids, comment_id = fields
            indices = [int(i) if i.strip().isdigit() else -1 for i in ids.split(",")]
            if any(not 0 <= i < len(names) for i in indices):
                raise TranscriptFormatError(
                    file, number, f"bad label ids {ids!r} (expected comma-separated numbers 0 to {len(names) - 1})"
                )
            emotions = [names[i] for i in indices]
            labels: dict[str, Any] = {"emotions": emotions}
            if split:
                labels["split"] = split
            yield Conversation(corpus=CORPUS, id=comment_id, turns=[Turn(role="user", text=text)], labels=labels)
