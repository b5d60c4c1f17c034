"""Shared fixtures of the training tests: a small tokenizer trained on scenario text (no download)."""

from __future__ import annotations

from typing import Any

import pytest

SCENARIOS = ("MedicalSupplyPanicCaller", "RetailCancelPendingOrder", "BankingLostCardReplacement")
"""One scenario per domain."""


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    """A byte-level BPE tokenizer with TRL's qwen2_5 template, trained on three scenarios' text."""
    pytest.importorskip("transformers", reason="the train extra is not installed")
    pytest.importorskip("trl", reason="the train extra is not installed")
    from envsim.train.tiny import build_tokenizer, scenario_corpus

    return build_tokenizer(scenario_corpus(SCENARIOS, seeds=[0]), vocab_size=2048)
