"""Role detection and the deterministic replies of the test server, in process."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envsim.env import ScenarioEnv
from envsim.registration import discover, load_registered
from envsim.reward.judge import CallLog, Judge, load_rubric, reply_model
from envsim.scenario import Scenario
from envsim.testing.playbook import (
    DEFAULT_CLOSING,
    Playbook,
    ScenarioIndex,
    detect_role,
    read_scenario,
)
from envsim.trajectory import Trajectory
from envsim.user.faults import checker_messages
from envsim.user.llm import LLMUser

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return Playbook(ScenarioIndex())


def _agent_turns(playbook: Playbook, scenario_id: str, seed: int = 0) -> tuple[ScenarioEnv, list[dict[str, Any]]]:
    """Play an episode with the playbook's agent straight into the env (no HTTP)."""
    env = ScenarioEnv(scenario_id)
    _, info = env.reset(seed=seed)
    actions = []
    for _ in range(env.scenario.max_turns):
        action = playbook.reply("agent", info["messages"], tools=info["tools"])
        actions.append(action)
        *_, info = env.step(action)
        if "end_reason" in info:
            break
    return env, actions


# -- roles ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "role"),
    [
        ("openai/envsim-agent", "agent"),
        ("hosted_vllm/envsim-user", "user"),
        ("envsim-judge", "judge"),
        ("openai/ENVSIM-CHECKER", "checker"),
        ("envsim-generic", "generic"),
    ],
)
def test_model_name_forces_the_role(model: str, role: str) -> None:
    agent_prompt = [{"role": "system", "content": "You are a customer-service agent for retail."}]
    assert detect_role(model, agent_prompt) == role


def test_header_forces_the_role_unless_the_model_name_does() -> None:
    assert detect_role("gpt-4o", [], {"x-envsim-role": "judge"}) == "judge"
    assert detect_role("openai/envsim-user", [], {"x-envsim-role": "judge"}) == "user"
    assert detect_role("gpt-4o", [], {"x-envsim-role": "nonsense"}) == "generic"


def test_envsim_prompts_give_the_role_away() -> None:
    scenario = load_registered("MedicalSupplyPanicCaller")
    _, info = ScenarioEnv(scenario).reset(seed=0)
    assert detect_role("gpt-4o", info["messages"], has_tools=True) == "agent"

    user = LLMUser("openai/gpt-4o-mini")
    user.reset(scenario, np.random.default_rng(0))
    user_prompt = [{"role": "system", "content": user.system_prompt()}, *user.conversation("Hello?", [])]
    assert detect_role("gpt-4o", user_prompt) == "user"

    judge = Judge(load_rubric(REPO / "tests/data/judge_rubric.yaml"), cache=CallLog(None))
    trajectory = Trajectory(scenario_id=scenario.id, seed=0, messages=info["messages"])
    assert detect_role("gpt-4o", judge.messages(trajectory)) == "judge"

    check = checker_messages("Help!", scenario=scenario, revealed=(), agent_message="Hi", history=[])
    assert detect_role("gpt-4o", check) == "checker"

    assert detect_role("gpt-4o", [{"role": "user", "content": "hi"}]) == "generic"
    assert detect_role("gpt-4o", [{"role": "user", "content": "hi"}], has_tools=True) == "agent"


# -- agent ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario_id", sorted(discover()))
def test_replaying_agent_solves_every_shipped_scenario(playbook: Playbook, scenario_id: str) -> None:
    env, actions = _agent_turns(playbook, scenario_id)
    assert env.score().total == 1.0, env.score().components
    assert 3 <= len(actions) <= 8
    assert any(a.get("tool_calls") for a in actions)  # native tool calls, not JSON text


def test_replaying_agent_identifies_scenarios_that_share_a_policy(playbook: Playbook) -> None:
    shared = [group for group in playbook.index.by_prompt.values() if len(group) > 1]
    assert shared, "the shipped scenarios have policies shared by several scenarios"
    for group in shared:
        for scenario in group:
            _, info = ScenarioEnv(scenario).reset(seed=0)
            assert playbook.index.for_agent(info["messages"]) is scenario


def test_a_step_lost_to_a_fault_is_tried_again(playbook: Playbook) -> None:
    env = ScenarioEnv("RetailCancelPendingOrder")
    _, info = env.reset(seed=0)
    first = playbook.reply("agent", info["messages"], tools=info["tools"])
    *_, info = env.step(first)
    planned = playbook.reply("agent", info["messages"], tools=info["tools"])
    assert planned["tool_calls"]
    *_, info = env.step({"role": "assistant", "content": ""})  # an injected empty reply reaches the user
    again = playbook.reply("agent", info["messages"], tools=info["tools"])
    assert [c["function"] for c in again["tool_calls"]] == [c["function"] for c in planned["tool_calls"]]
    assert again["tool_calls"][0]["id"] != planned["tool_calls"][0]["id"]  # ids stay unique in the conversation


