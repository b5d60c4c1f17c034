"""Scenario suites: a folder of scenario files, split into train/dev/test, as one environment.

A **suite** is the folder that ``envsim scenarios generate --out DIR`` writes::

    DIR/suite.json                       # the generator's manifest (seed, families, splits, drops by reason)
    DIR/<split>/<toolkit>/<Id>.yaml      # split: train, dev, test, holdout (any folder name)

Each folder under ``DIR`` that holds scenario files is a **split**; ``all`` (reserved) is every
scenario file under ``DIR``. A plain folder of scenario files without ``suite.json`` (the shipped
``scenarios/``, a hand-written set) is a suite too, with the one split ``all``: its subfolders are
not splits, since nothing says they are.

Listing a suite is cheap: only each file's ``id:`` line is read (as registration does, see
:func:`envsim.registration.read_header`); a scenario is validated in full when it is first used.

- ``gym.make("envsim/Suite-v0", suite=DIR, split="train")`` (:class:`SuiteEnv`): an environment
  that plays a scenario of the split per episode, drawn by ``reset(seed=...)``;
- a *suite reference* ``DIR`` or ``DIR:split`` is accepted wherever envsim takes scenario ids:
  ``envsim generate``, and the GRPO prompt dataset (:func:`envsim.train.prompts.prompt_rows`,
  through :func:`resolve_ids`);
- ``envsim scenarios stats DIR`` counts a suite's scenarios (:mod:`envsim.suite_stats`).

Example:
    >>> from envsim.registration import discover
    >>> shipped = discover()["MedicalSupplyPanicCaller"][0].parents[1]   # envsim's scenarios/ folder
    >>> suite = Suite.open(shipped)
    >>> suite.splits(), suite.generated
    (['all'], False)
    >>> "MedicalSupplyPanicCaller" in suite.scenarios()
    True
"""

from __future__ import annotations

import json
import re
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec
from gymnasium.wrappers import TimeLimit

from envsim.errors import Problem, ScenarioError, SuiteError, UnknownNameError
from envsim.registration import ENTRY_POINT, NAMESPACE, scan, scenario_files
from envsim.spaces import ChatText
from envsim.suggest import did_you_mean

if TYPE_CHECKING:
    from envsim.env import ScenarioEnv
    from envsim.reward import RewardBreakdown
    from envsim.scenario import Scenario
    from envsim.trajectory import Trajectory
    from envsim.user.base import UserSimulator

MANIFEST = "suite.json"
"""The file that makes a folder a generated suite."""

