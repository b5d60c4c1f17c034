"""Suites (envsim.suite): the folder, its splits, and envsim/Suite-v0 as Gymnasium and envsim use it."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import envsim
from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.errors import ScenarioError, UnknownNameError
from envsim.rollout import run_episode
from envsim.suite import ALL, Suite, SuiteEnv, SuiteError, parse_reference, reference_files, resolve_ids
from tests.suites import LAYOUT, instance_text, make_suite


def ids_of(split: str) -> set[str]:
    return {f"{family}X{suffix}" for family, suffix in LAYOUT[split]}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return make_suite(tmp_path / "suite")


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Gymnasium's registry as it was before the test (registering a suite adds to it, process-wide)."""
    before = set(gym.registry)
    yield
    for gym_id in set(gym.registry) - before:
        del gym.registry[gym_id]


# -- the folder ---------------------------------------------------------------------------------


def test_a_generated_suite_lists_its_splits_and_their_scenarios(suite: Path) -> None:
    opened = Suite.open(suite)
    assert opened.generated and opened.splits() == ["train", "dev", "test"]
    for split in LAYOUT:
        assert set(opened.scenarios(split)) == ids_of(split)
        assert all(path.parent.parent.name == split for path in opened.files(split))
    assert set(opened.scenarios()) == set(opened.scenarios(ALL)) == ids_of("train") | ids_of("dev") | ids_of("test")
    assert opened.drops == {"unsolvable": 2, "near_duplicate": 1}


def test_a_plain_folder_of_scenarios_is_a_suite_with_the_one_split_all(tmp_path: Path) -> None:
    make_suite(tmp_path, manifest=False)
    opened = Suite.open(tmp_path)
    assert not opened.generated and opened.splits() == [ALL] and opened.drops == {}
    assert len(opened.scenarios()) == sum(len(v) for v in LAYOUT.values())
    with pytest.raises(SuiteError, match=r"has no split 'train'.*splits: all"):
        opened.files("train")


