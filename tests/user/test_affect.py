"""Affect as state: classifying agent turns, the transitions, and the acceptance behaviour."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.registration import discover, load_registered
from envsim.scenario import Fact, Scenario
from envsim.user import affect
from envsim.user.affect import (
    AGENT_EVENTS,
    FUZZY_QUESTIONS,
    READ_LIMIT,
    AffectMachine,
    AffectState,
    AgentEvent,
    anger_threshold,
    asking_text,
    classify_agent_turn,
    emergency_threshold,
    is_emergency,
    scenario_persona,
    transition,
    unknown_details,
)
from envsim.user.persona import Persona, load_persona
from envsim.user.scripted import ScriptedUser

PANIC = "MedicalSupplyPanicCaller"
FRAUD = "BankingFraudVictimFreezeCard"
ANNOYED = "RetailAlreadyRefundedAnnoyed"
CALM = "RetailRefundDamagedMug"


def _scenario(scenario_id: str) -> Scenario:
    return load_registered(scenario_id)


def _classify(
    message: str, scenario_id: str = CALM, history: list[dict[str, Any]] | None = None, revealed: set[str] | None = None
) -> frozenset[AgentEvent]:
    return classify_agent_turn(message, history or [], _scenario(scenario_id), revealed or set())


def _tool_turn(name: str, arguments: dict[str, Any], result: str, call_id: str = "c1") -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


OPENING = [{"role": "system", "content": "policy"}, {"role": "user", "content": "Hi, my mug broke."}]


def _persona(**fields: Any) -> Persona:
    return Persona.model_validate({"name": "p", **fields})


# -- acceptance ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario_id", [PANIC, FRAUD, "MedicalSupplyVentilatorFailure"])
def test_ignoring_an_emergency_makes_a_panicked_user_escalate_within_patience(scenario_id: str) -> None:
    env = ScenarioEnv(scenario_id)
    persona = load_persona(env.scenario.user.persona.ref or "")
    user = env.user
    assert isinstance(user, ScriptedUser)
    env.reset(seed=0)
    states = []
    for _ in range(persona.patience + 1):
        obs, reward, terminated, truncated, info = env.step("Would you like to hear about our prices for new orders?")
        assert user.affect_state is not None
        states.append(user.affect_state)
        if terminated:
            break
    # it demanded help (or a person) at least once, then gave up: all within its patience
    assert len(states) == persona.patience + 1 and terminated and info["end_reason"] == "user_done"
    assert any(s.wants_human for s in states[:-1]) and states[-1].gives_up
    assert all(s.affect == "panicked" and s.requires_emergency for s in states[:-1])
    demands = [m["content"] for m in info["messages"] if m["role"] == "user"][1:-1]
    assert any(_without_typos(d, persona.human_demands) for d in demands)
    assert obs == info["messages"][-1]["content"] and float(reward) < 1.0


def _without_typos(text: str, lines: list[str]) -> bool:
    """True when ``text`` is one of ``lines`` up to a few typos (same words count, mostly equal)."""
    for line in lines:
        a, b = text.split(), line.split()
        if len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= max(1, len(b) // 4):
            return True
    return False


def test_an_empathetic_resolving_agent_calms_a_frustrated_user() -> None:
    scenario = _scenario(ANNOYED)
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    assert user.affect == "frustrated"
    turn = user.reply("I'm so sorry about the trouble, I understand. Which order is it about?", [])
    assert turn.affect == "calm" and not turn.done  # empathy and progress: frustrated -> calm
    closing = user.reply(
        "I'm sorry for the confusion: the order was already refunded in full and it takes 5-7 business days.", []
    )
    assert closing.done and closing.affect == "relieved" and closing.text == scenario.user.closing
    assert user.affect_state is not None and user.affect_state.resolved and not user.affect_state.demanded_human


def test_the_same_frustrated_user_facing_an_unhelpful_agent_gets_angry_and_asks_for_a_person() -> None:
    scenario = _scenario(ANNOYED)
    persona = load_persona("annoyed")
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    turns = [user.reply("Let me check our current promotions for you.", []) for _ in range(persona.patience + 1)]
    assert [t.affect for t in turns[:-1]] == ["angry", "angry"]
    assert turns[1].text in persona.human_demands and not turns[1].done
    assert turns[-1].done and turns[-1].text == persona.give_up


def test_the_reference_agent_never_makes_a_user_give_up_and_leaves_them_relieved() -> None:
    for scenario_id in sorted(discover()):
        user = ScriptedUser()
        env = ScenarioEnv(scenario_id, user=user)
        agent = ScriptedAgent()
        obs, info = env.reset(seed=0)
        agent.reset(env.scenario, env.np_random)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
            done = terminated or truncated
            state = user.affect_state
            assert state is not None and not state.gives_up and not state.wants_human, scenario_id
        assert reward == 1.0
        if info["end_reason"] == "user_done":
            assert user.affect == "relieved", scenario_id


# -- classification -----------------------------------------------------------------------


def test_makes_progress_when_asking_for_a_new_detail_or_after_a_successful_tool_call() -> None:
    assert _classify("Could you give me your phone number?") == {"makes_progress"}
    lookup = _tool_turn("find_customer_by_phone", {"phone": "720-555-0188"}, '{"id":"C9002"}')
    assert "makes_progress" in _classify("One moment.", history=[*OPENING, *lookup])
    failed = _tool_turn("find_customer_by_phone", {"phone": "1"}, '{"error":{"type":"not_found","message":"x"}}')
    assert "makes_progress" not in _classify("One moment.", history=[*OPENING, *failed])


def test_asks_known_info() -> None:
    assert _classify("What is your phone number?", revealed={"phone"}) == {"asks_known_info"}
    both = _classify("What are your phone number and order number?", revealed={"phone"})
    assert both == {"asks_known_info", "makes_progress"}
    assert "asks_known_info" not in _classify("What is your phone number?", revealed={"order_id"})


def test_asks_unknown_info_for_a_detail_the_scenario_lacks() -> None:
    assert _classify("What is your date of birth?") == {"asks_unknown_info"}  # the mug scenario has no birth date
    assert _classify("Could you give me your phone number and date of birth?") == {
        "makes_progress",
        "asks_unknown_info",
    }
    assert _classify("Your date of birth is on file.") == frozenset()  # a statement asks for nothing
    # a scenario fact of the topic: the user has it
    mug = _scenario(CALM)
    with_dob = mug.model_copy(
        update={
            "user": mug.user.model_copy(
                update={"facts": [*mug.user.facts, Fact(key="dob", value="1950-01-02", asked_by=["birth"])]}
            )
        }
    )
    assert unknown_details("What is your date of birth?", with_dob) == frozenset()
    assert unknown_details("What is your date of birth?", mug) == {"birth"}
    # asked again after the user answered it does not have it: a repeated question
    history = [*OPENING, {"role": "assistant", "content": "Can you tell me your date of birth, please?"}]
    history.append({"role": "user", "content": "I don't remember it."})
    again = _classify("I need your DOB to go on.", history=history)
    assert "repeats_question" in again and "asks_unknown_info" not in again
    # a new detail after that is not a repeat
    assert _classify("What was your mother's maiden name?", history=history) == {"asks_unknown_info"}


def test_repeats_question() -> None:
    history = [*OPENING, {"role": "assistant", "content": "Thanks. What is the order number?"}]
    history.append({"role": "user", "content": "#W0004"})
    assert "repeats_question" in _classify("Sorry, what is the order number?", history=history)
    assert "repeats_question" in _classify("So what is the order number?", history=history)
    assert "repeats_question" not in _classify("Was it the red mug that broke?", history=history)
    # the current message at the end of the history is not a repeat of itself
    current = "Which order number was it?"
    assert "repeats_question" not in _classify(current, history=[*OPENING, {"role": "assistant", "content": current}])
    # a statement is not a question
    assert "repeats_question" not in _classify("What is the order number.", history=history)


def test_shows_empathy() -> None:
    for line in [
        "I'm so sorry to hear that.",
        "I understand how stressful this is.",
        "I'm here to help you.",
        "That must be frustrating.",
        "Please don't worry, we'll fix it.",
        "I apologise for the wait.",
    ]:
        assert "shows_empathy" in _classify(line), line
    assert "shows_empathy" not in _classify("Your refund has been processed.")


def test_resolves_issue_by_phrase_or_by_a_successful_write_since_the_last_user_turn() -> None:
    assert _classify("The refund takes 5-7 business days.") == {"resolves_issue"}  # a satisfied_by phrase
    refund = _tool_turn("refund_items", {"order_id": "#W0004"}, '{"refund_cents":1299}')
    assert "resolves_issue" in _classify("Done.", history=[*OPENING, *refund])
    failed = _tool_turn("refund_items", {"order_id": "#W0004"}, '{"error":{"type":"rule_violation","message":"x"}}')
    assert "resolves_issue" not in _classify("Done.", history=[*OPENING, *failed])
    read = _tool_turn("get_order", {"order_id": "#W0004"}, '{"id":"#W0004"}')
    assert "resolves_issue" not in _classify("Done.", history=[*OPENING, *read])
    earlier = [*OPENING[:1], *refund, {"role": "user", "content": "And?"}]  # before the last user turn
    assert "resolves_issue" not in _classify("Done.", history=earlier)


def test_a_write_does_not_resolve_an_emergency_but_an_escalation_does() -> None:
    order = _tool_turn("create_equipment_order", {"patient_id": "PT-9001"}, '{"id":"EO-1"}')
    events = _classify("Your order is placed.", PANIC, history=[*OPENING, *order])
    assert "resolves_issue" not in events and "ignores_emergency" in events
    dispatch = _tool_turn("dispatch_emergency_services", {"patient_id": "PT-9001"}, '{"id":"D-1"}')
    events = _classify("Stay on the line.", PANIC, history=[*OPENING, *dispatch])
    assert {"escalates", "resolves_issue", "makes_progress"} <= events and "ignores_emergency" not in events


def test_escalates_by_words_or_by_a_successful_escalation_tool() -> None:
    assert "escalates" in _classify("I'm transferring you to a supervisor now.")
    assert "escalates" in _classify("Paramedics are on their way.", PANIC)
    transfer = _tool_turn("transfer_to_human", {"reason": "complaint"}, '{"ticket":"T-1"}')
    assert {"escalates", "resolves_issue"} <= _classify("Thanks.", history=[*OPENING, *transfer])
    assert "escalates" not in _classify("Let me look into it.")


def test_claims_are_no_resolution_while_the_world_says_the_goal_is_unmet() -> None:
    panic, calm = _scenario(PANIC), _scenario(CALM)
    claim = "Help is on the way."  # a satisfied_by phrase and escalation words
    assert {"escalates", "resolves_issue"} <= classify_agent_turn(claim, [], panic, set())  # no verdict: words count
    assert {"escalates", "resolves_issue"} <= classify_agent_turn(claim, [], panic, set(), goal_met=True)
    unmet = classify_agent_turn(claim, [], panic, set(), goal_met=False)
    assert not unmet & {"escalates", "resolves_issue"} and "ignores_emergency" not in unmet  # help words, no help
    refund = _tool_turn("refund_items", {"order_id": "#W0004"}, '{"refund_cents":1299}')
    phrase = "The refund takes 5-7 business days."
    assert "resolves_issue" in classify_agent_turn(phrase, [*OPENING, *refund], calm, set(), goal_met=True)
    wrong = classify_agent_turn(phrase, [*OPENING, *refund], calm, set(), goal_met=False)  # a write, not the goal
    assert wrong == {"makes_progress"}
    dispatch = _tool_turn("dispatch_emergency_services", {"patient_id": "PT-9001"}, '{"id":"D-1"}')
    done = classify_agent_turn("Stay on the line.", [*OPENING, *dispatch], panic, set(), goal_met=False)
    assert {"escalates", "resolves_issue"} <= done  # an escalation call is an act, not a claim


@pytest.mark.parametrize("scenario_id", [PANIC, "MedicalSupplyVentilatorFailure"])
def test_a_panicked_caller_told_help_is_coming_without_a_dispatch_demands_help_then_hangs_up(scenario_id: str) -> None:
    scenario = _scenario(scenario_id)
    user = ScriptedUser(typos=False)
    env = ScenarioEnv(scenario, user=user)
    env.reset(seed=0)
    demanded, info = False, {}
    for _ in range(scenario.max_turns):
        _, _, terminated, truncated, info = env.step("Help is on the way, an ambulance is on its way. Stay calm.")
        state = user.affect_state
        assert state is not None and state.affect == "panicked" and not state.resolved
        demanded = demanded or state.wants_human
        if terminated or truncated:
            break
    persona = scenario_persona(scenario)
    assert demanded and user.affect_state is not None and user.affect_state.gives_up
    assert info["end_reason"] == "user_done" and info["outcome"] == "failure"
    assert env.trajectory().messages[-1]["content"] == persona.give_up
    assert len(env.trajectory().affects) <= persona.patience + 2  # the opening, then within its patience


def test_ignores_emergency_only_in_emergencies() -> None:
    assert is_emergency(_scenario(PANIC)) and is_emergency(_scenario(FRAUD)) and not is_emergency(_scenario(CALM))
    assert "ignores_emergency" in _classify("Can I interest you in our discount on oxygen refills?", PANIC)
    assert "ignores_emergency" in _classify("Hmm, let me think.", PANIC)
    assert "ignores_emergency" not in _classify("Can I interest you in our discount?", CALM)
    # help words, a needed detail, or an escalation are not ignoring it
    assert "ignores_emergency" not in _classify("I'm getting you help right now.", PANIC)
    assert "ignores_emergency" not in _classify("What is your phone number?", PANIC)
    assert "ignores_emergency" not in _classify("Help is on the way.", PANIC)
    # but asking a detail while selling is
    assert "ignores_emergency" in _classify("What's your phone number, so I can renew your order?", PANIC)
    assert "ignores_emergency" not in _classify("I'm freezing your card right away.", FRAUD)


def test_classification_is_pure() -> None:
    history = [*OPENING, {"role": "assistant", "content": "What is the order number?"}]
    before = json.dumps(history)
    revealed = {"phone"}
    first = _classify("What is the order number?", history=history, revealed=revealed)
    assert first == _classify("What is the order number?", history=history, revealed=revealed)
    assert json.dumps(history) == before and revealed == {"phone"}


# -- transitions --------------------------------------------------------------------------


def test_start_states_follow_the_persona() -> None:
    panicked = AffectState.start(load_persona("panicked_caller"))
    assert (panicked.affect, panicked.intensity, panicked.emergency, panicked.requires_emergency) == (
        "panicked",
        0.9,
        True,
        True,
    )
    calm = AffectState.start(load_persona("calm"))
    assert (calm.affect, calm.emergency, calm.requires_emergency, calm.unhelpful_streak, calm.turns) == (
        "calm",
        False,
        False,
        0,
        0,
    )
    assert AffectState.start(load_persona("demanding_escalator")).affect == "angry"
    assert AffectState.start(load_persona("calm"), affect="confused").affect == "confused"


def test_unhelpful_turns_raise_frustration_until_the_user_gives_up() -> None:
    persona = load_persona("calm")  # patience 4
    machine = AffectMachine(persona)
    labels, streaks = [], []
    for _ in range(persona.patience + 1):
        step = machine.observe(set())
        labels.append(step.after.affect)
        streaks.append(step.after.unhelpful_streak)
        assert step.after.intensity > step.before.intensity
    assert labels[0] == "calm" and labels[-2] == "frustrated"
    assert streaks == [1, 2, 3, 4, 5]
    assert machine.gives_up and not machine.wants_human  # the calm persona gives up without asking for a human
    assert machine.observe({"resolves_issue"}).after.gives_up  # terminal


def test_repeated_and_known_questions_frustrate_more_than_plain_unhelpfulness() -> None:
    persona = load_persona("calm")
    start = AffectState.start(persona)
    plain = transition(start, set(), persona).after.intensity
    assert transition(start, {"repeats_question"}, persona).after.intensity > plain
    assert transition(start, {"asks_known_info"}, persona).after.intensity > plain
    both = transition(start, {"repeats_question", "asks_known_info"}, persona).after
    assert both.affect == "frustrated" and both.unhelpful_streak == 1


def test_asking_for_details_the_user_lacks_is_neither_help_nor_ignoring_it() -> None:
    confused = load_persona("star_confused")
    machine = AffectMachine(confused)
    start = machine.state
    steps = [machine.observe({"asks_unknown_info"}) for _ in range(confused.patience + 3)]
    assert not any(s.helped for s in steps)
    assert machine.state.unhelpful_streak == 0 and machine.state.intensity == start.intensity
    assert not machine.gives_up and not machine.wants_human and machine.affect == "confused"
    # but asking again for one already answered frustrates, like any repeated question
    again = transition(start, {"repeats_question"}, confused).after
    assert again.unhelpful_streak == 1 and again.intensity > start.intensity
    # it does not stop an ignored emergency from counting
    panicked = load_persona("panicked_caller")
    ignored = AffectMachine(panicked, emergency=True).observe({"asks_unknown_info", "ignores_emergency"})
    assert ignored.after.unhelpful_streak == 1 and ignored.after.wants_human


def test_asking_a_panicked_caller_for_a_detail_it_lacks_still_ignores_the_emergency() -> None:
    events = _classify("What is your date of birth?", PANIC)
    assert {"asks_unknown_info", "ignores_emergency"} <= events


def test_progress_resets_the_streak() -> None:
    persona = load_persona("calm")
    machine = AffectMachine(persona)
    for _ in range(persona.patience):
        machine.observe(set())
    assert machine.state.unhelpful_streak == persona.patience
    step = machine.observe({"makes_progress"})
    assert step.helped and step.after.unhelpful_streak == 0 and step.after.intensity < step.before.intensity


def test_empathy_and_resolution_calm_a_frustrated_user() -> None:
    annoyed = load_persona("annoyed")
    start = AffectState.start(annoyed)
    assert start.affect == "frustrated"
    calmer = transition(start, {"shows_empathy", "makes_progress"}, annoyed)
    assert calmer.changed and calmer.after.affect == "calm"
    relieved = transition(start, {"shows_empathy", "resolves_issue"}, annoyed).after
    assert relieved.affect == "relieved" and relieved.resolved and relieved.intensity < start.intensity
    # empathy alone soothes a little but is no help: the streak still grows
    words_only = transition(start, {"shows_empathy"}, annoyed).after
    assert words_only.intensity < start.intensity and words_only.unhelpful_streak == 1


def test_an_angry_user_demands_a_person_as_soon_as_its_propensity_says() -> None:
    escalator = load_persona("demanding_escalator")  # angry, propensity 0.95, patience 1
    assert anger_threshold(escalator) == 1
    first = AffectMachine(escalator).observe(set()).after
    assert first.affect == "angry" and first.wants_human and first.demanded_human and not first.gives_up
    annoyed = load_persona("annoyed")  # propensity 0.4, patience 2: demands on the second unhelpful turn
    assert anger_threshold(annoyed) == 2
    machine = AffectMachine(annoyed)
    assert [machine.observe(set()).after.wants_human for _ in range(3)] == [False, True, False]
    assert machine.gives_up and machine.state.demanded_human
    # no propensity: never asks, just gives up
    stoic = _persona(initial_affect="angry", patience=3, escalation_propensity=0.0)
    assert anger_threshold(stoic) is None
    machine = AffectMachine(stoic)
    assert not any(machine.observe(set()).after.wants_human for _ in range(4)) and machine.gives_up


def test_a_satisfied_angry_user_does_not_demand_a_person() -> None:
    escalator = load_persona("demanding_escalator")
    step = AffectMachine(escalator).observe({"makes_progress"})
    assert step.after.affect == "angry" and not step.after.wants_human


def test_emergency_thresholds_follow_panic_and_patience() -> None:
    assert emergency_threshold(load_persona("panicked_caller")) == 1
    assert emergency_threshold(load_persona("fraud_victim")) == 1
    assert emergency_threshold(_persona(patience=4)) == 4  # no panic: demands help on the last tolerated turn
    assert emergency_threshold(_persona(patience=0)) == 1


def test_a_calm_user_in_an_ignored_emergency_panics_then_demands_help_then_gives_up() -> None:
    persona = _persona(patience=3)
    machine = AffectMachine(persona, emergency=True)
    steps = [machine.observe({"ignores_emergency"}).after for _ in range(persona.patience + 1)]
    assert steps[0].affect == "calm" and steps[-2].affect == "panicked"
    assert [s.wants_human for s in steps] == [False, False, True, False]
    assert steps[-1].gives_up and not steps[-1].requires_emergency


def test_empathy_does_not_end_a_panic_but_help_does() -> None:
    persona = load_persona("panicked_caller")
    machine = AffectMachine(persona, emergency=True)
    soothed = machine.observe({"shows_empathy", "makes_progress"}).after
    assert soothed.affect == "panicked" and soothed.requires_emergency
    helped = machine.observe({"escalates"}).after
    assert helped.affect == "relieved" and helped.resolved and not helped.requires_emergency
    # once help is on its way, talk of other things is no longer ignoring an emergency
    later = machine.observe({"ignores_emergency", "makes_progress"})
    assert later.helped and later.after.affect == "relieved"


def test_an_unwanted_escalation_is_not_a_resolution() -> None:
    calm = load_persona("calm")
    step = AffectMachine(calm).observe({"escalates"})
    assert step.helped and not step.after.resolved and step.after.affect == "calm"
    wanted = AffectMachine(load_persona("demanding_escalator")).observe({"escalates"}).after
    assert wanted.resolved and wanted.affect == "relieved"


def test_unknown_events_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown agent events"):
        AffectMachine(load_persona("calm")).observe({"rude"})  # type: ignore[arg-type]
    assert set(AGENT_EVENTS) == {
        "makes_progress",
        "resolves_issue",
        "escalates",
        "shows_empathy",
        "repeats_question",
        "asks_known_info",
        "asks_unknown_info",
        "ignores_emergency",
    }


SLOW_S = 2.0
"""A generous guard against a super-linear classifier (each call takes milliseconds); bench/long_message.py times it."""

LONG_MESSAGES = {
    "no delimiter": "a" * 1_000_000,  # the question regex rescanned the whole text from each character: 22 s at 100 kB
    "one long word": "Please " + "expir" * 200_000,  # 'expir\\w* date' rescanned the word from each 'expir'
    "questions": "Could you confirm your order number please? " * 23_000,
    "detail requests": "Please give me your account number and your order number. " * 17_000,
    "statements": "Your order was refunded. " * 40_000,
}


@pytest.mark.parametrize("shape", list(LONG_MESSAGES))
def test_classifying_a_megabyte_message_takes_milliseconds(shape: str) -> None:
    message = LONG_MESSAGES[shape]
    history = [*OPENING, {"role": "assistant", "content": message}, {"role": "user", "content": "What?"}]
    start = time.perf_counter()
    classify_agent_turn(message + " ", history, _scenario(CALM), set())
    unknown_details(message + "  ", _scenario(CALM))
    asking_text(message[:200_000])  # the unbounded helper is linear too
    assert time.perf_counter() - start < SLOW_S


@pytest.mark.parametrize("shape", list(LONG_MESSAGES))
def test_classification_is_linear_in_what_it_reads(shape: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the read limit, 60,000 characters of each shape classify in milliseconds (a quadratic pass: seconds)."""
    monkeypatch.setattr(affect, "READ_LIMIT", 10**9)
    message = LONG_MESSAGES[shape][:60_000]
    history = [*OPENING, {"role": "assistant", "content": message[::-1]}, {"role": "user", "content": "What?"}]
    start = time.perf_counter()
    classify_agent_turn(message, history, _scenario(CALM), set())
    assert time.perf_counter() - start < SLOW_S


