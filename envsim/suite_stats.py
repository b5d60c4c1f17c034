"""Counting a suite's scenarios: per split and in total, by toolkit, family, persona, kind, trait and escalation.

What each count reads:

- ``toolkit``: the scenario's ``toolkits`` (a scenario with two toolkits counts under both);
- ``family``: ``source.family`` (``"none"`` for a scenario that no family generated);
- ``persona``: ``user.persona.ref`` (``"inline"`` for a persona written in place);
- ``kind`` (resolution, refusal, escalation, panic) and ``traits`` (multi_intent, policy_trap,
  escalation, missing_facts, wrong_fact, distractor; ``"none"`` when a scenario has none): the
  family's entry in ``suite.json``'s ``families``. A scenario whose family ``suite.json`` does not
  describe (a hand-written one) gets a kind read from its expected outcome: ``escalation`` when
  escalation is required, ``refusal`` when the world must not change and some action is forbidden,
  else ``resolution``; and no traits;
- ``escalation``: the scenario's ``expected.escalation`` (required, forbidden, optional).

``drops`` are the generator's gate drops by reason, from ``suite.json``.

Every file is validated (not linted) before it counts; one that does not validate is counted as
invalid, with its located problem. A file is read with libyaml's C parser when it has no anchor or
alias (``&``, ``*``, so nothing can expand), which is much faster than the located reader;
the located reader (:func:`envsim.loader.load_scenario`) reads every other file, and any file the
fast path cannot validate, so a problem is reported as ``envsim validate`` reports it. (The fast
path does not refuse a key written twice or nesting past 100 levels: ``envsim validate`` does.)

Example:
    >>> from envsim.registration import discover
    >>> shipped = discover()["MedicalSupplyPanicCaller"][0].parents[1]   # envsim's scenarios/ folder
    >>> counts = suite_stats(Suite.open(shipped))
    >>> counts["scenarios"] == sum(counts["total"]["toolkit"].values()), counts["invalid"]
    (True, 0)
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from envsim.errors import ScenarioError
from envsim.loader import load_scenario
from envsim.scenario import Scenario
from envsim.suite import Suite
from envsim.yamlsource import read_text

DIMENSIONS = ("toolkit", "family", "persona", "kind", "traits", "escalation")
"""What :func:`suite_stats` counts, per split and in total."""

NONE = "none"
"""The label of a scenario without a family, or without traits."""


_EXPANDING = re.compile(r"[&*]")
"""Characters of a YAML anchor or alias: a file with one is read by the bounded, located reader."""


def read_scenario(path: Path) -> Scenario:
    """The validated (not linted) scenario in ``path``, read fast when it is safe (see the module docstring).

    Raises:
        ScenarioError: The file does not validate (located, as :func:`envsim.loader.load_scenario` says).
    """
    fast = getattr(yaml, "CSafeLoader", None)
    text = read_text(path)
    if fast is not None and not _EXPANDING.search(text):
        try:
            return Scenario.model_validate(yaml.load(text, Loader=fast))
        except (yaml.YAMLError, ValidationError, ValueError, RecursionError):
            pass  # the located reader says where and why
    return load_scenario(path, lint=False)


def _kind(scenario: Scenario, family: dict[str, Any]) -> str:
    kind = family.get("kind")
    if isinstance(kind, str):
        return kind
    expected = scenario.expected
    if expected.escalation == "required":
        return "escalation"
    if expected.no_change and expected.forbidden_actions:
        return "refusal"
    return "resolution"


def _labels(scenario: Scenario, suite: Suite) -> dict[str, list[str]]:
    """The labels of ``scenario`` in each of :data:`DIMENSIONS`."""
    family_name = scenario.source.family if scenario.source is not None else None
    family = suite.family_info(family_name) if family_name else {}
    persona = scenario.user.persona
    traits = family.get("traits")
    return {
        "toolkit": list(scenario.toolkits),
        "family": [family_name or NONE],
        "persona": [persona.ref or ("inline" if persona.inline is not None else NONE)],
        "kind": [_kind(scenario, family)],
        "traits": [str(t) for t in traits] if isinstance(traits, list) and traits else [NONE],
        "escalation": [scenario.expected.escalation],
    }


def _sorted(counter: Counter[str]) -> dict[str, int]:
    """Most common first, then by name (a stable order for the JSON)."""
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def suite_stats(suite: Suite, split: str | None = None) -> dict[str, Any]:
    """The counts of ``suite`` (every split, or only ``split``); see the module docstring.

    Returns:
        ``suite`` (its folder), ``generated`` (has suite.json), ``scenarios`` (files counted),
        ``invalid`` (files that do not load) and ``problems`` (their first problem each),
        ``splits`` (split → ``{"scenarios": n, <dimension>: {label: n}}``), ``total`` (the same over the
        splits counted), ``drops`` (gate drops by reason) and ``dropped`` (their sum).
    """
    names = [split] if split is not None else suite.splits()
    per_split: dict[str, dict[str, Any]] = {}
    total = {d: Counter[str]() for d in DIMENSIONS}
    problems: list[str] = []
    scenarios = 0
    for name in names:
        counts = {d: Counter[str]() for d in DIMENSIONS}
        files: list[Path] = suite.files(name)
        loaded = 0
        for path in files:
            try:
                scenario = read_scenario(path)
            except ScenarioError as error:
                problems.append(str(error.problems[0]))
                continue
            loaded += 1
            for dimension, labels in _labels(scenario, suite).items():
                counts[dimension].update(labels)
                total[dimension].update(labels)
        scenarios += loaded
        per_split[name] = {"scenarios": loaded, **{d: _sorted(c) for d, c in counts.items()}}
    drops = suite.drops
    return {
        "suite": str(suite.root),
        "generated": suite.generated,
        "scenarios": scenarios,
        "invalid": len(problems),
        "problems": problems,
        "splits": per_split,
        "total": {d: _sorted(c) for d, c in total.items()},
        "drops": _sorted(Counter(drops)),
        "dropped": sum(drops.values()),
    }
