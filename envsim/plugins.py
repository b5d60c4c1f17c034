"""Plug-ins: toolkits, scenario folders and personas that installed packages declare through entry points.

A package adds to envsim by declaring entry points in its ``pyproject.toml``; once it is
installed, every envsim process sees them (the ``envsim`` command, Ray workers, ``dataset``,
``report``) with no launcher script and no edit of envsim::

    [project.entry-points."envsim.toolkits"]
    helpdesk = "envsim_helpdesk.toolkit:HelpdeskToolkit"   # toolkit name = "module:Class"

    [project.entry-points."envsim.scenarios"]
    helpdesk = "envsim_helpdesk.scenarios"                 # a package whose folder holds scenario files

    [project.entry-points."envsim.personas"]
    helpdesk = "envsim_helpdesk.personas"                  # a package whose folder holds persona files

envsim's own scenarios are declared the same way (``envsim = "envsim_scenarios"``, the repository's
``scenarios/`` folder shipped as a package). Entry points are read once per process: scenario
folders when envsim registers scenarios (``import envsim``), toolkits and personas when first
looked up; a toolkit class is imported only when a scenario uses it. A declaration that cannot
be used (a package that is not there, a value that is not a package) is skipped with a warning
naming the entry point and its distribution.

Example:
    >>> "envsim" in {p.name for p in declared(SCENARIOS_GROUP)}
    True
    >>> package_folder("envsim.personas").name
    'personas'
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

TOOLKITS_GROUP = "envsim.toolkits"
"""Entry point group of toolkits: ``name = "module:Class"`` (a :class:`envsim.tools.Toolkit` subclass)."""
SCENARIOS_GROUP = "envsim.scenarios"
"""Entry point group of scenario folders: ``name = "package"`` (its folder is searched for ``*.yaml``/``*.yml``)."""
PERSONAS_GROUP = "envsim.personas"
"""Entry point group of persona folders: ``name = "package"`` (its ``*.yaml`` files list personas)."""

_log = logging.getLogger(__name__)


def origin(entry: EntryPoint) -> str:
    """Where an entry point comes from, for messages: ``group 'name = value' of distribution``.

    Example:
        >>> origin(EntryPoint("helpdesk", "envsim_helpdesk.toolkit:HelpdeskToolkit", TOOLKITS_GROUP))
        "envsim.toolkits entry point 'helpdesk = envsim_helpdesk.toolkit:HelpdeskToolkit'"
    """
    dist = entry.dist
    where = f" of {dist.name} {dist.version}" if dist is not None else ""
    return f"{entry.group} entry point '{entry.name} = {entry.value}'{where}"


@lru_cache(maxsize=1)
def _installed() -> dict[str, tuple[EntryPoint, ...]]:
    """envsim's groups of entry points of every installed distribution, read once per process in one pass."""
    found = entry_points()
    return {group: tuple(found.select(group=group)) for group in (TOOLKITS_GROUP, SCENARIOS_GROUP, PERSONAS_GROUP)}


def declared(group: str) -> tuple[EntryPoint, ...]:
    """The entry points of ``group`` (one of envsim's) of every installed distribution, by distribution and name."""
    found = _installed().get(group, ())
    return tuple(sorted(found, key=lambda e: (e.dist.name if e.dist is not None else "", e.name)))


def package_folder(package: str) -> Path | None:
    """The folder of the importable package ``package`` (a namespace package's first folder), or ``None``.

    Raises whatever importing the package's parents raises (the caller reports it).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        return None
    return next((Path(p) for p in spec.submodule_search_locations if Path(p).is_dir()), None)


def plugin_folders(group: str) -> list[Path]:
    """The folders that ``group``'s entry points name (each must be a package), in :func:`declared` order.

    An entry point whose package cannot be found or imported is skipped with a warning.
    """
    folders: list[Path] = []
    for entry in declared(group):
        problem = ""
        if entry.attr:
            problem = "the value must name a package (no ':attribute')"
        else:
            try:
                folder = package_folder(entry.module)
            except Exception as err:  # a broken plug-in must not break envsim: report it and go on
                problem = f"cannot import {entry.module!r}: {type(err).__name__}: {err}"
            else:
                if folder is None:
                    problem = f"{entry.module!r} is not an installed package"
                elif folder not in folders:
                    folders.append(folder)
        if problem:
            _log.warning("skipping the %s: %s", origin(entry), problem)
    return folders


def plugin_toolkits() -> tuple[dict[str, EntryPoint], dict[str, list[EntryPoint]]]:
    """Toolkit name → its ``envsim.toolkits`` entry point, and the names that several distributions declare.

    A name declared by two distributions is in the second mapping only (with every declaration):
    which one a scenario means cannot be guessed.
    """
    by_name: dict[str, list[EntryPoint]] = {}
    for entry in declared(TOOLKITS_GROUP):
        by_name.setdefault(entry.name, []).append(entry)
    single = {name: entries[0] for name, entries in by_name.items() if len(entries) == 1}
    clashes = {name: entries for name, entries in by_name.items() if len(entries) > 1}
    return single, clashes
