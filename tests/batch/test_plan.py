"""The episode plan: deterministic ids, what changes them, and how scenarios are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.batch.plan import (
    GenerateConfig,
    RunOptions,
    ScenarioSource,
    episode_id,
    file_hash,
    make_plan,
    resolve_sources,
)
from envsim.errors import EnvsimError, UnknownNameError
from tests.conftest import REPO, TINY_SCENARIO

SOURCE = ScenarioSource(id="Tiny", path="tiny.yaml", hash="0" * 64)


def test_plan_is_deterministic_and_complete() -> None:
    config = GenerateConfig(error_rate=0.2)
    other = ScenarioSource(id="Other", path="other.yaml", hash="1" * 64)
    plan = make_plan([SOURCE, other], config, episodes=4, seeds=[0, 100])
    assert plan == make_plan([SOURCE, other], GenerateConfig(error_rate=0.2), episodes=4, seeds=[0, 100])
    assert len(plan) == 2 * 2 * 4
    assert len({e.episode_id for e in plan}) == len(plan)
    assert [(e.scenario_id, e.base_seed, e.index, e.seed) for e in plan[:5]] == [
        ("Tiny", 0, 0, 0),
        ("Tiny", 0, 1, 1),
        ("Tiny", 0, 2, 2),
        ("Tiny", 0, 3, 3),
        ("Tiny", 100, 0, 100),
    ]
    assert all(e.config_hash == config.config_hash() for e in plan)


def test_episode_id_depends_on_everything_that_determines_the_episode() -> None:
    base = episode_id("Tiny", "0" * 64, 3, 7, "c" * 64)
    assert base == episode_id("Tiny", "0" * 64, 3, 7, "c" * 64)
    variants = [
        episode_id("Tiny2", "0" * 64, 3, 7, "c" * 64),
        episode_id("Tiny", "1" * 64, 3, 7, "c" * 64),
        episode_id("Tiny", "0" * 64, 4, 7, "c" * 64),
        episode_id("Tiny", "0" * 64, 3, 8, "c" * 64),
        episode_id("Tiny", "0" * 64, 3, 7, "d" * 64),
    ]
    assert base not in variants and len(set(variants)) == len(variants)


def test_config_hash_ignores_operational_options_and_rubric_path() -> None:
    config = GenerateConfig(agent="llm", agent_model="openai/x", judge_rubric="a.yaml", judge_rubric_hash="h")
    moved = config.model_copy(update={"judge_rubric": "elsewhere/a.yaml"})
    assert config.config_hash() == moved.config_hash()
    assert config.config_hash() != config.model_copy(update={"agent_model": "openai/y"}).config_hash()
    assert config.config_hash() != config.model_copy(update={"judge_rubric_hash": "h2"}).config_hash()
    # RunOptions are not part of GenerateConfig at all: another concurrency plans the same episodes
    assert "concurrency" not in GenerateConfig.model_fields and "concurrency" in RunOptions.model_fields


def test_overlapping_or_repeated_seeds_are_refused() -> None:
    with pytest.raises(EnvsimError, match="overlap"):
        make_plan([SOURCE], GenerateConfig(), episodes=10, seeds=[0, 5])
    with pytest.raises(EnvsimError, match="twice"):
        make_plan([SOURCE], GenerateConfig(), episodes=1, seeds=[3, 3])
    assert len(make_plan([SOURCE], GenerateConfig(), episodes=10, seeds=[0, 10])) == 20


def test_models_are_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        GenerateConfig.model_validate({"agent": "scripted", "agnet_model": "x"})
    with pytest.raises(ValueError):
        RunOptions(concurrency=0)


def test_sources_from_files_folders_globs_and_ids(tmp_path: Path) -> None:
    folder = tmp_path / "sc"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    (folder / "tiny2.yml").write_text(TINY_SCENARIO.replace("id: TinyEmergency", "id: TinyTwo"), encoding="utf-8")
    by_folder = resolve_sources([str(folder)])
    assert [s.id for s in by_folder] == ["TinyEmergency", "TinyTwo"]
    assert by_folder[0].hash == file_hash(folder / "tiny.yaml")
    assert [s.id for s in resolve_sources([str(folder / "*.yml")])] == ["TinyTwo"]
    # a file named twice (directly and through its folder) counts once
    assert len(resolve_sources([str(folder / "tiny.yaml"), str(folder)])) == 2
    by_id = resolve_sources(["MedicalSupplyPanicCaller"])
    assert by_id[0].path == str((REPO / "scenarios/medical_supply/medical_supply_panic_caller.yaml").resolve())
    assert len(resolve_sources(["all"])) >= 16


def test_bad_scenario_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="did you mean"):
        resolve_sources(["MedicalSupplyPanicCalller"])
    with pytest.raises(UnknownNameError, match="no scenario file matches"):
        resolve_sources([str(tmp_path / "*.yaml")])
    with pytest.raises(UnknownNameError, match="no scenario files"):
        resolve_sources([str(tmp_path)])
    (tmp_path / "a.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    with pytest.raises(EnvsimError, match="defined twice"):
        resolve_sources([str(tmp_path)])
