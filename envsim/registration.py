"""Finding scenario files and registering them with Gymnasium.

Scenario files are found in :func:`scenario_dirs`: the scenarios shipped with envsim and with
installed plug-in packages (``envsim.scenarios`` entry points), then every
folder (or file) named by ``ENVSIM_SCENARIOS`` (``os.pathsep``-separated). ``ENVSIM_SCENARIOS``
**adds** to the shipped scenarios; it never hides them.

``import envsim`` registers each file as ``envsim/<Id>-v0`` with ``max_episode_steps=max_turns``.
Registration is cheap, because generated suites hold thousands of files: it reads each file's
top-level ``id:`` and ``max_turns:`` lines only (parsing the whole file as YAML only when those
lines are not plain), and leaves the full validation to ``gym.make``, :func:`load_registered` and
``envsim validate``. What registration checks, it checks before registering:

- the file is readable UTF-8 and has a top-level ``id`` that matches the scenario id rule
  (CamelCase, the :class:`~envsim.scenario.Scenario` model's own pattern), so no id such as
  ``../x y/z`` ever reaches Gymnasium's registry;
- ``max_turns``, when given, is an integer within the model's bounds;
- no other file has the same id (both files are then left out: which one was meant is unknown).

A file that fails one of these is left out with a :class:`ScenarioWarning` naming it (file, line
and column), and every other file is registered: one bad file never breaks ``import envsim``.
``envsim list`` shows the files left out, and ``envsim validate`` reports them as errors.

Example:
    >>> "MedicalSupplyPanicCaller" in discover()
    True
    >>> discovery().skipped
    []
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import yaml
from gymnasium.envs.registration import EnvSpec

from envsim.errors import Problem, ScenarioError, ScenarioWarning, UnknownNameError
from envsim.plugins import SCENARIOS_GROUP, plugin_folders
from envsim.scenario import Scenario
from envsim.suggest import did_you_mean
from envsim.yamlsource import load_yaml_text, read_text

SCENARIOS_ENV = "ENVSIM_SCENARIOS"
NAMESPACE = "envsim"
SUFFIXES = (".yaml", ".yml")
ENTRY_POINT = "envsim.env:ScenarioEnv"
SUITE_ENV_ID = f"{NAMESPACE}/Suite-v0"
SUITE_ENTRY_POINT = "envsim.suite:SuiteEnv"


_ID_PATTERN = re.compile(
    next(str(m.pattern) for m in Scenario.model_fields["id"].metadata if getattr(m, "pattern", None))
)
_TURNS_FIELD = Scenario.model_fields["max_turns"]
_MIN_TURNS = next(int(m.ge) for m in _TURNS_FIELD.metadata if hasattr(m, "ge"))
_MAX_TURNS = next(int(m.le) for m in _TURNS_FIELD.metadata if hasattr(m, "le"))
_DEFAULT_TURNS = int(_TURNS_FIELD.default)
_HEADER_LINE = re.compile(r"^(id|max_turns)[ \t]*:[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)
_QUOTED = re.compile(r"""^(?:"([^"\\]*)"|'([^']*)')$""")
_DECIMAL = re.compile(r"[1-9][0-9]{0,5}")  # YAML 1.1 reads 010 as octal and 1_0 as 10: those take the full parser
_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Header:
    """What registration reads from a scenario file: its id and turn limit, and where the id is written."""

    path: Path
    scenario_id: str
    max_turns: int
    line: int = 1
    column: int = 1


@dataclass(frozen=True)
class Skipped:
    """A scenario file left out of the registry, with the located reason (and its id, when it could be read)."""

    path: Path
    problem: Problem
    scenario_id: str | None = None


@dataclass(frozen=True)
class Discovery:
    """The registrable scenarios (id → (file, max_turns)) and the files left out."""

    scenarios: dict[str, tuple[Path, int]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)


def scenario_dirs() -> list[Path]:
    """The scenario folders in use: the shipped ones, then those of ``ENVSIM_SCENARIOS`` (which add to them).

    The shipped folders are those that installed packages declare through the ``envsim.scenarios``
    entry point group: envsim's own ``scenarios/`` and any plug-in package's (see :mod:`envsim.plugins`).
    This is the one place that decides where scenarios come from.
    """
    dirs = plugin_folders(SCENARIOS_GROUP)
    dirs.extend(Path(p) for p in os.environ.get(SCENARIOS_ENV, "").split(os.pathsep) if p)
    return dirs


FAMILY_DIR = "families"
"""The folder name of task family files inside a scenario folder; scenario discovery skips it."""


