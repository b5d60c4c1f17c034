"""Fixtures of the transcript tests: the shared corpus folder, which must exist (CI has it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The transcript corpus folder; fails (never skips) when it is missing."""
    folder = corpus_dir()
    assert folder is not None and folder.is_dir(), (
        f"transcript corpus not found: set {CORPUS_ENV} or check out ../shared/transcripts beside the repository"
    )
    return folder
