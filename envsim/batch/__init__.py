"""Batch trajectory generation: plan episodes, run them concurrently, store them without loss.

The pieces, each usable on its own:

- :mod:`envsim.batch.plan`: which episodes a run consists of, each with a deterministic id;
- :mod:`envsim.batch.store`: the run directory (manifest, fsync'd JSONL shards, Parquet table);
- :mod:`envsim.batch.runner`: the asyncio runner (bounded concurrency, retries, resume);
- :mod:`envsim.batch.cache`: content-addressed record/replay of model calls;
- :mod:`envsim.batch.progress`: the live progress bar.

``envsim generate`` (:mod:`envsim.commands.generate`) is the command line over them.
"""

from envsim.batch.plan import EpisodeSpec, GenerateConfig, RunOptions, ScenarioSource, make_plan
from envsim.batch.store import EpisodeRecord, RunStore

__all__ = ["EpisodeRecord", "EpisodeSpec", "GenerateConfig", "RunOptions", "RunStore", "ScenarioSource", "make_plan"]
