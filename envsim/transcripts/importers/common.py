"""Helpers every importer shares: located errors, opening plain or gzipped files, listing inputs.

Example:
    >>> str(TranscriptFormatError(Path("chats.jsonl"), 3, "missing field 'text'"))
    "chats.jsonl:3: missing field 'text'"
    >>> str(TranscriptFormatError(Path("chats.jsonl"), None, "empty file"))
    'chats.jsonl: empty file'
    >>> str(TranscriptFormatError(Path("log.jsonl"), 2, "Field required", column=1, field="messages"))
    'log.jsonl:2:1: messages: Field required'
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from envsim.errors import TranscriptFormatError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (whatever its name ends with)."""
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_text(path: Path) -> IO[str]:
    """Open ``path`` for reading text (UTF-8), decompressing gzip transparently.

    Raises :class:`TranscriptFormatError` when the file does not exist or is a folder.
    """
    if not path.exists():
        raise TranscriptFormatError(path, None, "no such file")
    if path.is_dir():
        raise TranscriptFormatError(path, None, "is a folder, expected a file")
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def input_files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files to read for ``path``: itself, or the files of a folder whose names end with a suffix.

    Folder members are sorted by name. Raises :class:`TranscriptFormatError` when ``path`` is
    missing or a folder holds no matching file.
    """
    if not path.exists():
        raise TranscriptFormatError(path, None, "no such file or folder")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if not files:
        raise TranscriptFormatError(path, None, f"folder holds no {' or '.join(suffixes)} file")
    return files


SPLIT_ORDER = ("train", "dev", "validation", "val", "test")


def split_name(path: Path) -> str | None:
    """The split a file holds when its name says so (``train.csv`` → ``train``), else ``None``.

    Example:
        >>> split_name(Path("data/dev.tsv")), split_name(Path("export.csv"))
        ('dev', None)
    """
    stem = path.name.split(".")[0]
    return stem if stem in SPLIT_ORDER else None


def in_split_order(files: list[Path]) -> list[Path]:
    """``files`` with train, dev, validation, val, test first (in that order), then the rest by name.

    Example:
        >>> [p.name for p in in_split_order([Path("test.csv"), Path("a.csv"), Path("train.csv")])]
        ['train.csv', 'test.csv', 'a.csv']
    """

    def key(path: Path) -> tuple[int, str]:
        split = split_name(path)
        return (SPLIT_ORDER.index(split) if split else len(SPLIT_ORDER), path.name)

    return sorted(files, key=key)


def numbered_lines(handle: IO[str]) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for the non-blank lines of ``handle``, numbered from 1."""
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield number, line
