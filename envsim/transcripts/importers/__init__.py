"""Importers: published transcript formats → the canonical :class:`~envsim.transcripts.schema.Conversation`.

One module per format; :data:`IMPORTERS` names them all, :func:`read` streams a file (or a
folder) in any of them, and :func:`write_jsonl` / :func:`read_jsonl` write and read the
canonical JSONL (one conversation per line, plain or gzipped; the round trip is lossless).

Every reader is a generator, and a malformed input raises :class:`TranscriptFormatError`
naming the file and line, never a bare traceback.

Example:
    >>> import tempfile
    >>> from envsim.transcripts.schema import Conversation, Turn
    >>> path = Path(tempfile.mkdtemp()) / "chats.jsonl"
    >>> chats = [Conversation(corpus="plain", id="1", turns=[Turn(role="user", text="Hi", timestamp=3.5)])]
    >>> write_jsonl(chats, path)
    1
    >>> list(read("canonical", path)) == chats
    True
    >>> read("stra", path)
    Traceback (most recent call last):
    ...
    envsim.errors.UnknownNameError: unknown transcript format 'stra' (did you mean 'star'?); known formats: \
abcd, banking77, canonical, goemotions, openai, plain, star
"""

from __future__ import annotations

import gzip
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from envsim.errors import TranscriptFormatError, UnknownNameError
from envsim.suggest import did_you_mean
from envsim.transcripts.importers import abcd, banking77, goemotions, openai_chat, plain, star
from envsim.transcripts.importers.common import input_files, numbered_lines, open_text
from envsim.transcripts.schema import Conversation

__all__ = ["IMPORTERS", "Importer", "TranscriptFormatError", "importer", "read", "read_jsonl", "write_jsonl"]


@dataclass(frozen=True)
class Importer:
    """A named transcript format and the generator that reads it; calling it reads a path."""

    name: str
    reader: Callable[[Path], Iterator[Conversation]]
    description: str

    def __call__(self, path: str | Path) -> Iterator[Conversation]:
        """Stream the conversations of ``path``."""
        return self.reader(Path(path))


def read_jsonl(path: str | Path) -> Iterator[Conversation]:
    """Stream the conversations of a canonical JSONL file (plain or gzipped) or a folder of them.

    A line that is not a valid :class:`Conversation` raises :class:`TranscriptFormatError`
    naming the file, the line and the first invalid fields.
    """
    for file in input_files(Path(path), (".jsonl", ".jsonl.gz")):
        with open_text(file) as handle:
            for number, line in numbered_lines(handle):
                try:
                    yield Conversation.model_validate_json(line)
                except ValidationError as error:
                    raise TranscriptFormatError(file, number, _describe(error)) from None


def _describe(error: ValidationError, limit: int = 3) -> str:
    problems = []
    for item in error.errors()[:limit]:
        where = ".".join(str(part) for part in item["loc"])
        problems.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
    more = f" (and {error.error_count() - limit} more)" if error.error_count() > limit else ""
    return "not a canonical conversation: " + "; ".join(problems) + more


def write_jsonl(conversations: Iterable[Conversation], path: str | Path) -> int:
    """Write ``conversations`` to ``path`` as canonical JSONL, one per line; return how many.

    A name ending in ``.gz`` is gzipped. The file is written beside its final name and moved
    into place at the end, so an error while reading the input leaves no partial file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(descriptor)
    count = 0
    try:
        with _open_for_writing(Path(temporary), gzipped=target.name.endswith(".gz")) as handle:
            for conversation in conversations:
                handle.write(conversation.model_dump_json())
                handle.write("\n")
                count += 1
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count


def _open_for_writing(path: Path, gzipped: bool) -> IO[str]:
    return gzip.open(path, "wt", encoding="utf-8") if gzipped else path.open("w", encoding="utf-8")


IMPORTERS: dict[str, Importer] = {
    "star": Importer("star", star.read, "STAR Wizard-of-Oz dialogues (dialogues.jsonl.gz or a folder of .json)"),
    "abcd": Importer("abcd", abcd.read, "ABCD conversations (the sample list or abcd_v1.1.json.gz by split)"),
    "banking77": Importer("banking77", banking77.read, "BANKING77 queries (text,category CSV): one-turn conversations"),
    "goemotions": Importer("goemotions", goemotions.read, "GoEmotions comments (TSV + labels.txt): one-turn"),
    "plain": Importer("plain", plain.read, "your own export: JSONL or CSV of conversation_id, role, text, timestamp"),
    "openai": Importer("openai", openai_chat.read, "OpenAI-format chat logs: JSONL, messages with tool_calls"),
    "canonical": Importer("canonical", read_jsonl, "envsim's canonical JSONL (one Conversation per line)"),
}
"""Every transcript format by name."""


def importer(name: str) -> Importer:
    """The importer called ``name``; :class:`~envsim.errors.UnknownNameError` with a suggestion otherwise."""
    try:
        return IMPORTERS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown transcript format {name!r}{did_you_mean(name, IMPORTERS)}; "
            f"known formats: {', '.join(sorted(IMPORTERS))}"
        ) from None


def read(format: str, path: str | Path) -> Iterator[Conversation]:
    """Stream the conversations of ``path`` in ``format`` (a key of :data:`IMPORTERS`).

    The format is checked at once; the file is read as the result is iterated.
    """
    return importer(format)(path)
