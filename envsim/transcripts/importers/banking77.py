"""BANKING77 (PolyAI, 2020): customer banking queries labelled with 77 intents.

Input: a CSV file with the published header ``text,category`` (``train.csv``, ``test.csv``),
plain or gzipped, or a folder of such files (read train first, then test). Each query becomes
a one-turn conversation: a ``user`` turn, labelled ``intent`` (the category) and ``split``
(when the file name says ``train``/``test``). Ids are ``<file stem>-<row>``, rows counted from 1
after the header.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "train.csv").write_text('text,category\\n"Where is my card, please?",card_arrival\\n')
    >>> [(c.id, c.turns[0].text, c.labels) for c in read(folder / "train.csv")]
    [('train-1', 'Where is my card, please?', {'intent': 'card_arrival', 'split': 'train'})]
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envsim.errors import TranscriptFormatError
from envsim.transcripts.importers.common import in_split_order, input_files, open_text, split_name
from envsim.transcripts.schema import Conversation, Turn

CORPUS = "banking77"
COLUMNS = ("text", "category")


def read(path: Path) -> Iterator[Conversation]:
    """Stream one single-turn conversation per query in ``path`` (a CSV file or a folder of them)."""
    for file in in_split_order(input_files(path, (".csv", ".csv.gz"))):
        yield from _read_file(file)


def _read_file(file: Path) -> Iterator[Conversation]:
    stem = file.name.split(".")[0]
    split = split_name(file)
    with open_text(file) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise TranscriptFormatError(file, None, "empty file (expected the header text,category)")
            if tuple(h.strip() for h in header) != COLUMNS:
                raise TranscriptFormatError(file, 1, f"expected the header text,category, got {','.join(header)}")
            for row_number, row in enumerate(reader, start=1):
                if len(row) != 2:
                    raise TranscriptFormatError(
                        file, reader.line_num, f"expected 2 columns (text, category), got {len(row)}"
                    )
                text, category = row
                if not category:
                    raise TranscriptFormatError(file, reader.line_num, "empty category")
                labels: dict[str, Any] = {"intent": category}
                if split:
                    labels["split"] = split
                yield Conversation(
                    corpus=CORPUS, id=f"{stem}-{row_number}", turns=[Turn(role="user", text=text)], labels=labels
                )
        except csv.Error as error:
            raise TranscriptFormatError(file, reader.line_num, f"invalid CSV: {error}") from None