def test_scenario_header_names_the_scenario(playbook: Playbook) -> None:
    _, info = ScenarioEnv("RetailCancelPendingOrder").reset(seed=0)
    messages = [{"role": "system", "content": "You are a customer-service agent. Be nice."}, *info["messages"][1:]]
    unknown = playbook.reply("agent", messages, tools=info["tools"])
    named = playbook.reply(
        "agent", messages, tools=info["tools"], headers={"x-envsim-scenario": "RetailCancelPendingOrder"}
    )
    assert unknown["tool_calls"][0]["function"]["name"] == info["tools"][0]["function"]["name"]  # generic policy
    assert named["content"].startswith("To help you, could you give me your email")


def test_generic_agent_calls_the_first_tool_then_closes() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "set_mode",
                "parameters": {
                    "type": "object",
                    "properties": {"mode": {"enum": ["a", "b"]}, "n": {"type": "integer"}, "note": {"type": "string"}},
                    "required": ["mode", "n"],
                },
            },
        }
    ]
    playbook = Playbook(ScenarioIndex(scenarios=[]))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    call = playbook.reply("agent", messages, tools=tools)["tool_calls"][0]["function"]
    assert call == {"name": "set_mode", "arguments": json.dumps({"mode": "a", "n": 1})}
    messages += [{"role": "assistant", "content": None, "tool_calls": []}, {"role": "tool", "content": "{}"}]
    assert playbook.reply("agent", messages, tools=tools)["content"] == DEFAULT_CLOSING


def test_agent_error_rate_makes_imperfect_but_reproducible_runs() -> None:
    index = ScenarioIndex(scenarios=[load_registered("RetailCancelPendingOrder")])
    totals = []
    for seed in range(12):
        playbook = Playbook(index, seed=seed, agent_error_rate=0.6)
        env, _ = _agent_turns(playbook, "RetailCancelPendingOrder")
        again, _ = _agent_turns(Playbook(index, seed=seed, agent_error_rate=0.6), "RetailCancelPendingOrder")
        assert env.score().total == again.score().total
        totals.append(env.score().total)
    assert min(totals) < 1.0


# -- user -----------------------------------------------------------------------------------------


def _user_prompt(scenario: Scenario, agent_messages: Sequence[str]) -> list[dict[str, Any]]:
    user = LLMUser("openai/gpt-4o-mini")
    history = [{"role": "user", "content": user.reset(scenario, np.random.default_rng(0))}]
    for said in agent_messages[:-1]:
        history += [{"role": "assistant", "content": said}, {"role": "user", "content": "..."}]
    return [{"role": "system", "content": user.system_prompt()}, *user.conversation(agent_messages[-1], history)]


def test_user_gives_asked_facts_and_ends_with_the_stop_marker(playbook: Playbook) -> None:
    scenario = load_registered("RetailCancelPendingOrder")
    asks = "Could you give me your email address and order number?"
    reply = playbook.reply("user", _user_prompt(scenario, [asks]))["content"]
    for fact in scenario.user.facts:
        assert fact.value in reply
    assert "###STOP###" not in reply
    closing = f"{scenario.user.satisfied_by[0]} Is there anything else I can help you with?"
    done = playbook.reply("user", _user_prompt(scenario, [asks, closing]))["content"]
    assert done.endswith("###STOP###") and scenario.user.closing in done


def test_generic_user_answers_from_the_prompt(playbook: Playbook) -> None:
    system = (
        "You are role-playing a customer.\n\n# What you want\nA refund.\n\n# What you know\n"
        "- order id: #W77\n- email: a@b.c\n\n# Format\nEnd with ##END##. Never write ##END## otherwise."
    )
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "[start]"}]
    ask = [*messages, {"role": "assistant", "content": "I need a refund"}, {"role": "user", "content": "Your email?"}]
    assert playbook.reply("user", ask)["content"] == "My email is a@b.c."
    close = [*messages, {"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Anything else?"}]
    assert playbook.reply("user", close)["content"].endswith("##END##")


# -- judge ----------------------------------------------------------------------------------------


def test_judge_reply_validates_against_the_rubric(playbook: Playbook) -> None:
    rubric = load_rubric(REPO / "tests/data/judge_rubric.yaml")
    judge = Judge(rubric, cache=CallLog(None))
    messages = judge.messages(Trajectory(scenario_id="X", seed=0, messages=[{"role": "user", "content": "hi"}]))
    for fmt in (
        None,
        {"type": "json_schema", "json_schema": {"schema": reply_model(rubric).model_json_schema(by_alias=True)}},
    ):
        best = json.loads(playbook.reply("judge", messages, response_format=fmt)["content"])
        assert {k: v["score"] for k, v in best.items()} == {"resolution": 5, "policy": "pass", "communication": 3}
    worst = Playbook(playbook.index, judge_score="min").reply("judge", messages)["content"]
    assert {k: v["score"] for k, v in json.loads(worst).items()} == {
        "resolution": 1,
        "policy": "fail",
        "communication": 1,
    }


def test_read_scenario_matches_the_loader() -> None:
    path, _ = discover()["MedicalSupplyPanicCaller"]
    assert read_scenario(path) == load_registered("MedicalSupplyPanicCaller")
