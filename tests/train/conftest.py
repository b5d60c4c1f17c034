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


def run_flywheel_cli(args: list[str]) -> tuple[dict[str, Any], str]:
    """Run ``envsim train flywheel ARGS --json`` in-process (restoring torch's thread count, which the
    flywheel lowers); assert it exits 0 and return the JSON report. Tests that call it carry the
    ``is_gradient_checkpointing`` warning filter. Returns the report and the whole output."""
    pytest.importorskip("trl", reason="the train extra is not installed")
    import json

    import torch
    from typer.testing import CliRunner

    from envsim.cli import app

    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(app, ["train", "flywheel", *args, "--json"])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return report, result.output
