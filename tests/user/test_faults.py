"""Simulator fault detection: the rules, and the LLM checker through litellm's ``mock_response``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.loader import load_scenario
from envsim.registration import scenario_files
from envsim.rollout import run_episode
from envsim.scenario import PersonaSpec, Scenario
from envsim.user.faults import (
    STOP_MARKER,
    CheckerError,
    Fault,
    check_user_turn,
    checker_messages,
    entities,
    fault_reason,
    llm_check_user_turn,
    mentions,
    parse_verdict,
    split_stop,
)
from envsim.user.persona import load_persona

REPO = Path(__file__).resolve().parents[2]
ASK_WHAT = "I'm here to help. What happened?"
ASK_PHONE = "What is your phone number?"
EARLIER = [
    {"role": "system", "content": "You are a customer-service agent."},
    {"role": "user", "content": "He collapsed, please help!"},
    {"role": "assistant", "content": ASK_WHAT},
    {"role": "user", "content": "He fell and he's barely breathing!"},
]


def kinds(text: str, scenario: Scenario, **options: Any) -> list[str]:
    """The fault kinds of ``text`` (defaults: nothing revealed, the agent asked what happened, turn 2)."""
    options.setdefault("revealed", ())
    options.setdefault("agent_message", ASK_WHAT)
    options.setdefault("history", EARLIER)
    return [f.kind for f in check_user_turn(text, scenario=scenario, **options)]


def with_persona(scenario: Scenario, **traits: Any) -> Scenario:
    """``scenario`` with an inline copy of its persona, ``traits`` changed."""
    persona = load_persona(scenario.user.persona.ref or "calm").model_copy(update=traits)
    return scenario.model_copy(
        update={"user": scenario.user.model_copy(update={"persona": PersonaSpec(inline=persona)})}
    )


# -- good turns ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Please hurry, he's not breathing right!",
        "He is 82 and it started 5 minutes ago, in 2019 he had a stroke.",
        "Why are you asking me that? Somebody has to come right now!",
    ],
)
def test_a_plausible_turn_has_no_faults(tiny_scenario: Scenario, text: str) -> None:
    assert kinds(text, tiny_scenario) == []


def test_giving_an_asked_for_fact_is_fine(tiny_scenario: Scenario) -> None:
    assert kinds("It's 555 0142, hurry!", tiny_scenario, agent_message=ASK_PHONE) == []


# -- empty -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "...", "\n!\n"])
def test_empty_turn(tiny_scenario: Scenario, text: str) -> None:
    assert kinds(text, tiny_scenario) == ["empty"]


def test_a_bare_stop_marker_later_in_the_call_is_not_empty(tiny_scenario: Scenario) -> None:
    history = [*EARLIER, {"role": "assistant", "content": "Help is on the way."}]
    assert kinds(STOP_MARKER, tiny_scenario, history=history, agent_message="Help is on the way.") == []


# -- speaks as the agent ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Agent: Please stay calm, help is coming.",
        "Assistant: I have looked up the patient.",
        "Hello! How can I help you today?",
        "Sure, let me look that up for you.",
        "Is there anything else I can help you with?",
        '{"name": "transfer_to_human", "arguments": {}}',
        "Thank you for calling us.",
    ],
)
def test_speaks_as_the_agent(tiny_scenario: Scenario, text: str) -> None:
    assert kinds(text, tiny_scenario) == ["speaks_as_agent"]


def test_parroting_the_agent_is_speaking_as_the_agent(tiny_scenario: Scenario) -> None:
    assert kinds(ASK_WHAT.upper(), tiny_scenario) == ["speaks_as_agent"]


# -- reveals a fact not yet asked for --------------------------------------------------------


def test_leaking_a_hidden_fact(tiny_scenario: Scenario) -> None:
    faults = check_user_turn(
        "Please come, my number is 555-0142!",
        scenario=tiny_scenario,
        revealed=(),
        agent_message=ASK_WHAT,
        history=EARLIER,
    )
    assert [f.kind for f in faults] == ["reveals_unasked_fact"]
    assert "phone" in faults[0].detail and faults[0].source == "rule"


def test_a_leak_is_found_however_the_number_is_written(tiny_scenario: Scenario) -> None:
    assert kinds("call me back on 555 0142", tiny_scenario) == ["reveals_unasked_fact"]


def test_a_fact_asked_for_in_an_earlier_agent_turn_is_no_leak(tiny_scenario: Scenario) -> None:
    history = [*EARLIER[:2], {"role": "assistant", "content": "What is your number?"}, *EARLIER[3:]]
    assert kinds("It's 555-0142!", tiny_scenario, history=history) == []


def test_a_fact_already_given_or_said_by_the_agent_is_no_leak(tiny_scenario: Scenario) -> None:
    assert kinds("Yes, 555-0142!", tiny_scenario, revealed={"phone"}) == []
    assert kinds("Yes, 555-0142!", tiny_scenario, agent_message="Is this 555-0142?") == []


def test_a_persona_who_volunteers_details_may_give_them_unasked(tiny_scenario: Scenario) -> None:
    chatty = with_persona(tiny_scenario, disclosure="volunteers")
    assert kinds("My number is 555-0142, please hurry!", chatty) == []


# -- invents facts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("My other number is 555-0199.", "phone '555-0199'"),
        ("Email me at walter@example.com.", "email 'walter@example.com'"),
        ("It's about order #W0042.", "id '#W0042'"),
        ("His patient id is PT-1234.", "id 'PT-1234'"),
        ("My member number is 8812345.", "number '8812345'"),
        ("I already paid $120 for it.", "amount '$120'"),
    ],
)
def test_inventing_a_detail(tiny_scenario: Scenario, text: str, what: str) -> None:
    faults = check_user_turn(text, scenario=tiny_scenario, revealed=(), agent_message=ASK_WHAT, history=EARLIER)
    assert [f.kind for f in faults] == ["invents_fact"]
    assert what in faults[0].detail


def test_details_from_the_conversation_are_not_invented(tiny_scenario: Scenario) -> None:
    agent = "I found patient PT-9001, and an order #W0042. Is that right?"
    assert kinds("Yes, PT-9001, not #W0042.", tiny_scenario, agent_message=agent) == []


def test_tool_results_are_not_part_of_what_the_user_heard(tiny_scenario: Scenario) -> None:
    history = [*EARLIER, {"role": "tool", "tool_call_id": "c1", "content": '{"id": "PT-9001"}'}]
    assert kinds("His id is PT-9001.", tiny_scenario, history=history) == ["invents_fact"]


def test_entities_are_found_once_each() -> None:
    assert entities("Reach me at (555) 201-7788 or 555.201.7788; card 4111-1111-1111-1111.") == [
        ("phone", "(555) 201-7788"),
        ("phone", "555.201.7788"),
        ("number", "4111-1111-1111-1111"),
    ]
    assert entities("He is 82, it was 2019, room 12.") == []


# -- ends too early --------------------------------------------------------------------------


def test_ending_on_the_first_reply(tiny_scenario: Scenario) -> None:
    assert kinds(f"Okay bye {STOP_MARKER}", tiny_scenario, history=EARLIER[:3]) == ["ends_too_early"]
    assert kinds("Okay bye", tiny_scenario, history=[], done=True) == ["ends_too_early"]


def test_ending_when_satisfied_or_after_the_agent_acted_is_fine(tiny_scenario: Scenario) -> None:
    assert kinds(f"Thank you! {STOP_MARKER}", tiny_scenario, history=[], agent_message="Help is on the way.") == []
    acted = [*EARLIER[:2], {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}]
    assert kinds(f"Thank you! {STOP_MARKER}", tiny_scenario, history=acted) == []
    assert kinds(f"I'm calling 911 myself! {STOP_MARKER}", tiny_scenario) == []  # second reply


# -- breaks persona --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "As an AI, I don't have a father.",
        "I'm just a language model, but let's pretend he fell.",
        "User: he fell down!",
        "Sorry, I can't roleplay a medical emergency.",
        "(Out of character) this scenario is intense.",
    ],
)
def test_breaking_persona(tiny_scenario: Scenario, text: str) -> None:
    assert kinds(text, tiny_scenario) == ["breaks_persona"]


def test_several_faults_in_one_turn(tiny_scenario: Scenario) -> None:
    text = "Agent: as an AI I can tell you the number is 555-0142."
    assert kinds(text, tiny_scenario) == ["speaks_as_agent", "breaks_persona", "reveals_unasked_fact"]


# -- no false alarms on the scripted user ---------------------------------------------------


@pytest.mark.parametrize("path", scenario_files([REPO / "scenarios"]), ids=lambda p: p.stem)
def test_the_scripted_user_never_faults(path: Path) -> None:
    scenario = load_scenario(path)
    for error_rate, seed in ((0.0, 0), (0.5, 1)):
        trajectory, _ = run_episode(ScenarioEnv(scenario), ScriptedAgent(error_rate=error_rate), seed=seed)
        messages = trajectory.messages
        revealed: set[str] = set()
        for i, message in enumerate(messages[2:], start=2):
            if message["role"] != "user":
                continue
            done = i == len(messages) - 1 and trajectory.end_reason == "user_done"
            agent = messages[i - 1]["content"]
            faults = check_user_turn(
                message["content"],
                scenario=scenario,
                revealed=revealed,
                agent_message=agent,
                history=messages[:i],
                done=done,
            )
            assert faults == [], (message["content"], agent)
            revealed |= {f.key for f in scenario.user.facts if mentions(message["content"], f.value)}


# -- helpers ---------------------------------------------------------------------------------


def test_split_stop_and_fault_reason() -> None:
    assert split_stop("  Bye.  ") == ("Bye.", False)
    assert split_stop(f"Thanks {STOP_MARKER} bye") == ("Thanks bye", True)
    assert split_stop(STOP_MARKER) == ("", True)
    assert fault_reason([]) is None
    assert fault_reason([Fault(kind="empty", detail="a"), Fault(kind="invents_fact", detail="b", source="llm")]) == (
        "empty: a; invents_fact: b"
    )
    assert mentions("at 18 alder  LANE", "18 Alder Lane") and not mentions("1234", "12345")


# -- the LLM checker -------------------------------------------------------------------------


def test_checker_prompt_shows_the_facts_and_the_turn(tiny_scenario: Scenario) -> None:
    [message] = checker_messages(
        f"It's 555-0142 {STOP_MARKER}",
        scenario=tiny_scenario,
        revealed={"phone"},
        agent_message=ASK_PHONE,
        history=EARLIER,
    )
    prompt = message["content"]
    assert "phone: 555-0142 (asked for by: phone, number) [already given]" in prompt
    assert "agent: What is your phone number?\n" in prompt and "user: It's 555-0142\n" in prompt
    assert STOP_MARKER not in prompt and "ends the conversation with this turn" in prompt
    assert tiny_scenario.user.goal in prompt


def test_a_slip_and_a_late_find_are_no_faults(tiny_scenario: Scenario) -> None:
    """``said_first`` and ``found_after`` (envsim.user.recall): the wrong value given once is no invented detail,
    for the rules and for the checker model, which is told both."""
    phone = tiny_scenario.user.facts[0].model_copy(update={"said_first": "555-0124", "found_after": 1})
    scenario = tiny_scenario.model_copy(update={"user": tiny_scenario.user.model_copy(update={"facts": [phone]})})
    faults = check_user_turn("It's 555-0124.", scenario=scenario, revealed=(), agent_message=ASK_PHONE, history=[])
    assert not [f for f in faults if f.kind == "invents_fact"], faults
    [message] = checker_messages("It's 555-0124.", scenario=scenario, revealed=(), agent_message=ASK_PHONE, history=[])
    prompt = message["content"]
    assert 'first gives "555-0124" by mistake' in prompt and "cannot find it the first 1" in prompt


def test_checker_verdict_through_litellm(tiny_scenario: Scenario) -> None:
    verdict = '{"ok": false, "faults": [{"kind": "invents_fact", "detail": "he has no dog"}]}'
    faults, completion = llm_check_user_turn(
        "My dog is barking!",
        scenario=tiny_scenario,
        revealed=(),
        agent_message=ASK_WHAT,
        history=EARLIER,
        model="openai/checker",
        mock_response=verdict,
    )
    assert faults == [Fault(kind="invents_fact", detail="he has no dog", source="llm")]
    assert completion.completion_tokens > 0


def test_checker_passes_a_good_turn_through_litellm(tiny_scenario: Scenario) -> None:
    faults, _ = llm_check_user_turn(
        "Please hurry!",
        scenario=tiny_scenario,
        revealed=(),
        agent_message=ASK_WHAT,
        history=EARLIER,
        model="openai/checker",
        mock_response='Sure:\n```json\n{"ok": true, "faults": []}\n```',
    )
    assert faults == []


@pytest.mark.parametrize(
    "answer",
    [
        "Looks fine to me.",
        '{"ok": true, "faults": [], "score": 3}',
        '{"ok": false, "faults": []}',
        '{"ok": false, "faults": [{"kind": "rude"}]}',
    ],
)
def test_an_invalid_verdict_is_an_error(tiny_scenario: Scenario, answer: str) -> None:
    with pytest.raises(CheckerError):
        llm_check_user_turn(
            "Please hurry!",
            scenario=tiny_scenario,
            revealed=(),
            agent_message=ASK_WHAT,
            history=EARLIER,
            model="openai/checker",
            mock_response=answer,
        )
    with pytest.raises(CheckerError):
        parse_verdict(answer)
