"""The episode plan of a batch run: scenarios × seeds × episodes, each with a deterministic id.

An episode's id is a hash of what determines its content: the scenario id, the scenario file's
content hash, the episode index, the base seed and the hash of the content-relevant configuration
(:class:`GenerateConfig`: agent, user and judge kinds and models, mistake rate...). Operational
settings (:class:`RunOptions`: concurrency, timeouts, retries, where the provider is) are not
part of it, so a run resumed with another concurrency plans the very same episodes, while an
edited scenario file or another agent model gives new ids.

Episode ``index`` of base seed ``s`` runs with environment seed ``s + index`` (as ``envsim run``
does); several base seeds must therefore not give overlapping seed ranges.

Example:
    >>> config = GenerateConfig(agent="scripted", error_rate=0.2)
    >>> source = ScenarioSource(id="Refund", path="refund.yaml", hash="ab" * 32)
    >>> plan = make_plan([source], config, episodes=3, seeds=[100])
    >>> [(e.index, e.seed) for e in plan]
    [(0, 100), (1, 101), (2, 102)]
    >>> plan == make_plan([source], config, episodes=3, seeds=[100])   # deterministic
    True
    >>> plan[0].episode_id == make_plan([source], config.model_copy(update={"error_rate": 0.1}),
    ...                                  episodes=1, seeds=[100])[0].episode_id
    False
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envsim.calls import CacheMode
from envsim.errors import EnvsimError, UnknownNameError

SCHEMA_VERSION = 1
"""Version of the run directory's formats (manifest, plan, episode records, Parquet columns)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form every hash in a run is taken over.

    Example:
        >>> canonical_json({"b": 1, "a": [1.5, None]})
        '{"a":[1.5,null],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def sha256_hex(text: str | bytes) -> str:
    """The SHA-256 of ``text`` (UTF-8 for a string), as hex."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


class GenerateConfig(_Strict):
    """Everything that determines the content of a run's episodes; its hash is part of every episode id."""

    agent: str = Field("scripted", description="The agent kind: scripted, llm or hf (see envsim.agents.registry).")
    agent_model: str | None = Field(None, description="The agent's model (litellm model string or HF name).")
    user: str = Field("scripted", description="The mock user kind: scripted, transcript or llm.")
    user_model: str | None = Field(None, description="The LLM user's model.")
    judge_rubric: str | None = Field(None, description="A judge rubric file (envsim.reward.judge); None: no judge.")
    judge_rubric_hash: str | None = Field(None, description="SHA-256 of the rubric file's bytes.")
    judge_model: str | None = Field(None, description="Overrides the rubric's model.")
    judge_weight: float = Field(0.0, ge=0.0, description="Weight of the judge's score in the total (0: reported only).")
    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="The scripted agent's mistake rate.")

    def config_hash(self) -> str:
        """SHA-256 over the content-relevant fields (the rubric by its content, not its path)."""
        return sha256_hex(canonical_json(self.model_dump(exclude={"judge_rubric"})))


TORCH_DEVICE = r"cpu|cuda(:[0-9]+)?"
"""A torch device envsim runs a local model on: ``cpu``, ``cuda`` or ``cuda:N`` (a regular expression)."""


def check_torch_device(option: str, device: str) -> str:
    """``device`` when it matches :data:`TORCH_DEVICE`; otherwise an error naming the ``option`` it came from.

    Example:
        >>> check_torch_device("--device", "cuda:1")
        'cuda:1'
    """
    if not re.fullmatch(TORCH_DEVICE, device):
        raise EnvsimError(f"{option} {device!r}: expected cpu, cuda or cuda:N")
    return device


STAGGER_WINDOW = 0.25
"""Seconds over which a run's slots start by default (:attr:`RunOptions.stagger`): about one model call.

Spread wider, the ramp-up idles part of the run and the answers arrive one at a time, each waking
the event loop on its own, which lowers throughput at hundreds of episodes in flight (the figures
are in ``CHANGELOG.md``, 2026-12-05)."""


class RunOptions(_Strict):
    """How a run is executed; none of it changes an episode's content (nor its id)."""

    concurrency: int = Field(64, ge=1, description="Episodes in flight at once.")
    timeout: float = Field(60.0, gt=0, description="Seconds allowed per model call.")
    max_retries: int = Field(5, ge=0, description="Retries per model call on rate limits, 5xx, timeouts.")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry (doubling, with full jitter).")
    max_backoff: float = Field(30.0, ge=0, description="Ceiling on one backoff delay (Retry-After may ask for more).")
    api_base: str | None = Field(None, description="OpenAI-compatible endpoint for every model participant.")
    step_delay: float = Field(0.0, ge=0, description="Seconds to wait before each agent action (tests, demos).")
    stagger: float | None = Field(
        None,
        ge=0,
        description="Seconds between the starts of consecutive episode slots when the run calls models over the"
        " network (slot k starts k × stagger after the run; 0: all at once; default: the slots' starts spread"
        f" evenly over {STAGGER_WINDOW:g} s, about one model call). Spreads the calls out instead of sending them"
        " in lockstep bursts, which a client processes one response after another (and providers rate-limit).",
    )

    @property
    def slot_stagger(self) -> float:
        """Seconds between consecutive slot starts: :attr:`stagger`, or the default spread over the concurrency.

        Example:
            >>> RunOptions(concurrency=250).slot_stagger, RunOptions(stagger=0.01).slot_stagger
            (0.001, 0.01)
        """
        return self.stagger if self.stagger is not None else STAGGER_WINDOW / self.concurrency

    device: str = Field(
        "cpu",
        pattern=f"^(?:{TORCH_DEVICE})$",
        description="Torch device of a local Hugging Face agent (agent hf): cpu, cuda or cuda:N.",
    )
    cache: CacheMode = "off"
    cache_dir: str | None = Field(None, description="The call cache folder (default: RUN_DIR/calls).")