ALL = "all"
"""The split that is every scenario file of a suite (reserved: no split folder may be named so)."""

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Suite:
    """A suite folder (see the module docstring); make one with :meth:`open`.

    Attributes:
        root: The folder.
        manifest: ``suite.json`` as a dict (empty for a plain folder of scenario files).
    """

    root: Path
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> Suite:
        """The suite in ``path``.

        Raises:
            SuiteError: ``path`` is no folder, holds neither ``suite.json`` nor any scenario file, or its
                ``suite.json`` is not a JSON object (located ``file:line:col``).
        """
        root = Path(path)
        if not root.exists():
            raise SuiteError(f"no suite folder {str(root)!r}: it does not exist")
        if not root.is_dir():
            raise SuiteError(f"{str(root)!r} is not a suite: a suite is a folder (DIR/suite.json, DIR/<split>/...)")
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            if not scenario_files([root]):
                raise SuiteError(
                    f"{str(root)!r} is not a suite: no {MANIFEST} and no scenario files (*.yaml, *.yml) in it"
                )
            return cls(root)
        return cls(root, _read_manifest(manifest_path))

    @property
    def generated(self) -> bool:
        """Whether the folder has a ``suite.json`` (written by ``envsim scenarios generate``)."""
        return bool(self.manifest) or (self.root / MANIFEST).is_file()

    def splits(self) -> list[str]:
        """The split names: the subfolders holding scenario files (a generated suite), or ``['all']``."""
        if not self.generated:
            return [ALL]
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name != ALL and scenario_files([p]))
        order = {name: i for i, name in enumerate(("train", "dev", "test", "holdout"))}
        return sorted(names, key=lambda name: (order.get(name, len(order)), name))

    def files(self, split: str | None = None) -> list[Path]:
        """The scenario files of ``split`` (None or ``'all'``: every split), sorted.

        Raises:
            SuiteError: The suite has no such split, or the split holds no scenario file.
        """
        if split is None or split == ALL:
            return scenario_files([self.root])
        known = self.splits()
        declared = self.manifest.get("splits")
        if split not in known and isinstance(declared, dict) and split in declared:
            raise SuiteError(
                f"split {split!r} of suite {str(self.root)!r} has no scenario files (splits: {', '.join(known)})"
            )
        if split not in known:
            raise SuiteError(
                f"suite {str(self.root)!r} has no split {split!r}{did_you_mean(split, known)}"
                f" (splits: {', '.join(known)}; '{ALL}' is all of them)"
            )
        return scenario_files([self.root / split])

    def scenarios(self, split: str | None = None) -> dict[str, Path]:
        """Scenario id → file for ``split`` (None or ``'all'``: every split), in file order; reads headers only.

        Raises:
            SuiteError: Unknown or empty split.
            ScenarioError: A file has no valid id, or two files share one (every such file, located).
        """
        found = scan(self.files(split))
        if found.skipped:
            raise ScenarioError([s.problem for s in found.skipped])
        if not found.scenarios:
            raise SuiteError(f"split {split or ALL!r} of suite {str(self.root)!r} has no scenario files")
        return {scenario_id: path for scenario_id, (path, _) in found.scenarios.items()}

    @property
    def drops(self) -> dict[str, int]:
        """The generator's gate drops by reason (``suite.json``'s ``drops``; empty when absent)."""
        drops = self.manifest.get("drops", {})
        return {str(k): int(v) for k, v in drops.items()} if isinstance(drops, dict) else {}

    def family_info(self, family: str) -> dict[str, Any]:
        """``suite.json``'s entry for ``family`` under ``families`` (kind, traits, toolkit...); empty when absent."""
        families = self.manifest.get("families", {})
        entry = families.get(family) if isinstance(families, dict) else None
        return dict(entry) if isinstance(entry, dict) else {}

    def register(self, split: str | None = None) -> list[str]:
        """Register the scenarios of ``split`` with Gymnasium as ``envsim/<Id>-v0`` (in this process); their ids.

        Afterwards every API that takes a scenario id (``gym.make``, ``ScenarioEnv(id)``, the training
        code) finds them, as it finds the shipped scenarios.

        Raises:
            SuiteError: An id is already registered for another file.
        """
        found = scan(self.files(split))
        if found.skipped:
            raise ScenarioError([s.problem for s in found.skipped])
        new: dict[str, EnvSpec] = {}
        for scenario_id, (path, max_turns) in found.scenarios.items():
            gym_id = f"{NAMESPACE}/{scenario_id}-v0"
            spec = gym.registry.get(gym_id)
            if spec is None:
                new[gym_id] = EnvSpec(
                    id=gym_id, entry_point=ENTRY_POINT, kwargs={"scenario": str(path)}, max_episode_steps=max_turns
                )
                continue
            other = spec.kwargs.get("scenario")
            if other is None or Path(str(other)).resolve() != path.resolve():  # the same file is no clash
                raise SuiteError(  # checked for every file before any is registered
                    f"{path}: scenario id {scenario_id!r} is already registered"
                    + (f" for {other}" if other is not None else " (not for a scenario file)")
                )
        gym.registry.update(new)
        return list(found.scenarios)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ScenarioError([Problem(path, 1, 1, "", f"not UTF-8 text: {error.reason}")]) from None
    except json.JSONDecodeError as error:
        raise ScenarioError([Problem(path, error.lineno, error.colno, "", f"not valid JSON: {error.msg}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(path, 1, 1, "", "suite.json must be a JSON object")])
    return data


def parse_reference(name: str | Path) -> tuple[Path, str | None] | None:
    """The folder and split that ``name`` refers to, or None when it is no suite reference.

    A suite reference is an existing folder (``DIR``, split None) or ``DIR:split`` where ``DIR`` is an
    existing folder (``split`` is then not checked here: :meth:`Suite.files` says when it is unknown).

    Example:
        >>> from envsim.registration import discover
        >>> shipped = discover()["MedicalSupplyPanicCaller"][0].parents[1]
        >>> parse_reference(str(shipped)) == (shipped, None), parse_reference(f"{shipped}:train") == (shipped, "train")
        (True, True)
        >>> parse_reference("MedicalSupplyPanicCaller") is None
        True
    """
    path = Path(name)
    if path.is_dir():
        return path, None
    if path.exists() or not isinstance(name, str) or ":" not in name:
        return None
    folder, _, split = name.rpartition(":")
    if not folder or not _SPLIT_NAME.fullmatch(split) or not Path(folder).is_dir():
        return None
    return Path(folder), split


def reference_files(name: str | Path) -> list[Path] | None:
    """The scenario files a suite reference (``DIR`` or ``DIR:split``) names; None when ``name`` is no reference.

    Raises:
        SuiteError: The folder is no suite, or the split is unknown or empty.
    """
    reference = parse_reference(name)
    if reference is None:
        return None
    folder, split = reference
    files = Suite.open(folder).files(split)
    if not files:
        raise SuiteError(f"split {split or ALL!r} of suite {str(folder)!r} has no scenario files")
    return files


def resolve_ids(names: Sequence[str]) -> list[str]:
    """``names`` with each suite reference (``DIR``, ``DIR:split``) replaced by the ids of its scenarios.

    The suite's scenarios are registered (:meth:`Suite.register`), so that ``ScenarioEnv(id)`` and
    ``gym.make`` find them; other names are kept as given. Each id comes once, in the order given.

    Example:
        >>> from envsim.registration import discover
        >>> shipped = discover()["MedicalSupplyPanicCaller"][0].parents[1]
        >>> resolve_ids(["MedicalSupplyPanicCaller", str(shipped / "banking")])[:2]
        ['MedicalSupplyPanicCaller', 'BankingDuplicateChargeDispute']
    """
    ids: list[str] = []
    for name in names:
        reference = parse_reference(name)
        if reference is None:
            ids.append(name)
        else:
            ids.extend(Suite.open(reference[0]).register(reference[1]))
    return list(dict.fromkeys(ids))


class SuiteEnv(gym.Env[str, str]):
    """An environment over a suite's split: each episode plays one of its scenarios.

    ``reset(seed=s)`` draws the scenario from the environment's ``np_random`` (seeded with ``s``) and
    plays it with seed ``s``, so that episode is the one ``ScenarioEnv(id).reset(seed=s)`` gives;
    ``reset()`` without a seed draws the scenario and its episode seed from the generator.
    ``options={"scenario_id": ID}`` plays that scenario of the split instead of drawing one.
    ``info["scenario_id"]`` names the scenario, on reset and on every step.

    Steps go to the scenario's :class:`~envsim.env.ScenarioEnv` (made on first use, validated then, and
    kept: at most ``cache_size`` of them, the least recently used dropped first), which ends the episode
    at the scenario's ``max_turns`` or at a shorter ``TimeLimit`` around this environment, with the
    reward on that last step. The environment pickles.

    Args:
        suite: The suite folder (see :class:`Suite`).
        split: The split to draw from; None or ``'all'``: every scenario of the suite.
        user: The mock user of every episode (default: a :class:`~envsim.user.scripted.ScriptedUser`).
        render_mode: ``"ansi"`` or ``"human"``, as :class:`~envsim.env.ScenarioEnv`.
        cache_size: Most scenario environments kept.

    Example:
        >>> import envsim
        >>> from envsim.registration import discover
        >>> shipped = discover()["MedicalSupplyPanicCaller"][0].parents[1]
        >>> env = gym.make("envsim/Suite-v0", suite=shipped)
        >>> obs, info = env.reset(seed=3)
        >>> info["scenario_id"] == env.reset(seed=3)[1]["scenario_id"]
        True
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}  # noqa: RUF012 - Gymnasium's convention

    def __init__(
        self,
        suite: str | Path,
        split: str | None = None,
        *,
        user: UserSimulator | None = None,
        render_mode: str | None = None,
        cache_size: int = 256,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.suite = Suite.open(suite)
        self.split = split or ALL
        self.files = self.suite.scenarios(self.split)
        self.scenario_ids = list(self.files)
        """The ids of the split's scenarios, in file order (the draw picks an index into it)."""
        self.render_mode = render_mode
        self.observation_space = ChatText()
        self.action_space = ChatText()
        self.user = user
        self.cache_size = cache_size
        self._envs: OrderedDict[str, ScenarioEnv] = OrderedDict()
        self._active: gym.Env[str, str] | None = None
        self._current: ScenarioEnv | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Draw a scenario of the split (or take ``options["scenario_id"]``) and start its episode.

        Returns:
            The scenario's opening observation and its reset ``info`` (``"scenario_id"``, ``"messages"``,
            ``"tools"``), as :meth:`envsim.env.ScenarioEnv.reset` gives them.

        Raises:
            UnknownNameError: ``options["scenario_id"]`` is not a scenario of the split.
            ValueError: ``options`` has a key other than ``scenario_id``.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        chosen = options.pop("scenario_id", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}: the only option is 'scenario_id'")
        if chosen is None:
            chosen = self.scenario_ids[int(self.np_random.integers(len(self.scenario_ids)))]
        elif chosen not in self.files:
            raise UnknownNameError(
                f"{chosen!r} is not a scenario of split {self.split!r} of suite {str(self.suite.root)!r}"
                f"{did_you_mean(str(chosen), self.scenario_ids)}"
            )
        episode_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        env = self._env(chosen)
        from envsim.env import time_limit_around

        limit = time_limit_around(self, sys._getframe(1))
        self._current = env
        self._active = env if limit is None else TimeLimit(env, limit)
        return self._active.reset(seed=episode_seed)

    def step(self, action: Any) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """One step of the current scenario's episode (see :meth:`envsim.env.ScenarioEnv.step`).

        ``info`` also carries ``"scenario_id"``.
        """
        if self._active is None or self._current is None:
            raise RuntimeError("call reset() before step()")
        observation, reward, terminated, truncated, info = self._active.step(action)
        info["scenario_id"] = self._current.scenario.id
        return observation, reward, terminated, truncated, info

    def render(self) -> str | None:
        """The current episode's transcript (``ansi``), or print it (``human``); see ``ScenarioEnv.render``."""
        return None if self._current is None else self._current.render()

    # -- the current episode ----------------------------------------------------------------

    @property
    def current(self) -> ScenarioEnv:
        """The environment of the scenario being played."""
        if self._current is None:
            raise RuntimeError("no episode yet: call reset()")
        return self._current

    @property
    def scenario(self) -> Scenario:
        """The scenario being played (agents read it at reset, as with a ScenarioEnv)."""
        return self.current.scenario

    def trajectory(self) -> Trajectory:
        """The current episode as a trajectory (see :meth:`envsim.env.ScenarioEnv.trajectory`)."""
        return self.current.trajectory()

    def score(self) -> RewardBreakdown:
        """The current episode's reward breakdown (see :meth:`envsim.env.ScenarioEnv.score`)."""
        return self.current.score()

    def _env(self, scenario_id: str) -> ScenarioEnv:
        env = self._envs.get(scenario_id)
        if env is not None:
            self._envs.move_to_end(scenario_id)
            return env
        from envsim.env import ScenarioEnv

        env = ScenarioEnv(self.files[scenario_id], user=self.user, render_mode=self.render_mode)
        self._envs[scenario_id] = env
        while len(self._envs) > self.cache_size:
            self._envs.popitem(last=False)
        return env
