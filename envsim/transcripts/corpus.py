"""Where the transcript corpora are: one setting.

``ENVSIM_TRANSCRIPTS`` (or a command's ``--corpus`` option) names the folder; the default is
``../shared/transcripts`` relative to the current directory or to the repository, when it
exists.
"""

from __future__ import annotations

import os
from pathlib import Path

CORPUS_ENV = "ENVSIM_TRANSCRIPTS"


def corpus_dir(override: str | Path | None = None) -> Path | None:
    """The corpus folder in use, or ``None`` when there is none on this machine."""
    if override is not None:
        return Path(override)
    configured = os.environ.get(CORPUS_ENV)
    if configured:
        return Path(configured)
    repo = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / ".." / "shared" / "transcripts", repo.parent / "shared" / "transcripts"):
        if candidate.is_dir():
            return candidate.resolve()
    return None
