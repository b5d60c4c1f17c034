"""Task family files: the scenario's provenance fields, the family schema, located problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.scenario import Scenario

_BODY = """\
id: GeneratedProbe
domain: retail
description: A probe.
toolkits: [retail]
agent: {guidelines: Help.}
user: {goal: Help me., opening: Hi.}
expected: {}
"""


def test_a_scenario_carries_its_source_and_review_status() -> None:
    text = _BODY + (
        "source: {family: RetailProbe, parameters: {world_seed: 3}, seed: 7, generator: envsim-factory/1}\n"
        "status: accepted\n"
    )
    scenario = load_scenario_text(text, lint=False)
    assert scenario.source is not None and scenario.source.family == "RetailProbe"
    assert scenario.source.parameters == {"world_seed": 3}
    assert scenario.status == "accepted"
    properties = Scenario.model_json_schema()["properties"]
    assert {"source", "status"} <= set(properties)


def test_an_unknown_status_is_located() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(_BODY + "status: final\n", lint=False)
    assert str(caught.value.problems[0]).startswith("<string>:8:9: status: Input should be 'draft' or 'accepted'")


def test_scenario_discovery_skips_family_folders(tmp_path: Path) -> None:
    from envsim.registration import scenario_files

    (tmp_path / "retail" / "families").mkdir(parents=True)
    (tmp_path / "families" / "banking").mkdir(parents=True)
    (tmp_path / "retail" / "one.yaml").write_text("id: One\n", encoding="utf-8")
    (tmp_path / "retail" / "families" / "fam.yaml").write_text("family: Fam\n", encoding="utf-8")
    (tmp_path / "families" / "banking" / "fam.yaml").write_text("family: Fam\n", encoding="utf-8")
    assert scenario_files([tmp_path]) == [tmp_path / "retail" / "one.yaml"]
