"""Finding scenario files and registering them with Gymnasium.

Scenario files live in the folders named by ``ENVSIM_SCENARIOS`` (``os.pathsep``-separated),
by default the repository's ``scenarios/``. ``import envsim`` registers each as
``envsim/<Id>-v0`` with ``max_episode_steps=max_turns``; loading and validation happen
lazily, on ``gym.make``.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import yaml

from envsim.errors import UnknownNameError
from envsim.scenario import Scenario
from envsim.suggest import did_you_mean

SCENARIOS_ENV = "ENVSIM_SCENARIOS"
NAMESPACE = "envsim"
_log = logging.getLogger(__name__)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def scenario_dirs() -> list[Path]:
    """The scenario folders in use."""
    configured = os.environ.get(SCENARIOS_ENV)
    if configured:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    return [Path(__file__).resolve().parent.parent / "scenarios"]


def scenario_files(paths: list[Path] | None = None) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` file under ``paths`` (files are kept as given), sorted."""
    found: list[Path] = []
    for path in paths if paths is not None else scenario_dirs():
        if path.is_dir():
            found.extend(p for p in path.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
        elif path.exists():
            found.append(path)
    return sorted(found)


@lru_cache(maxsize=1)
def discover() -> dict[str, tuple[Path, int]]:
    """Scenario id → (file, max_turns) for every readable scenario file (read without validation)."""
    default_turns = Scenario.model_fields["max_turns"].default
    found: dict[str, tuple[Path, int]] = {}
    for path in scenario_files():
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            _log.warning("skipping unreadable scenario file %s: %s", path, err)
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            turns = data.get("max_turns", default_turns)
            found[data["id"]] = (path, turns if isinstance(turns, int) and turns > 0 else default_turns)
    return found


def register_scenarios() -> list[str]:
    """Register every discovered scenario with Gymnasium; returns the ids registered."""
    ids = []
    for scenario_id, (path, max_turns) in discover().items():
        gym_id = f"{NAMESPACE}/{scenario_id}-v0"
        if gym_id not in gym.registry:
            gym.register(
                id=gym_id,
                entry_point="envsim.env:ScenarioEnv",
                kwargs={"scenario": str(path)},
                max_episode_steps=max_turns,
            )
        ids.append(gym_id)
    return ids


def resolve_scenario_path(name: str | Path) -> Path:
    """A scenario file from a path, an id (``MedicalSupplyPanicCaller``) or a gym id."""
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.exists():
            raise UnknownNameError(f"no scenario file {str(path)!r}")
        return path
    key = str(name).removeprefix(f"{NAMESPACE}/").removesuffix("-v0")
    known = discover()
    if key not in known:
        raise UnknownNameError(f"unknown scenario {key!r}{did_you_mean(key, known)}")
    return known[key][0]


def load_registered(name: str | Path) -> Scenario:
    """Load (validate and lint) a scenario by id or path."""
    from envsim.loader import load_scenario

    return load_scenario(resolve_scenario_path(name))