def scenario_files(paths: list[Path] | None = None, *, families: bool = False) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` file under ``paths`` (files are kept as given), sorted, each once.

    A folder named ``families`` inside a searched folder holds task families (:mod:`envsim.factory`),
    not scenarios: it is skipped, unless ``families`` (``envsim validate`` checks both).
    """
    found: dict[str, Path] = {}
    for path in paths if paths is not None else scenario_dirs():
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if families or d != FAMILY_DIR)
                for name in names:
                    if name.endswith(SUFFIXES):
                        file = Path(root, name)
                        found.setdefault(os.path.abspath(file), file)
        elif path.exists():
            found.setdefault(os.path.abspath(path), path)
    return sorted(found.values())


def _plain_tag(value: str) -> str:
    """The tag YAML's safe loader gives ``value`` written plainly (``str``, ``bool``, ``null``, ``int``...)."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _uncommented(raw: str) -> str:
    """A header line's value without its trailing comment."""
    return raw.split(" #", 1)[0].rstrip() if " #" in raw else raw


def _plain(raw: str) -> str | None:
    """A header line's value when YAML reads it as a string written plainly or simply quoted, else None.

    None (no anchor, tag, escape, flow collection, or a plain word that YAML reads as another type,
    such as ``Yes`` or ``Null``) sends the file to the full parser.
    """
    value = _uncommented(raw)
    quoted = _QUOTED.match(value)
    if quoted:
        return quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
    if value[:1] in "&*!\"'[{|>%@`#" or _plain_tag(value) != _STR_TAG:
        return None
    return value


