"""The scripted mock user."""

from __future__ import annotations

import numpy as np

from envsim.scenario import Scenario
from envsim.user.scripted import ScriptedUser


def test_reveals_only_what_is_asked(tiny_scenario: Scenario) -> None:
    user = ScriptedUser()
    assert user.reset(tiny_scenario, np.random.default_rng(0)) == "He collapsed, please help!"
    turn = user.reply("Can I have your PHONE number?", [])
    assert turn.text == "My phone is 555-0142." and not turn.done


def test_closes_when_satisfied(tiny_scenario: Scenario) -> None:
    user = ScriptedUser()
    user.reset(tiny_scenario, np.random.default_rng(0))
    turn = user.reply("Help is on the way.", [])
    assert turn.done and turn.text == tiny_scenario.user.closing


def test_gives_up_after_patience(tiny_scenario: Scenario) -> None:
    user = ScriptedUser()
    user.reset(tiny_scenario, np.random.default_rng(0))
    turns = [user.reply("Let me tell you about our offers.", []) for _ in range(2)]
    assert [t.done for t in turns] == [False, True]  # panicked_caller has patience 1
    assert turns[-1].text == "I'm hanging up and calling 911 myself!"


def test_nudges_come_from_the_seeded_generator(tiny_scenario: Scenario) -> None:
    def nudges(seed: int) -> list[str]:
        user = ScriptedUser()
        user.reset(tiny_scenario, np.random.default_rng(seed))
        out = []
        for _ in range(5):
            out.append(user.reply("hmm", []).text)
            user.reply("phone?", [])  # reveal resets patience
        return out

    assert nudges(1) == nudges(1)


def test_asking_again_costs_patience(tiny_scenario: Scenario) -> None:
    user = ScriptedUser()
    user.reset(tiny_scenario, np.random.default_rng(0))
    user.reply("Your phone number?", [])
    again = user.reply("And your phone number?", [])
    assert again.text == "I already told you. My phone is 555-0142." and not again.done
    assert user.reply("Your phone number, please?", []).done  # patience 1 spent
