"""Judges a scenario names in ``reward.judges``: offline they are not run; with a judge model they score.

The judge model is played by litellm's custom-provider machinery (``judgetest``, see
:mod:`tests.reward.test_judge`): no network, no key.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml

import envsim  # noqa: F401 - registers the shipped scenarios
from envsim.agents import ScriptedAgent
from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, start_run
from envsim.batch.store import RunStore
from envsim.env import ScenarioEnv
from envsim.errors import EnvsimError, ScenarioError
from envsim.factory.draw import instances
from envsim.factory.family import load_family
from envsim.loader import load_scenario, load_scenario_text
from envsim.report import episode_view
from envsim.reward import Rubric
from envsim.reward.base import RewardBreakdown
from envsim.reward.judge import CACHE_ENV, CallLog
from envsim.rollout import run_episode
from envsim.rubric_schema import shipped_rubric, shipped_rubrics
from envsim.scenario import RewardSpec, Scenario
from tests.conftest import REPO, TINY_SCENARIO
from tests.reward.test_judge import CALL_COST, ScriptedJudgeLLM, install

MODEL = "judgetest/priced"


def empathy_reply(acknowledges: str = "pass", calm_guidance: int = 3) -> str:
    """A valid reply to the shipped empathy_panicked_caller rubric."""
    return json.dumps(
        {
            "acknowledges": {"rationale": f"acknowledges {acknowledges}", "score": acknowledges},
            "calm_guidance": {"rationale": f"guidance {calm_guidance}", "score": calm_guidance},
        }
    )


def with_reward(reward: dict[str, Any]) -> str:
    """The tiny scenario with a ``reward`` section."""
    return TINY_SCENARIO + yaml.safe_dump({"reward": reward}, sort_keys=False, width=200)


def write(tmp_path: Path, reward: dict[str, Any], name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(with_reward(reward), encoding="utf-8")
    return path


def play(env: ScenarioEnv, seed: int = 0) -> RewardBreakdown:
    """One episode of the scripted reference agent."""
    _, breakdown = run_episode(env, ScriptedAgent(0.0), seed=seed)
    return breakdown


def judge_env(reward: dict[str, Any], **options: Any) -> ScenarioEnv:
    """The tiny scenario's environment with its judges calling the test provider."""
    options.setdefault("cache", CallLog(None))
    options.setdefault("backoff", 0.0)
    return ScenarioEnv(load_scenario_text(with_reward(reward)), judge_model=MODEL, judge_options=options)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a scripted judge provider for one test."""
    return lambda script=None, default=None: install(monkeypatch, ScriptedJudgeLLM(script, default))


# -- offline: not run -------------------------------------------------------------------------


def test_shipped_scenario_runs_offline_with_its_judge_not_run() -> None:
    env = gym.make("envsim/MedicalSupplyPanicCaller-v0").unwrapped
    assert isinstance(env, ScenarioEnv) and env.scenario.reward.judges == {"empathy": "empathy_panicked_caller"}
    breakdown = play(env, seed=3)
    empathy = breakdown.components["empathy"]
    assert not empathy.ran and not empathy.judged and math.isnan(empathy.score)
    assert "not run: no judge model configured" in empathy.explanation
    assert breakdown.outcome == "success" and breakdown.total == 1.0 and "empathy" not in breakdown.gates
    # the same scenario without the judge scores the same: the judge that did not run changes nothing
    plain = env.scenario.model_copy(update={"reward": RewardSpec()})
    assert play(ScenarioEnv(plain), seed=3).total == breakdown.total
    # stored and read back, it is still "not run", never a number
    again = RewardBreakdown.model_validate_json(breakdown.model_dump_json())
    assert not again.components["empathy"].ran and again.components["empathy"].shown() == "not run"
    assert (
        '"ran":false' in breakdown.model_dump_json()
        and '"ran"' not in again.components["final_state"].model_dump_json()
    )


def test_a_weighted_judge_not_run_leaves_the_other_weights_renormalised() -> None:
    reward = {
        "judges": {"empathy": "empathy_panicked_caller"},
        "components": {"final_state": 0.5, "required_statements": 0.25, "empathy": 0.25},
    }
    breakdown = play(ScenarioEnv(load_scenario_text(with_reward(reward))))
    assert breakdown.components["empathy"].weight == 0.25 and not breakdown.components["empathy"].ran
    assert breakdown.total == pytest.approx(1.0) and breakdown.outcome == "success"  # not 0.75


def test_a_gate_judge_not_run_is_not_applied_and_is_no_judge_error() -> None:
    reward = {"judges": {"empathy": "empathy_panicked_caller"}, "gates": ["final_state", "empathy"]}
    breakdown = play(ScenarioEnv(load_scenario_text(with_reward(reward))))
    assert breakdown.gates == {"final_state": True} and breakdown.components["empathy"].gate
    assert breakdown.outcome == "success" and breakdown.total == 1.0


def test_an_env_with_a_judge_model_pickles_before_and_after_judging(
    provider: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    provider(default=empathy_reply())
    scenario = load_scenario_text(
        with_reward({"judges": {"empathy": "empathy_panicked_caller"}, "metrics": ["empathy"]})
    )
    env = ScenarioEnv(scenario, judge_model=MODEL)  # the judge (and its cache) is made on first use
    copy = pickle.loads(pickle.dumps(env))
    assert copy.rubric.functions["empathy"].model == MODEL  # type: ignore[attr-defined]
    assert play(env).components["empathy"].score == 1.0
    assert pickle.loads(pickle.dumps(env)).rubric.functions["empathy"]._judge is None  # type: ignore[attr-defined]


# -- with a judge model -----------------------------------------------------------------------


def test_gym_make_takes_the_judge_model(provider: Any) -> None:
    judge = provider(default=empathy_reply("pass", 2))
    options = {"cache": CallLog(None), "backoff": 0.0}
    env = gym.make("envsim/MedicalSupplyPanicCaller-v0", judge_model=MODEL, judge_options=options).unwrapped
    assert isinstance(env, ScenarioEnv)
    empathy = play(env, seed=3).components["empathy"]
    assert empathy.ran and empathy.score == pytest.approx(0.75) and len(judge.requests) == 1
    env.reset(seed=3)
    mid = env.score().components["empathy"]  # scored mid-episode: the judge waits for the end
    assert not mid.ran and "has not ended" in mid.explanation and len(judge.requests) == 1


def test_with_a_judge_model_the_judge_scores_and_its_weight_applies(provider: Any) -> None:
    judge = provider(default=empathy_reply("fail", 1))
    env = judge_env({"judges": {"empathy": "empathy_panicked_caller"}, "components": {"final_state": 1, "empathy": 1}})
    breakdown = play(env)
    empathy = breakdown.components["empathy"]
    assert empathy.ran and empathy.judged and empathy.score == 0.0 and empathy.weight == 1.0
    assert breakdown.total == pytest.approx(0.5) and breakdown.outcome == "failure"
    assert breakdown.measures["judge.cost"] == pytest.approx(CALL_COST)
    assert len(judge.requests) == 1 and judge.requests[0]["model"] == "priced"
    prompt = judge.requests[0]["messages"][1]["content"]
    assert "empathy_panicked_caller" in prompt and "calm_guidance" in prompt and "help is on the way" in prompt


def test_with_a_judge_model_a_failed_gate_zeroes_the_total(provider: Any) -> None:
    provider(default=empathy_reply("fail", 3))
    env = judge_env({"judges": {"empathy": "empathy_panicked_caller"}, "gates": ["final_state", "empathy"]})
    breakdown = play(env)
    assert breakdown.gates == {"final_state": True, "empathy": False}
    assert breakdown.total == 0.0 and breakdown.outcome == "failure"
    provider(default=empathy_reply("pass", 3))
    assert (
        play(judge_env({"judges": {"empathy": "empathy_panicked_caller"}, "gates": ["empathy"]})).outcome == "success"
    )


def test_a_judge_that_fails_is_a_judge_error_not_a_zero(provider: Any) -> None:
    provider(default="no JSON here")
    env = judge_env({"judges": {"empathy": "empathy_panicked_caller"}, "components": {"final_state": 1, "empathy": 1}})
    breakdown = play(env)
    empathy = breakdown.components["empathy"]
    assert empathy.ran and not empathy.judged and empathy.explanation.startswith("judge_error (malformed)")
    assert breakdown.outcome == "judge_error"


def test_an_inline_rubric_and_a_rubric_file_relative_to_the_scenario(provider: Any, tmp_path: Path) -> None:
    rubric = {
        "name": "brief",
        "criteria": [
            {"id": "short", "description": "Short?", "scale": "pass_fail", "levels": {"pass": "Yes.", "fail": "No."}}
        ],
    }
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "brief.yaml").write_text(yaml.safe_dump(rubric), encoding="utf-8")
    path = write(tmp_path, {"judges": {"inline": rubric, "file": "rubrics/brief.yaml"}, "metrics": ["inline", "file"]})
    scenario = load_scenario(path)
    # the file is read in at load time: the scenario carries the rubric wherever it goes
    assert scenario.reward.judges == {"inline": rubric, "file": rubric}
    provider(default=json.dumps({"short": {"rationale": "terse", "score": "pass"}}))
    env = ScenarioEnv(scenario, judge_model=MODEL, judge_options={"cache": CallLog(None), "backoff": 0.0})
    breakdown = play(env)
    assert breakdown.components["inline"].score == 1.0 and breakdown.components["file"].score == 1.0
    assert breakdown.total == 1.0 and breakdown.outcome == "success"


def test_rubric_text_is_data_in_the_judge_prompt_never_a_template(provider: Any) -> None:
    judge = provider(default=json.dumps({"short": {"rationale": "ok", "score": "pass"}}))
    rubric = {
        "name": "sneaky",
        "description": "{{ 7 * 7 }} {% for x in range(3) %}loop{% endfor %}",
        "criteria": [
            {
                "id": "short",
                "description": "{{ ''.__class__ }}",
                "scale": "pass_fail",
                "levels": {"pass": "Y", "fail": "N"},
            }
        ],
    }
    assert play(judge_env({"judges": {"sneaky": rubric}, "metrics": ["sneaky"]})).components["sneaky"].score == 1.0
    prompt = "".join(m["content"] for m in judge.requests[0]["messages"])
    assert "{{ 7 * 7 }} {% for x in range(3) %}loop{% endfor %}" in prompt and "{{ ''.__class__ }}" in prompt
    assert "49" not in prompt and "looploop" not in prompt


def test_batch_runs_judge_with_judge_model_and_record_not_run_without(provider: Any, tmp_path: Path) -> None:
    path = write(tmp_path, {"judges": {"empathy": "empathy_panicked_caller"}, "metrics": ["empathy"]})
    judge = provider(default=empathy_reply("pass", 2))
    judged = tmp_path / "judged"
    config = GenerateConfig(judge_model=MODEL)
    summary = execute(start_run(judged, [str(path)], config, RunOptions(concurrency=2), episodes=2))
    assert summary.outcomes == {"success": 2} and len(judge.requests) == 2
    for record in RunStore.open(judged, lock=False).scan().records.values():
        assert record.breakdown is not None and record.models["judge"] == MODEL
        empathy = record.breakdown.components["empathy"]
        assert empathy.ran and empathy.score == pytest.approx(0.75) and empathy.weight == 0.0
        assert record.usage["judge"].calls == 1
    offline = tmp_path / "offline"
    execute(start_run(offline, [str(path)], GenerateConfig(), RunOptions(concurrency=2), episodes=2))
    records = RunStore.open(offline, lock=False).scan().records.values()
    assert all(r.breakdown is not None and not r.breakdown.components["empathy"].ran for r in records)
    assert len(judge.requests) == 2 and all(r.outcome == "success" for r in records)
    shown = {c["name"]: c["score"] for c in episode_view(next(iter(records)), "panicked_caller")["components"]}
    assert shown["empathy"] == "not run" and shown["final_state"] == "1.00"


def test_judge_model_without_any_judge_to_run_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(TINY_SCENARIO, encoding="utf-8")
    with pytest.raises(EnvsimError, match=r"no scenario of the run names a judge"):
        start_run(tmp_path / "run", [str(plain)], GenerateConfig(judge_model=MODEL), RunOptions(), episodes=1)


# -- validation -------------------------------------------------------------------------------


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return [str(p) for p in caught.value.problems]


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text in line)


def test_unknown_rubric_is_located_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, {"judges": {"empathy": "empathy_panicked_calle"}, "metrics": ["empathy"]})
    found = problems(path)
    assert len(found) == 1
    assert found[0].startswith(f"{path}:{line_of(path, 'empathy_panicked_calle')}:")
    assert (
        ": reward.judges.empathy: unknown rubric 'empathy_panicked_calle' (did you mean 'empathy_panicked_caller'?)"
        in (found[0])
    )


def test_missing_and_absolute_rubric_files_are_located(tmp_path: Path) -> None:
    path = write(tmp_path, {"judges": {"a": "rubrics/none.yaml", "b": "/etc/rubric.yaml"}, "metrics": ["a", "b"]})
    found = problems(path)
    assert any("reward.judges.a: rubric file 'rubrics/none.yaml' not found" in p for p in found)
    assert any(
        "reward.judges.b: rubric file '/etc/rubric.yaml': give a path relative to the scenario" in p for p in found
    )


def test_a_bad_rubric_file_is_located_in_the_scenario_and_in_the_rubric(tmp_path: Path) -> None:
    (tmp_path / "tone.yaml").write_text(
        "name: tone\ncriteria:\n  - id: polite\n    description: Polite?\n    scale: pass_fail\n"
        "    levels: {pass: Polite., fail: Rude.}\n    wieght: 2\n",
        encoding="utf-8",
    )
    path = write(tmp_path, {"judges": {"tone": "tone.yaml"}, "metrics": ["tone"]})
    [found] = problems(path)
    assert (
        f"{path}:{line_of(path, 'tone.yaml')}:" in found
        and "reward.judges.tone: rubric file 'tone.yaml' is invalid" in found
    )
    assert f"{tmp_path / 'tone.yaml'}:7:5: criteria.0.wieght: unknown field (did you mean 'weight'?)" in found


def test_a_bad_inline_rubric_is_located(tmp_path: Path) -> None:
    rubric = {"name": "x", "criteria": [{"id": "a", "description": "d", "scale": "1-5", "levels": {1: "low"}}]}
    path = write(tmp_path, {"judges": {"bad": rubric}, "metrics": ["bad"]})
    [found] = problems(path)
    assert f"{path}:{line_of(path, 'name: x')}:" in found  # where the inline rubric starts
    assert "reward.judges.bad: invalid inline rubric: criteria.0: levels: say what '5' mean" in found


def test_a_judge_without_a_role_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"judges": {"empathy": "empathy_panicked_caller"}, "metrics": ["containment"]})
    [found] = problems(path)
    assert "reward.judges.empathy: judge 'empathy' is never run: name it in reward.gates" in found
    spec = RewardSpec(judges={"empathy": "empathy_panicked_caller"})
    with pytest.raises(ValueError, match="is never run"):
        Rubric.from_spec(spec)


def test_judge_names_are_checked_and_gates_may_name_judges(tmp_path: Path) -> None:
    reward = {"judges": {"final_state": "empathy_panicked_caller", "judge": "empathy_panicked_caller"}}
    path = write(tmp_path, {**reward, "gates": ["final_state", "judge"]})
    found = problems(path)
    assert any(
        "reward.judges.final_state: judge 'final_state' has the name of another reward component" in p for p in found
    )
    assert any("reward.judges.judge: judge 'judge' has the name of another reward component" in p for p in found)
    fine = write(tmp_path, {"judges": {"calm": "clear_de_escalation"}, "gates": ["final_state", "calm"]}, "ok.yaml")
    assert load_scenario(fine).reward.gates == ["final_state", "calm"]


def test_only_judges_counted_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path, {"judges": {"empathy": "empathy_panicked_caller"}, "gates": ["empathy"], "components": {"empathy": 1}}
    )
    assert any("every gate and weighted component is a judge" in p for p in problems(path))


def test_shipped_rubrics_load() -> None:
    names = shipped_rubrics()
    assert {"empathy_panicked_caller", "clear_de_escalation", "policy_explanation_on_refusal"} <= set(names)
    assert all(shipped_rubric(name).name == name for name in names)


def test_the_json_schema_shows_the_inline_rubric() -> None:
    judges = Scenario.model_json_schema()["$defs"]["RewardSpec"]["properties"]["judges"]["anyOf"][0]
    name_or_path, inline = judges["additionalProperties"]["anyOf"]
    assert name_or_path == {"type": "string"} and inline["additionalProperties"] is False
    assert "criteria" in inline["required"] and "$ref" not in json.dumps(inline)  # self-contained for editors
    assert inline["properties"]["criteria"]["items"]["properties"]["scale"]["type"] == "string"


def test_a_family_names_a_rubric_file_relative_to_the_family_file(tmp_path: Path) -> None:
    family = REPO / "scenarios" / "families" / "medical_supply" / "panic_collapse.yaml"
    text = family.read_text(encoding="utf-8")
    assert "judges: {empathy: empathy_panicked_caller}" in text
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "empathy.yaml").write_text(
        yaml.safe_dump(shipped_rubric("empathy_panicked_caller").model_dump(exclude_unset=True)), encoding="utf-8"
    )
    path = tmp_path / "panic_collapse.yaml"
    named = text.replace("{empathy: empathy_panicked_caller}", "{empathy: rubrics/empathy.yaml}")
    path.write_text(named, encoding="utf-8")
    [candidate] = instances(load_family(path), 1, 0)
    assert candidate.problem is None and candidate.scenario is not None
    expected = shipped_rubric("empathy_panicked_caller").model_dump(exclude_unset=True)
    assert candidate.scenario.reward.judges == {"empathy": expected}