def _located(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _header_from_yaml(path: Path, text: str) -> Header:
    """The header read by parsing the whole file (the id or max_turns line is not plain)."""
    doc = load_yaml_text(text, path)
    if not isinstance(doc.data, dict):
        raise ScenarioError([doc.problem((), "a scenario file must be a mapping of fields (id, domain, ...)")])
    if "id" not in doc.data:
        raise ScenarioError([doc.problem((), "no top-level 'id': a scenario file needs one", field="id")])
    scenario_id, turns = doc.data["id"], doc.data.get("max_turns", _DEFAULT_TURNS)
    if not isinstance(scenario_id, str) or not _ID_PATTERN.fullmatch(scenario_id):
        raise ScenarioError([doc.problem(("id",), _bad_id(scenario_id))])
    if isinstance(turns, bool) or not isinstance(turns, int) or not _MIN_TURNS <= turns <= _MAX_TURNS:
        raise ScenarioError([doc.problem(("max_turns",), _bad_turns(turns))])
    line, column = doc.locate(("id",))
    return Header(path, scenario_id, turns, line, column)


def _bad_id(value: object) -> str:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"not a scenario id: {shown} (CamelCase: a capital letter, then letters and digits only)"


def _bad_turns(value: object) -> str:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"must be an integer from {_MIN_TURNS} to {_MAX_TURNS}, got {shown}"


def read_header(path: Path) -> Header:
    """The id and turn limit of a scenario file, read cheaply: only its top-level ``id:``/``max_turns:`` lines.

    The whole file is parsed only when those lines are not plain (quoted with escapes, anchored,
    missing, written twice); nothing else in the file is checked.

    Raises:
        ScenarioError: the file is unreadable or not UTF-8, or its id or ``max_turns`` is
            missing or invalid (located at the value).
    """
    text = read_text(path)
    found: dict[str, list[re.Match[str]]] = {"id": [], "max_turns": []}
    for match in _HEADER_LINE.finditer(text):
        found[match.group(1)].append(match)
    if len(found["id"]) != 1 or len(found["max_turns"]) > 1:
        return _header_from_yaml(path, text)
    scenario_id = _plain(found["id"][0].group(2))
    turns_text = _uncommented(found["max_turns"][0].group(2)) if found["max_turns"] else str(_DEFAULT_TURNS)
    if (
        scenario_id is None
        or not _ID_PATTERN.fullmatch(scenario_id)
        or not (_DECIMAL.fullmatch(turns_text) and _MIN_TURNS <= int(turns_text) <= _MAX_TURNS)
    ):
        return _header_from_yaml(path, text)  # the parser gives the located, exact reason
    line, column = _located(text, found["id"][0].start(2))
    return Header(path, scenario_id, int(turns_text), line, column)


def _clash(header: Header, others: list[Header]) -> Skipped:
    elsewhere = ", ".join(str(h.path) for h in others if h is not header)
    message = f"{header.scenario_id!r} is also the id of {elsewhere}, so no file with this id is registered"
    return Skipped(header.path, Problem(header.path, header.line, header.column, "id", message), header.scenario_id)


def duplicate_ids(headers: list[Header]) -> list[Skipped]:
    """One entry per file whose id another of ``headers`` also has, naming the other files."""
    by_id: dict[str, list[Header]] = {}
    for header in headers:
        by_id.setdefault(header.scenario_id, []).append(header)
    return [_clash(h, same) for same in by_id.values() if len(same) > 1 for h in same]


def id_clashes(files: list[Path]) -> dict[Path, Problem]:
    """For each of ``files`` whose id another of them also has: the located problem naming the others.

    A file whose header cannot be read is left out here (loading it reports why, in full).
    """
    headers = []
    for path in files:
        try:
            headers.append(read_header(path))
        except ScenarioError:
            continue
    return {s.path: s.problem for s in duplicate_ids(headers)}


def scan(files: list[Path]) -> Discovery:
    """Read the header of every file in ``files``: the registrable scenarios and the files left out."""
    headers: list[Header] = []
    skipped: list[Skipped] = []
    for path in files:
        try:
            header = read_header(path)
        except ScenarioError as error:
            skipped.append(Skipped(path, error.problems[0]))
            continue
        if f"{NAMESPACE}/{header.scenario_id}-v0" == SUITE_ENV_ID:
            message = f"{header.scenario_id!r} is reserved: {SUITE_ENV_ID} is the suite environment (envsim.suite)"
            skipped.append(Skipped(path, Problem(path, header.line, header.column, "id", message), header.scenario_id))
        else:
            headers.append(header)
    clashes = duplicate_ids(headers)
    clashed = {s.path for s in clashes}
    scenarios = {h.scenario_id: (h.path, h.max_turns) for h in headers if h.path not in clashed}
    return Discovery(scenarios, sorted([*skipped, *clashes], key=lambda s: str(s.path)))


@lru_cache(maxsize=1)
def discovery() -> Discovery:
    """The scenarios of :func:`scenario_dirs` and the files left out (read once per process)."""
    return scan(scenario_files())


def discover() -> dict[str, tuple[Path, int]]:
    """Scenario id → (file, max_turns) for every registrable scenario file (read without validation)."""
    return discovery().scenarios


def _warn(skipped: Skipped) -> None:
    """A :class:`ScenarioWarning` attributed to the caller of :func:`register_scenarios` (``import envsim``)."""
    warnings.warn(f"scenario file not registered: {skipped.problem}", ScenarioWarning, stacklevel=3)


def register_scenarios() -> list[str]:
    """Register every discovered scenario with Gymnasium, and ``envsim/Suite-v0``; returns the scenarios' gym ids.

    Each file left out is reported with a :class:`ScenarioWarning`.
    """
    found = discovery()
    for skipped in found.skipped:
        _warn(skipped)
    ids = []
    for scenario_id, (path, max_turns) in found.scenarios.items():
        gym_id = f"{NAMESPACE}/{scenario_id}-v0"
        if gym_id not in gym.registry:
            # What gym.register does, without its scan of the whole registry per call (quadratic in the
            # number of scenarios); the id is checked above and every envsim id is versioned, so the
            # scan could find nothing.
            gym.registry[gym_id] = EnvSpec(
                id=gym_id, entry_point=ENTRY_POINT, kwargs={"scenario": str(path)}, max_episode_steps=max_turns
            )
        ids.append(gym_id)
    if SUITE_ENV_ID not in gym.registry:  # one environment over a suite's split (envsim.suite.SuiteEnv)
        gym.registry[SUITE_ENV_ID] = EnvSpec(id=SUITE_ENV_ID, entry_point=SUITE_ENTRY_POINT)
    return ids


def resolve_scenario_path(name: str | Path) -> Path:
    """A scenario file from a path, an id (``MedicalSupplyPanicCaller``) or a gym id."""
    path = Path(name)
    if path.suffix in SUFFIXES or path.exists():
        if not path.exists():
            raise UnknownNameError(f"no scenario file {str(path)!r}")
        return path
    key = str(name).removeprefix(f"{NAMESPACE}/").removesuffix("-v0")
    found = discovery()
    if key not in found.scenarios:
        spec = gym.registry.get(f"{NAMESPACE}/{key}-v0")  # a suite's scenario (envsim.suite.Suite.register)
        if spec is not None and spec.entry_point == ENTRY_POINT and isinstance(spec.kwargs.get("scenario"), str):
            return Path(spec.kwargs["scenario"])
        reasons = [str(s.problem) for s in found.skipped if s.scenario_id == key]
        if reasons:
            raise UnknownNameError(f"scenario {key!r} is not registered: {'; '.join(reasons)}")
        raise UnknownNameError(f"unknown scenario {key!r}{did_you_mean(key, found.scenarios)}")
    return found.scenarios[key][0]


def load_registered(name: str | Path) -> Scenario:
    """Load (validate and lint) a scenario by id or path."""
    from envsim.loader import load_scenario

    return load_scenario(resolve_scenario_path(name))