class ScenarioSource(_Strict):
    """One scenario of a run: its id, the file it came from and the SHA-256 of the file's bytes."""

    id: str
    path: str
    hash: str


class EpisodeSpec(_Strict):
    """One planned episode."""

    episode_id: str
    scenario_id: str
    scenario_hash: str
    index: int = Field(ge=0, description="Episode number within its scenario and base seed.")
    base_seed: int
    seed: int = Field(description="The environment seed: base_seed + index.")
    config_hash: str


def episode_id(scenario_id: str, scenario_hash: str, index: int, base_seed: int, config_hash: str) -> str:
    """The deterministic id of an episode (32 hex characters).

    Example:
        >>> episode_id("Refund", "00" * 32, 0, 0, "11" * 32) == episode_id("Refund", "00" * 32, 0, 0, "11" * 32)
        True
        >>> len(episode_id("Refund", "00" * 32, 0, 0, "11" * 32))
        32
    """
    return sha256_hex(canonical_json([SCHEMA_VERSION, scenario_id, scenario_hash, index, base_seed, config_hash]))[:32]


def check_seeds(seeds: Sequence[int], episodes: int) -> None:
    """Raise :class:`EnvsimError` when two base seeds give overlapping ranges ``[s, s + episodes)``."""
    ordered = sorted(seeds)
    if len(set(ordered)) != len(ordered):
        raise EnvsimError(f"a seed is given twice: {ordered}")
    for low, high in itertools.pairwise(ordered):
        if high < low + episodes:
            raise EnvsimError(
                f"seeds {low} and {high} overlap with --episodes {episodes} (episode i of seed s runs with seed s + i);"
                f" space the seeds at least {episodes} apart"
            )


def make_plan(
    sources: Sequence[ScenarioSource], config: GenerateConfig, *, episodes: int, seeds: Sequence[int]
) -> list[EpisodeSpec]:
    """Every episode of a run, scenario by scenario, seed by seed, index by index."""
    if episodes < 1:
        raise EnvsimError(f"episodes must be at least 1, got {episodes}")
    if not seeds:
        raise EnvsimError("at least one seed is needed")
    check_seeds(seeds, episodes)
    config_hash = config.config_hash()
    return [
        EpisodeSpec(
            episode_id=episode_id(source.id, source.hash, index, base, config_hash),
            scenario_id=source.id,
            scenario_hash=source.hash,
            index=index,
            base_seed=base,
            seed=base + index,
            config_hash=config_hash,
        )
        for source in sources
        for base in seeds
        for index in range(episodes)
    ]


def _expand(pattern: str) -> list[Path]:
    from envsim.registration import SCENARIOS_ENV, discover, resolve_scenario_path, scenario_dirs, scenario_files
    from envsim.suite import reference_files

    if pattern == "all":
        found = [path for path, _ in discover().values()]
        if not found:
            folders = ", ".join(str(d) for d in scenario_dirs()) or "none"
            raise UnknownNameError(
                f"'all' found no scenarios: no registrable scenario file in the scenario folders ({folders});"
                f" add folders with {SCENARIOS_ENV}, or name scenario files, folders or globs"
            )
        return found
    if any(ch in pattern for ch in "*?["):
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise UnknownNameError(f"no scenario file matches {pattern!r}")
        return scenario_files([Path(m) for m in matches])
    suite_files = reference_files(pattern) if ":" in pattern else None  # DIR:split, a split of a suite
    if suite_files is not None:
        return suite_files
    path = Path(pattern)
    if path.is_dir():
        files = scenario_files([path])
        if not files:
            raise UnknownNameError(f"no scenario files (*.yaml, *.yml) in folder {pattern!r}")
        return files
    return [resolve_scenario_path(pattern)]


def resolve_sources(patterns: Sequence[str]) -> list[ScenarioSource]:
    """The scenarios named by files, folders, globs, ids, ``all`` or a suite's split (``DIR:split``, see
    :mod:`envsim.suite`), validated, in the order given.

    A file named twice counts once; two different files with the same scenario id are an error.
    """
    from envsim.loader import load_scenario

    if not patterns:
        raise EnvsimError("no scenarios given")
    seen: dict[Path, ScenarioSource] = {}
    by_id: dict[str, ScenarioSource] = {}
    for pattern in patterns:
        for path in _expand(pattern):
            resolved = path.resolve()
            if resolved in seen:
                continue
            data = resolved.read_bytes()
            scenario = load_scenario(resolved)
            source = ScenarioSource(id=scenario.id, path=str(resolved), hash=sha256_hex(data))
            if scenario.id in by_id:
                first = by_id[scenario.id].path
                raise EnvsimError(f"scenario id {scenario.id!r} is defined twice: {first} and {resolved}")
            seen[resolved] = by_id[scenario.id] = source
    return list(seen.values())


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return sha256_hex(Path(path).read_bytes())
