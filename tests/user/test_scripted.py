"""The scripted mock user: facts, closing, patience, affect and the persona's traits."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envsim.registration import load_registered
from envsim.scenario import Scenario
from envsim.user.persona import load_persona
from envsim.user.registry import make_user
from envsim.user.scripted import ANOTHER_OPTION_LINES, DONT_KNOW_LINES, ScriptedUser, _typo, apply_typos, fit_length


def _with_persona(scenario: Scenario, **persona: Any) -> Scenario:
    """``scenario`` with an inline persona (a fresh object, so users prepare it anew)."""
    raw = scenario.model_dump(mode="json")
    raw["user"]["persona"] = {"inline": {"name": "custom", **persona}}
    return Scenario.model_validate(raw)


def _calm(scenario: Scenario, **persona: Any) -> Scenario:
    """The tiny scenario's facts and lines, but no emergency: a calm persona and no panic."""
    return _with_persona(scenario, **{"patience": 3, **persona})


def test_reveals_only_what_is_asked(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    assert user.reset(tiny_scenario, np.random.default_rng(0)) == "He collapsed, please help!"
    turn = user.reply("Can I have your PHONE number?", [])
    assert turn.text == "My phone is 555-0142." and not turn.done


def test_closes_when_satisfied(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    user.reset(tiny_scenario, np.random.default_rng(0))
    turn = user.reply("Help is on the way.", [])
    assert turn.done and turn.text == tiny_scenario.user.closing and turn.affect == "relieved"


def test_follow_ups_are_said_one_at_a_time_before_closing(tiny_scenario: Scenario) -> None:
    """Where it would close, the user asks for its next request instead (once each, in order), then closes."""
    requests = ["Can you also tell me when he can go home?", "And can my wife visit him?"]
    scenario = tiny_scenario.model_copy(update={"user": tiny_scenario.user.model_copy(update={"follow_ups": requests})})
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    turns = [user.reply("Help is on the way.", []) for _ in range(3)]
    assert [(t.text, t.done) for t in turns] == [
        (requests[0], False),
        (requests[1], False),
        (scenario.user.closing, True),
    ]
    user.reset(scenario, np.random.default_rng(0))  # a new conversation asks again
    assert user.reply("Help is on the way.", []).text == requests[0]


def test_gives_up_after_patience(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    user.reset(tiny_scenario, np.random.default_rng(0))
    turns = [user.reply("Let me tell you about our offers.", []) for _ in range(2)]
    assert [t.done for t in turns] == [False, True]  # panicked_caller has patience 1
    assert turns[0].text in load_persona("panicked_caller").human_demands  # demands help first
    assert turns[-1].text == "I'm hanging up and calling 911 myself!"
    assert [t.affect for t in turns] == ["panicked", "panicked"]
    assert user.reply("Hello?", []) == turns[-1]  # it stays gone


def test_nudges_come_from_the_seeded_generator(tiny_scenario: Scenario) -> None:
    scenario = _calm(tiny_scenario, patience=10, nudges=["One.", "Two?", "Three.", "Four?"])

    def nudges(seed: int) -> list[str]:
        user = ScriptedUser()
        user.reset(scenario, np.random.default_rng(seed))
        out = []
        for _ in range(5):
            out.append(user.reply("hmm", []).text)
            user.reply("phone?", [])  # a new fact, then an old one: both keep it talking
        return out

    assert nudges(1) == nudges(1)
    assert len({tuple(nudges(seed)) for seed in range(5)}) > 1


def test_asking_again_costs_patience(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    user.reset(tiny_scenario, np.random.default_rng(0))
    user.reply("Your phone number?", [])
    again = user.reply("And your phone number?", [])
    assert again.text.startswith("I already told you. My phone is 555-0142.") and not again.done
    assert (
        again.text.removeprefix("I already told you. My phone is 555-0142. ")
        in load_persona("panicked_caller").human_demands
    )  # asked again in an emergency: it insists on help
    assert user.reply("Your phone number, please?", []).done  # patience 1 spent


def test_asking_again_without_an_emergency_just_reminds(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    user.reset(_calm(tiny_scenario), np.random.default_rng(0))
    user.reply("Your phone number?", [])
    again = user.reply("And your phone number?", [])
    assert again.text == "I already told you. My phone is 555-0142." and not again.done
    third = user.reply("Your phone number, please?", [])
    assert third.text == again.text and third.affect in {"frustrated", "angry"}  # frustration rises
    assert user.affect_state is not None and user.affect_state.unhelpful_streak == 2


def test_asked_for_a_detail_it_does_not_have_it_says_so_and_carries_on(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    user.reset(_calm(tiny_scenario), np.random.default_rng(0))  # patience 3
    asks = ["What is your date of birth?", "Your mother's maiden name?", "Your first pet's name?", "Your PIN?"]
    history: list[dict[str, Any]] = []
    for ask in asks:
        history.append({"role": "assistant", "content": ask})
        turn = user.reply(ask, history)
        history.append({"role": "user", "content": turn.text})
        assert turn.text in DONT_KNOW_LINES and not turn.done
    assert user.affect_state is not None and user.affect_state.unhelpful_streak == 0
    history.append({"role": "assistant", "content": "I need your date of birth."})
    user.reply("I need your date of birth.", history)  # asked again: that costs patience
    assert user.affect_state.unhelpful_streak == 1


def test_reports_affect_and_affect_state(tiny_scenario: Scenario) -> None:
    user = ScriptedUser()
    assert user.affect is None and user.affect_state is None
    user.reset(_calm(tiny_scenario, initial_affect="frustrated"), np.random.default_rng(0))
    assert user.affect == "frustrated"
    turn = user.reply("I'm so sorry about that. What is your phone number?", [])
    assert turn.affect == user.affect == "calm"
    assert user.affect_state is not None and user.affect_state.turns == 1


def test_an_angry_user_demands_a_person(tiny_scenario: Scenario) -> None:
    persona = load_persona("demanding_escalator")
    scenario = _calm(tiny_scenario, **persona.model_dump(exclude={"name"}))
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    turn = user.reply("Let me tell you about our loyalty programme.", [])
    assert turn.text in persona.human_demands and turn.affect == "angry" and not turn.done
    assert user.reply("As I was saying, the programme...", []).text == persona.give_up


def test_volunteers_a_fact_in_the_opening(tiny_scenario: Scenario) -> None:
    user = ScriptedUser(typos=False)
    opening = user.reset(_calm(tiny_scenario, disclosure="volunteers"), np.random.default_rng(0))
    assert opening == "He collapsed, please help! My phone is 555-0142."
    assert user.reply("What is your phone number?", []).text == "I already told you. My phone is 555-0142."
    quiet = ScriptedUser(typos=False)
    assert quiet.reset(_calm(tiny_scenario), np.random.default_rng(0)) == "He collapsed, please help!"


def test_typos_follow_the_rate_deterministically_and_spare_fact_values(tiny_scenario: Scenario) -> None:
    scenario = _calm(tiny_scenario, typo_rate=1.0, disclosure="volunteers")

    def opening(seed: int, typos: bool = True) -> str:
        return ScriptedUser(typos=typos).reset(scenario, np.random.default_rng(seed))

    assert opening(3) == opening(3)
    assert opening(3, typos=False) == "He collapsed, please help! My phone is 555-0142."
    typed = opening(3).split()
    assert typed[0] == "He" and typed[-1] == "555-0142."  # short and capitalised words, values untouched
    assert all(a != b for a, b in zip(typed[1:4], ["collapsed,", "please", "help!"], strict=True))
    rng = np.random.default_rng(0)
    text = " ".join(["window"] * 5000)
    rate = np.mean([w != "window" for w in apply_typos(text, 0.05, rng).split()])
    assert 0.035 < rate < 0.065


def test_typos_never_touch_protected_words_emails_or_numbers() -> None:
    rng = np.random.default_rng(0)
    text = "my email is ada.lovelace@example.org and order #W0003 ships from lakeview"
    typed = apply_typos(text, 1.0, rng, protected={"lakeview"})
    assert "ada.lovelace@example.org" in typed and "#W0003" in typed and typed.endswith("lakeview")
    assert typed.split()[0] == "my" and typed.split()[1] != "email"


def _typos_token_by_token(text: str, rate: float, rng: np.random.Generator, protected: frozenset[str]) -> str:
    """The typo rule spelled out: each whitespace-separated token that is one lower-case word of 3+ letters with
    only other non-alphanumeric characters around it, and not protected, draws; the draws go in token order."""
    if rate <= 0:
        return text

    def swap(match: re.Match[str]) -> str:
        core = re.fullmatch(r"([^A-Za-z0-9]*)([a-z]{3,})([^A-Za-z0-9]*)", match.group(0))
        if core is None or core.group(2) in protected or rng.random() >= rate:
            return match.group(0)
        return core.group(1) + _typo(core.group(2), rng) + core.group(3)

    return re.sub(r"\S+", swap, text)


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["help", "Help", "a", "an", "the", "(now)", "ab-cde", "é", "abcé", "x1yz", "...", "Walter,"])
        | st.text(alphabet="abcXYZ09 .,-!\n\t\u00a0\u2003é中", max_size=12),
        max_size=12,
    ),
    rate=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_typos_are_drawn_token_by_token_in_order(words: list[str], rate: float, seed: int) -> None:
    text = " ".join(words)
    protected = frozenset({"help", "abc"})
    expected = _typos_token_by_token(text, rate, np.random.default_rng(seed), protected)
    assert apply_typos(text, rate, np.random.default_rng(seed), protected) == expected


def test_verbosity_trims_or_extends_nudges(tiny_scenario: Scenario) -> None:
    lines = ["Please. I really need help. Right now.", "Hello?", "Is anyone there at all?"]

    def mean_words(mean: float) -> float:
        scenario = _calm(
            tiny_scenario,
            patience=50,
            escalation_propensity=0,
            nudges=lines,
            verbosity={"mean_words": mean, "std_words": 0.5},
        )
        user = ScriptedUser(typos=False)
        user.reset(scenario, np.random.default_rng(0))
        return float(np.mean([len(user.reply("hmm", []).text.split()) for _ in range(40)]))

    terse, wordy = mean_words(1), mean_words(20)
    assert terse < 2.5 < 6 < wordy
    assert fit_length("Hurry. He is grey. Please!", [], 1) == "Hurry."


def test_question_rate_sets_the_share_of_question_nudges(tiny_scenario: Scenario) -> None:
    lines = ["Help me.", "Are you there?", "Please hurry.", "What now?"]

    def share(rate: float) -> float:
        scenario = _calm(
            tiny_scenario, patience=5, nudges=lines, question_rate=rate, verbosity={"mean_words": 2, "std_words": 0}
        )
        user = ScriptedUser(typos=False)
        asked = []
        for seed in range(50):
            user.reset(scenario, np.random.default_rng(seed))
            asked += [user.reply("hmm", []).text.endswith("?") for _ in range(4)]
        return float(np.mean(asked))

    assert share(0.0) == 0.0 and share(1.0) == 1.0
    assert 0.2 < share(0.3) < 0.4


def test_panicked_persona_in_shipped_scenario_is_reproducible() -> None:
    scenario = load_registered("MedicalSupplyPanicCaller")
    runs = []
    for _ in range(2):
        user = ScriptedUser()
        opening = user.reset(scenario, np.random.default_rng(11))
        runs.append((opening, user.reply("Can I interest you in an upgrade?", []).text))
    assert runs[0] == runs[1]


def test_make_user_passes_options() -> None:
    user = make_user("scripted", typos=False)
    assert isinstance(user, ScriptedUser) and not user.typos


@pytest.mark.parametrize("message", ["", "???", "Ünïcödé ✓ 😀", "phone " * 200])
def test_odd_agent_messages_never_raise(tiny_scenario: Scenario, message: str) -> None:
    user = ScriptedUser()
    user.reset(tiny_scenario, np.random.default_rng(0))
    assert isinstance(user.reply(message, [{"role": "assistant", "content": message}]).text, str)


def test_told_what_it_asked_for_cannot_be_had_it_asks_for_another() -> None:
    """'No appointment available at 5 pm' with the goal unmet: another option, never a nudge or a goodbye; with the
    goal met, no such request."""
    scenario = _calm(load_registered("RetailCancelPendingOrder"))
    user = ScriptedUser(typos=False)
    for met in (False, True):
        user.reset(scenario, np.random.default_rng(0))
        user.attach_goal(lambda met=met: met)
        reply = user.reply("Unfortunately there is no appointment available at 5 pm.", [])
        assert (reply.text in ANOTHER_OPTION_LINES) is not met, reply
    user.reset(scenario, np.random.default_rng(0))
    user.attach_goal(lambda: False)
    assert user.reply("Your order is on its way.", []).text not in ANOTHER_OPTION_LINES