def test_a_user_reads_the_first_read_limit_characters_of_a_message() -> None:
    padding = "x" * READ_LIMIT
    assert "resolves_issue" in _classify("Is there anything else? " + padding)
    assert "resolves_issue" not in _classify(padding + " Is there anything else?")
    assert unknown_details(padding + " What is your PIN?", _scenario(CALM)) == frozenset()
    user = ScriptedUser(typos=False)
    user.reset(_scenario(CALM), np.random.default_rng(0))
    assert "555" not in user.reply(padding + " What is your phone number?", []).text  # not read: not answered
    assert "555" in user.reply("What is your phone number? " + padding, []).text


def test_word_for_word_repeats_count_among_many_questions_and_near_repeats_among_the_first() -> None:
    many = " ".join(f"Is item {i} the mug?" for i in range(3 * FUZZY_QUESTIONS))
    history = [*OPENING, {"role": "assistant", "content": many}, {"role": "user", "content": "I do not know."}]
    assert "repeats_question" in _classify(f"Is item {3 * FUZZY_QUESTIONS - 1} the mug?", history=history)
    assert "repeats_question" in _classify("So is item 0 the mug?", history=history)  # near repeat of the first
    assert "repeats_question" not in _classify(f"So is item {3 * FUZZY_QUESTIONS - 1} the mug?", history=history)
