"""Endings are rules (issue 19): a mock user is satisfied when the scenario's goal is met in the world."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from envsim.env import ScenarioEnv
from envsim.registration import load_registered
from envsim.scenario import Scenario
from envsim.transcripts.corpus import corpus_dir
from envsim.user.base import UserSimulator
from envsim.user.faults import STOP_MARKER
from envsim.user.llm import LLMUser
from envsim.user.scripted import ScriptedUser
from envsim.user.transcript.user import TranscriptUser
from tests.conftest import DISPATCH, LOOKUP

CLOSING = "Is there anything else I can help you with?"
REFUND = [
    '{"name": "find_customer_by_phone", "arguments": {"phone": "720-555-0188"}}',
    '{"name": "get_order", "arguments": {"order_id": "#W0004"}}',
    '{"name": "refund_items", "arguments": {"order_id": "#W0004", '
    '"items": [{"product_id": "P049", "quantity": 1}], "reason": "damaged"}}',
]


def _transcript_user() -> TranscriptUser:
    folder = corpus_dir()
    assert folder is not None and folder.is_dir(), "transcript corpus not found"  # fails, never skips
    return TranscriptUser(folder)


def _fallback_user(tmp_path: Path) -> TranscriptUser:
    logging.getLogger("envsim.user.transcript").disabled = True  # the one warning about the missing corpus
    try:
        return TranscriptUser(tmp_path / "no-corpus-here")
    finally:
        logging.getLogger("envsim.user.transcript").disabled = False


USERS: dict[str, Callable[[Path], UserSimulator]] = {
    "scripted": lambda _: ScriptedUser(),
    "transcript": lambda _: _transcript_user(),
    "transcript-fallback": _fallback_user,
}


@pytest.fixture(params=sorted(USERS))
def make_user(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], UserSimulator]:
    """Each offline mock user (the transcript user with its corpus, and with its scripted fallback)."""
    return lambda: USERS[request.param](tmp_path)


def test_panicked_caller_does_not_hang_up_on_the_phrase_without_dispatch(
    tiny_scenario: Scenario, make_user: Callable[[], UserSimulator]
) -> None:
    env = ScenarioEnv(tiny_scenario, user=make_user())
    env.reset(seed=0)
    env.step("What is your phone number?")
    env.step(LOOKUP)
    for _ in range(2):  # the phrase alone, twice: the caller stays on the line
        _, _, terminated, truncated, _ = env.step("Help is on the way.")
        assert not terminated and not truncated
    assert env.goal_met() is False
    _, reward, terminated, _, info = env.step(DISPATCH)  # the dispatch ends the episode (env side)
    assert terminated and info["end_reason"] == "agent_ended" and info["outcome"] == "success"


def test_registered_panic_caller_does_not_end_the_call_on_the_phrase_alone_without_dispatch(
    make_user: Callable[[], UserSimulator],
) -> None:
    """The issue's acceptance test, on the shipped medical-supply panic scenario: told "help is on the way" without
    a dispatch, the caller neither closes satisfied nor is calmed; it demands help, then hangs up within its
    patience, and the episode is a failure."""
    scenario = load_registered("MedicalSupplyPanicCaller")
    user = make_user()
    env = ScenarioEnv(scenario, user=user)
    env.reset(seed=0)
    info: dict[str, object] = {}
    for _ in range(scenario.max_turns):
        _, _, terminated, truncated, info = env.step("Help is on the way, stay calm.")
        if terminated or truncated:
            break
    assert isinstance(user, ScriptedUser | TranscriptUser)
    state = user.affect_state
    assert state is not None and state.gives_up and state.demanded_human and not state.resolved
    assert env.trajectory().affects[1:] == ["panicked"] * (len(env.trajectory().affects) - 1)
    assert env.trajectory().messages[-1]["content"] != scenario.user.closing
    assert info["end_reason"] == "user_done" and info["outcome"] == "failure"
    assert env.goal_met() is False


def test_refund_user_does_not_close_before_the_refund_and_closes_after(
    make_user: Callable[[], UserSimulator],
) -> None:
    env = ScenarioEnv("RetailRefundDamagedMug", user=make_user())
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(CLOSING)  # "anything else", nothing done yet
    assert not terminated and not truncated
    for call in REFUND[:2]:  # the reads alone are not the goal
        env.step(call)
    _, _, terminated, _, _ = env.step(CLOSING)
    assert not terminated and env.goal_met() is False
    env.step(REFUND[2])
    assert env.goal_met() is True
    _, _, terminated, _, info = env.step(CLOSING)
    assert terminated and info["end_reason"] == "user_done"


def test_goal_met_without_phrases_closes_on_the_next_message() -> None:
    scenario = load_registered("RetailRefundDamagedMug")
    bare = scenario.model_copy(update={"user": scenario.user.model_copy(update={"satisfied_by": []})})
    env = ScenarioEnv(bare, user=ScriptedUser(typos=False))
    env.reset(seed=0)
    assert not env.step("Thanks for waiting.")[2]  # no phrases and no writes: never satisfied
    for call in REFUND:
        env.step(call)
    _, _, terminated, _, info = env.step("Done.")
    assert terminated and info["end_reason"] == "user_done"
    assert env.trajectory().messages[-1]["content"] == scenario.user.closing


def test_no_write_scenario_closes_on_its_phrase_while_the_world_is_unchanged() -> None:
    env = ScenarioEnv("RetailAlreadyRefundedAnnoyed", user=ScriptedUser())
    env.reset(seed=0)
    assert env.goal_met() is None  # reads only: the world is no evidence, the phrase rule decides
    _, _, terminated, _, info = env.step(f"It was already refunded. {CLOSING}")
    assert terminated and info["end_reason"] == "user_done"


def test_no_write_scenario_user_is_not_satisfied_once_the_world_was_wrongly_changed() -> None:
    env = ScenarioEnv("RetailAlreadyRefundedAnnoyed", user=ScriptedUser())
    env.reset(seed=0)
    result = env.step('{"name": "cancel_order", "arguments": {"order_id": "#W0001", "reason": "no_longer_needed"}}')
    assert '"status":"cancelled"' in result[0]  # a write the scenario does not expect
    assert env.goal_met() is False
    assert not env.step(CLOSING)[2]


def test_user_outside_an_environment_keeps_the_phrase_rule() -> None:
    user = ScriptedUser()
    user.reset(load_registered("MedicalSupplyPanicCaller"), np.random.default_rng(0))
    assert user.goal_met() is None
    assert user.reply("Help is on the way.", []).done


def test_a_pickled_environment_keeps_its_user_reading_its_own_world(tiny_scenario: Scenario) -> None:
    env = ScenarioEnv(tiny_scenario)
    env.reset(seed=0)
    env.step(LOOKUP)
    copy = pickle.loads(pickle.dumps(env))
    assert not copy.step("Help is on the way.")[2]
    assert copy.user.goal_met() is False and copy.goal_met() is False


def _llm_user(reply: str) -> LLMUser:
    return LLMUser("openai/gpt-4o-mini", max_retries=0, completion_options={"mock_response": reply})


def test_llm_user_stop_marker_does_not_end_the_call_before_the_goal(tiny_scenario: Scenario) -> None:
    env = ScenarioEnv(tiny_scenario, user=_llm_user(f"Oh thank god, thank you! {STOP_MARKER}"))
    env.reset(seed=0)
    env.step(LOOKUP)
    observation, _, terminated, truncated, _ = env.step("Help is on the way.")
    assert not terminated and not truncated and observation == "Oh thank god, thank you!"


def test_llm_user_stop_marker_ends_the_call_once_the_goal_is_met() -> None:
    env = ScenarioEnv("RetailRefundDamagedMug", user=_llm_user(f"Great, thanks! {STOP_MARKER}"))
    env.reset(seed=0)
    for call in REFUND:
        env.step(call)
    _, _, terminated, _, info = env.step(CLOSING)
    assert terminated and info["end_reason"] == "user_done"
