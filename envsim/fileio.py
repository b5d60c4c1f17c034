"""Writing files: atomic replacement (a reader sees the old content or the new, never a part), and
write errors that name the file.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "entry.json"
    >>> write_atomic(path, '{"a": 1}\\n')
    >>> path.read_text(encoding="utf-8"), [p.name for p in path.parent.iterdir()]
    ('{"a": 1}\\n', ['entry.json'])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Make an :class:`OSError` raised inside name ``path`` when it names no file.

    A full disk or a failing device is met by ``write``, ``flush`` or ``fsync`` on an open file,
    whose errors carry no file name ("No space left on device"): under this, they say which file
    could not be written.

    Example:
        >>> try:
        ...     with naming("/runs/a/episodes/shard-0000.jsonl"):
        ...         raise OSError(28, "No space left on device")
        ... except OSError as error:
        ...     print(error)
        [Errno 28] No space left on device: '/runs/a/episodes/shard-0000.jsonl'
    """
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


def fsync_dir(path: Path) -> None:
    """Make the folder's entries (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        with naming(path):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text`` atomically: a temporary file beside it (a unique name, so
    concurrent writers in one process do not collide; removed if the write fails), then a rename.

    ``durable`` also fsyncs the file before the rename and the folder after it, so the new content
    survives a crash (a cache can skip that).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")  # created with the umask's mode
    try:
        with naming(path), tmp.open("x", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
