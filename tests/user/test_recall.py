"""Facts found only after some asking (``found_after``) and slips corrected (``said_first``), in every user."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.registration import load_registered
from envsim.rollout import run_episode
from envsim.scenario import Fact, Scenario
from envsim.user.recall import NOT_AT_HAND_LINES, Recall, found_line
from envsim.user.scripted import ScriptedUser
from envsim.user.transcript.text import UNSURE
from envsim.user.transcript.user import TranscriptUser


def _with_facts(scenario: Scenario, **changes: dict[str, object]) -> Scenario:
    """``scenario`` with each named fact updated (a fresh object, so users prepare it anew)."""
    facts = [f.model_copy(update=changes.get(f.key, {})) for f in scenario.user.facts]
    return scenario.model_copy(update={"user": scenario.user.model_copy(update={"facts": facts})})


def test_said_first_must_be_a_different_value() -> None:
    with pytest.raises(ValidationError, match="said_first must differ"):
        Fact(key="phone", value="555-0142", asked_by=["phone"], said_first=" 555-0142")
    with pytest.raises(ValidationError):
        Fact(key="phone", value="555-0142", asked_by=["phone"], found_after=-1)


def test_recall_counts_requests_per_episode() -> None:
    card = Fact(key="card", value="4417", asked_by=["card"], found_after=2)
    recall = Recall()
    assert [recall.at_hand(card) for _ in range(3)] == [False, False, True]
    recall.reset()
    assert not recall.at_hand(card)


def test_a_fact_looked_for_is_announced_once_in_the_next_reply() -> None:
    card = Fact(key="card", value="4417", asked_by=["card"], found_after=2)
    recall = Recall()
    recall.at_hand(card)
    assert recall.announcements() == []  # asked once of two: not looking yet
    recall.at_hand(card)
    assert [f.key for f in recall.announcements()] == ["card"] and recall.announcements() == []
    recall.at_hand(card)  # asked again once found: given, not announced again
    assert recall.announcements() == []
    assert Recall().announcements() == [] and found_line(card) == "Oh, I found it: my card is 4417."
    recall.reset()
    recall.at_hand(card), recall.at_hand(card)
    assert recall.announcements(exclude={"card"}) == [] and recall.announcements() == []  # given already: dropped


def test_scripted_user_comes_back_with_what_it_found_unasked(tiny_scenario: Scenario) -> None:
    scenario = _with_facts(tiny_scenario, phone={"found_after": 1})
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    user.attach_goal(lambda: False)
    assert user.reply("What is your phone number?", []).text in NOT_AT_HAND_LINES
    assert user.reply("Thanks, one moment please.", []).text.startswith("Oh, I found it: my phone is 555-0142.")
    later = user.reply("Thanks, one moment please.", []).text
    assert "555-0142" not in later and "found it" not in later  # said once
    user.reset(scenario, np.random.default_rng(0))
    user.attach_goal(lambda: True)  # the goal met meanwhile: it closes instead
    user.reply("What is your phone number?", [])
    assert user.reply("Help is on the way.", []).done


def test_transcript_user_comes_back_with_what_it_found_unasked() -> None:
    base = load_registered("RetailCancelPendingOrder")
    scenario = _with_facts(base, email={"found_after": 1})
    user = TranscriptUser()
    for seed in range(4):
        user.reset(scenario, np.random.default_rng(seed))
        user.attach_goal(lambda: False)
        user.reply("What is your email address?", [])
        back = user.reply("No problem. Do you have the order number?", []).text
        assert "dana.whitfield@example.org" in back and not UNSURE.search(back.lower()), back
        assert "email" in user._revealed


def test_scripted_user_finds_a_fact_late_and_corrects_a_slip(tiny_scenario: Scenario) -> None:
    scenario = _with_facts(tiny_scenario, phone={"found_after": 1, "said_first": "555-0124"})
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    user.attach_goal(lambda: False)
    first = user.reply("What is your phone number?", []).text
    assert first in NOT_AT_HAND_LINES
    assert user.reply("Could you look for your phone number?", []).text == "My phone is 555-0124."
    corrected = user.reply("Thank you, one moment.", []).text
    assert corrected.startswith("Sorry, I got that wrong. My phone is 555-0142.")
    assert "Sorry" not in user.reply("Still checking.", []).text  # corrected once
    user.reset(scenario, np.random.default_rng(0))  # a new episode starts over
    assert user.reply("What is your phone number?", []).text in NOT_AT_HAND_LINES


def test_transcript_user_says_it_cannot_find_it_then_gives_it_then_corrects_it() -> None:
    base = load_registered("RetailCancelPendingOrder")
    scenario = _with_facts(base, email={"found_after": 1}, order_id={"said_first": "#W0009"})
    user = TranscriptUser()
    for seed in range(4):
        user.reset(scenario, np.random.default_rng(seed))
        user.attach_goal(lambda: False)
        missing = user.reply("What is your email address?", []).text
        assert UNSURE.search(missing.lower()) and "dana" not in missing, missing
        assert "dana.whitfield@example.org" in user.reply("Found it? What is your email address?", []).text
        slip = user.reply("And your order number?", []).text
        assert "#W0009" in slip and "#W0001" not in slip, slip
        fixed = user.reply("Let me look that up.", []).text
        assert fixed.startswith("Sorry, I got that wrong.") and "#W0001" in fixed, fixed


def test_the_reference_agent_asks_again_for_what_the_customer_could_not_find(tiny_scenario: Scenario) -> None:
    scenario = _with_facts(tiny_scenario, phone={"found_after": 2})
    env = ScenarioEnv(scenario, user=ScriptedUser(typos=False))
    trajectory, reward = run_episode(env, ScriptedAgent(), seed=0)
    said = [m["content"] for m in trajectory.messages if m["role"] == "user"]
    assert sum(text in NOT_AT_HAND_LINES for text in said) == 2 and any("555-0142" in t for t in said), said
    assert reward.outcome == "success", reward


def test_a_fact_not_found_yet_is_never_volunteered_until_it_is() -> None:
    """A persona that volunteers says details unasked, but not one it has not found: asked once, it goes looking and
    has it from then on."""
    base = load_registered("RetailCancelPendingOrder")
    scenario = _with_facts(base, email={"found_after": 1})
    user = TranscriptUser()
    user.reset(scenario, np.random.default_rng(0))
    user.attach_goal(lambda: False)
    assert "email" not in {f.key for f, _ in user._unsaid(())}
    user.reply("What is your email address?", [])
    assert "email" in {f.key for f, _ in user._unsaid(())}


def test_a_slip_corrected_while_asked_again_is_said_right_once(tiny_scenario: Scenario) -> None:
    """Asked again for the fact it got wrong, the user apologises and gives it once ('Sorry, I got that wrong.
    University', never 'Sorry, I got that wrong. University University')."""
    scenario = _with_facts(tiny_scenario, phone={"said_first": "555-0124"})
    user = ScriptedUser(typos=False)
    user.reset(scenario, np.random.default_rng(0))
    user.attach_goal(lambda: False)
    assert user.reply("What is your phone number?", []).text == "My phone is 555-0124."
    again = user.reply("Sorry, what was your phone number?", []).text
    assert again.startswith("Sorry, I got that wrong.") and again.count("555-0142") == 1, again
    base = load_registered("RetailCancelPendingOrder")
    scenario = _with_facts(base, order_id={"said_first": "#W0009"})
    transcript = TranscriptUser()
    for seed in range(6):
        transcript.reset(scenario, np.random.default_rng(seed))
        transcript.attach_goal(lambda: False)
        assert "#W0009" in transcript.reply("What is your order number?", []).text
        again = transcript.reply("Could you give me the order number again?", []).text
        assert again.startswith("Sorry, I got that wrong.") and again.count("#W0001") == 1, again