def test_listing_reads_headers_only(suite: Path) -> None:
    broken = suite / "train" / "retail" / "RetailCancelXA1.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("toolkits:", "toolkitz:"), encoding="utf-8")
    assert "RetailCancelXA1" in Suite.open(suite).scenarios("train")  # listed; validated when used
    env = SuiteEnv(suite, "train")
    with pytest.raises(ScenarioError, match="toolkitz: unknown field"):
        env.reset(options={"scenario_id": "RetailCancelXA1"})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no suite folder .*missing.*: it does not exist"),
        (lambda root: _file(root / "one.yaml"), "is not a suite: a suite is a folder"),
        (lambda root: _folder(root / "empty"), r"is not a suite: no suite.json and no scenario files"),
    ],
)
def test_what_is_not_a_suite_says_so_naming_the_folder(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(SuiteError, match=message):
        Suite.open(path)
    with pytest.raises(SuiteError, match=message):
        gym.make("envsim/Suite-v0", suite=str(path))


def _file(path: Path) -> Path:
    path.write_text(instance_text("RetailCancel", "Z"), encoding="utf-8")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("no scenarios here", encoding="utf-8")
    return path


def test_an_unknown_split_is_named_with_the_known_ones(suite: Path) -> None:
    with pytest.raises(SuiteError, match=r"has no split 'trian' \(did you mean 'train'\?\) \(splits: train, dev, test"):
        gym.make("envsim/Suite-v0", suite=str(suite), split="trian")


def test_a_broken_suite_json_is_located(suite: Path) -> None:
    (suite / "suite.json").write_text('{"seed": 7,\n "drops": }', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"suite.json:2:11: .*not valid JSON"):
        Suite.open(suite)


def test_one_id_in_two_splits_is_an_error_naming_both_files(suite: Path) -> None:
    copy = suite / "test" / "retail" / "RetailCancelXA1.yaml"
    copy.parent.mkdir(parents=True)
    copy.write_text(instance_text("RetailCancel", "A1"), encoding="utf-8")
    with pytest.raises(ScenarioError, match="'RetailCancelXA1' is also the id of"):
        Suite.open(suite).scenarios()


# -- envsim/Suite-v0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "dev", "test", ALL])
def test_check_env_passes_on_every_split(suite: Path, split: str) -> None:
    env = gym.make("envsim/Suite-v0", suite=str(suite), split=split)
    check_env(env.unwrapped, skip_render_check=True)


def test_each_split_draws_only_and_all_of_its_scenarios(suite: Path) -> None:
    for split in LAYOUT:
        env = gym.make("envsim/Suite-v0", suite=str(suite), split=split)
        drawn = {env.reset(seed=seed)[1]["scenario_id"] for seed in range(40)}
        assert drawn == ids_of(split)


def test_a_seed_fixes_the_scenario_and_the_episode(suite: Path) -> None:
    first = gym.make("envsim/Suite-v0", suite=str(suite), split="train")
    second = gym.make("envsim/Suite-v0", suite=str(suite), split="train")
    seeds = [5, 1, 5, 9, 2, 1]
    assert [first.reset(seed=s) for s in seeds] == [second.reset(seed=s) for s in seeds]
    # unseeded resets go on from the last seed: the same sequence in both environments
    assert [first.reset()[1]["scenario_id"] for _ in range(8)] == [second.reset()[1]["scenario_id"] for _ in range(8)]
    # reset(seed=s) plays the scenario drawn with seed s, as its own environment does
    obs, info = first.reset(seed=3)
    alone = ScenarioEnv(Suite.open(suite).scenarios("train")[info["scenario_id"]])
    assert alone.reset(seed=3) == (obs, info)


def test_options_pick_the_scenario(suite: Path) -> None:
    env = gym.make("envsim/Suite-v0", suite=str(suite), split="train")
    for scenario_id in sorted(ids_of("train")):
        assert env.reset(seed=0, options={"scenario_id": scenario_id})[1]["scenario_id"] == scenario_id
    with pytest.raises(UnknownNameError, match=r"'RetailCancelXA3' is not a scenario of split 'train'"):
        env.reset(options={"scenario_id": "RetailCancelXA3"})  # a dev scenario
    with pytest.raises(ValueError, match="the only option is 'scenario_id'"):
        env.reset(options={"scenario": "RetailCancelXA1"})


def test_the_scripted_agent_solves_a_suite_episode_and_info_names_the_scenario(suite: Path) -> None:
    env = SuiteEnv(suite, "train")
    for seed in range(6):
        trajectory, breakdown = run_episode(env, ScriptedAgent(), seed=seed)  # type: ignore[arg-type]
        assert breakdown.outcome == "success" and breakdown.total == 1.0
        assert trajectory.scenario_id == env.scenario.id == env.trajectory().scenario_id
    env.reset(seed=0)
    *_, info = env.step("Hello, how can I help?")
    assert info["scenario_id"] == env.scenario.id


def test_a_shorter_time_limit_ends_the_inner_episode_with_its_reward(suite: Path) -> None:
    env = gym.make("envsim/Suite-v0", suite=str(suite), split="train", max_episode_steps=2)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("Hello, how can I help?")
    assert not (terminated or truncated)
    _, reward, terminated, truncated, info = env.step("Could you tell me more?")
    assert truncated and not terminated
    assert info["end_reason"] == "max_turns" and reward == info["reward_breakdown"]["total"]
    assert env.unwrapped.trajectory().turns == 2


def test_the_environment_pickles_mid_episode(suite: Path) -> None:
    env = gym.make("envsim/Suite-v0", suite=str(suite), split="train")
    env.reset(seed=4)
    env.step("Hello, how can I help?")
    clone = pickle.loads(pickle.dumps(env))
    assert clone.step("What is your phone number?") == env.step("What is your phone number?")
    assert clone.unwrapped.trajectory() == env.unwrapped.trajectory()


def test_loaded_scenarios_are_cached_up_to_the_cache_size(suite: Path) -> None:
    env = SuiteEnv(suite, "train", cache_size=2)
    for scenario_id in sorted(ids_of("train")):
        env.reset(seed=0, options={"scenario_id": scenario_id})
        again = env.current
        env.reset(seed=1, options={"scenario_id": scenario_id})
        assert env.current is again
    assert len(env._envs) == 2


def test_step_before_reset_is_refused(suite: Path) -> None:
    with pytest.raises(RuntimeError, match="reset"):
        SuiteEnv(suite).step("hello")


# -- suite references -----------------------------------------------------------------------------


def test_references_name_a_folder_or_a_split(suite: Path) -> None:
    assert parse_reference(str(suite)) == (suite, None)
    assert parse_reference(f"{suite}:dev") == (suite, "dev")
    assert parse_reference("RetailCancelPendingOrder") is None
    assert parse_reference(f"{suite}/nowhere:dev") is None
    assert {p.stem for p in reference_files(f"{suite}:dev") or []} == ids_of("dev")
    with pytest.raises(SuiteError, match="no split 'val'"):
        reference_files(f"{suite}:val")


def test_resolving_a_suite_registers_its_scenarios(suite: Path, clean_registry: None) -> None:
    ids = resolve_ids(["MedicalSupplyPanicCaller", f"{suite}:train"])
    assert ids[0] == "MedicalSupplyPanicCaller" and set(ids[1:]) == ids_of("train")
    assert gym.make("envsim/RetailCancelXA1-v0").unwrapped.scenario.id == "RetailCancelXA1"
    assert ScenarioEnv("BankingLostCardXC1").scenario.source is not None
    assert resolve_ids([f"{suite}:train"]) == ids[1:]  # registering again is a no-op


def test_a_suite_id_registered_for_another_file_is_refused(tmp_path: Path, clean_registry: None) -> None:
    resolve_ids([str(make_suite(tmp_path / "one"))])
    two = make_suite(tmp_path / "two")
    (two / "dev" / "aaa").mkdir()  # listed before the files that clash
    (two / "dev" / "aaa" / "Fresh.yaml").write_text(instance_text("RetailCancel", "NEW"), encoding="utf-8")
    with pytest.raises(SuiteError, match=r"'RetailCancelX\w+' is already registered for .*/one/"):
        resolve_ids([str(two)])
    assert "envsim/RetailCancelXNEW-v0" not in gym.registry  # nothing of the suite was registered


def test_a_suite_cannot_take_a_shipped_id(tmp_path: Path, clean_registry: None) -> None:
    folder = tmp_path / "shadow"
    folder.mkdir()
    text = instance_text("RetailCancel", "Z").replace("id: RetailCancelXZ", "id: RetailCancelPendingOrder")
    (folder / "x.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SuiteError, match="'RetailCancelPendingOrder' is already registered"):
        resolve_ids([str(folder)])


def test_import_envsim_registers_the_suite_environment() -> None:
    assert envsim.__name__ == "envsim" and gym.spec("envsim/Suite-v0").entry_point == "envsim.suite:SuiteEnv"


def test_a_scenario_named_suite_is_left_out_naming_the_reserved_id(tmp_path: Path) -> None:
    from envsim.registration import scan

    path = tmp_path / "suite.yaml"
    path.write_text(instance_text("RetailCancel", "Z").replace("id: RetailCancelXZ", "id: Suite"), encoding="utf-8")
    found = scan([path])
    assert found.scenarios == {}
    assert str(found.skipped[0].problem).startswith(f"{path}:")
    assert "'Suite' is reserved: envsim/Suite-v0 is the suite environment" in str(found.skipped[0].problem)


def test_envsim_run_plays_a_split(suite: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    command = [sys.executable, "-c", "from envsim.cli import main; main()", "run", f"{suite}:train", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert set(summary["per_scenario"]) == ids_of("train") and summary["success_rate"] == 1.0


def test_a_suite_may_name_the_shipped_files_by_another_path(clean_registry: None) -> None:
    from envsim.registration import discover

    shipped = discover()["RetailCancelPendingOrder"][0].parent  # registered at import by its own path
    relative = Path(os.path.relpath(shipped))
    assert "RetailCancelPendingOrder" in resolve_ids([str(relative)])


def test_a_split_that_suite_json_names_but_that_is_empty_says_so(suite: Path) -> None:
    import json

    manifest = json.loads((suite / "suite.json").read_text(encoding="utf-8"))
    manifest["splits"]["holdout"] = 0
    (suite / "suite.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(
        SuiteError, match=r"split 'holdout' of suite .* has no scenario files \(splits: train, dev, test\)"
    ):
        SuiteEnv(suite, "holdout")
