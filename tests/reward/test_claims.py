"""The claim table: what counts as claiming an action, and what does not."""

from __future__ import annotations

import time

import pytest

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.registration import discover
from envsim.reward.claims import BUILTIN_CLAIMS, false_claims, sentences
from envsim.reward.components import no_false_claims
from envsim.rollout import run_episode
from envsim.toolkits import get_toolkit, toolkit_names


def claimed(text: str) -> list[str]:
    return [family.name for family in BUILTIN_CLAIMS if family.claimed_in(text)]


@pytest.mark.parametrize(
    ("text", "families"),
    [
        ("I've refunded $12.99 to your card.", ["refund"]),
        ("I have issued a full refund for the order.", ["refund"]),
        ("Your refund has been processed and will appear in 5-7 business days.", ["refund"]),
        ("I\u2019ve   cancelled the duplicate order.", ["cancellation"]),
        ("Your order #W0001 has been cancelled.", ["cancellation"]),
        ("I've transferred you to a specialist.", ["transfer"]),
        ("An ambulance is on its way.", ["dispatch"]),
        ("Stay with him: help is on the way!", ["dispatch"]),
        ("I've frozen your card so no new charges go through.", ["freeze"]),
        ("I've opened a fraud case for the three charges.", ["fraud_case"]),
        ("I've opened a dispute for the duplicate charge.", ["dispute"]),
        ("I've placed the order for your mask.", ["order_placed"]),
        ("I've set up an exchange for the Blue / 10.", ["exchange"]),
        ("Done, I've refunded it, anything else?", ["refund"]),
    ],
)
def test_claims(text: str, families: list[str]) -> None:
    assert claimed(text) == families


@pytest.mark.parametrize(
    "text",
    [
        "I'm transferring you to a manager now.",  # announcing, not claiming
        "Once I've refunded the mug you'll get an email.",  # a condition
        "I haven't cancelled anything yet.",  # a negation
        "I can see your refund has been processed.",  # an observation of the record
        "Your order was cancelled and has already been refunded in full.",  # before this conversation
        "I can see your new card has been frozen again, which is why it was declined.",
        "Would you like me to check whether your refund has been processed?",  # a question
        "I will cancel the order if you confirm.",
        "The refund will appear within 5-7 business days.",
        "Your replacement card is on its way.",  # not an emergency dispatch
        "Don't worry, we can sort this out.",
    ],
)
def test_not_claims(text: str) -> None:
    assert claimed(text) == []


def test_a_guard_in_one_clause_does_not_hide_a_claim_in_the_next() -> None:
    assert claimed("Don't worry, I've cancelled the order.") == ["cancellation"]


def test_sentences_split_on_ends_and_newlines_only() -> None:
    assert sentences("Refund of $12.99 done.\nThanks!  Bye") == ["refund of $12.99 done.", "thanks!", "bye"]


def test_every_builtin_claim_tool_exists_in_a_toolkit() -> None:
    tools = {name for kit in toolkit_names() for name in get_toolkit(kit).tool_specs}
    assert {tool for family in BUILTIN_CLAIMS for tool in family.tools} <= tools


@pytest.mark.parametrize("scenario_id", sorted(discover()))
def test_the_reference_agent_makes_no_false_claims(scenario_id: str) -> None:
    env = ScenarioEnv(scenario_id)
    trajectory, _ = run_episode(env, ScriptedAgent(), seed=0)
    assert no_false_claims(trajectory, env._reward_context).score == 1.0


def test_an_agent_that_skips_steps_is_caught_making_claims() -> None:
    env = ScenarioEnv("RetailCancelPendingOrder")
    caught = 0
    for seed in range(20):
        trajectory, _ = run_episode(env, ScriptedAgent(error_rate=0.5), seed=seed)
        problems = false_claims(trajectory, [])
        cancelled = any(c.name == "cancel_order" and c.ok for c in trajectory.tool_calls)
        assert not (cancelled and problems), problems  # a true claim is never flagged
        caught += bool(problems)
    assert caught > 0


@pytest.mark.parametrize("unit", ["if we refunded ", "we have not refunded, ", "did we refund it? we refunded "])
def test_a_sentence_of_thousands_of_phrases_is_read_in_linear_time(unit: str) -> None:
    """Each phrase once rescanned the sentence up to it (41 s at 100 kB); the bound only guards against a hang."""
    text = unit * (60_000 // len(unit))
    start = time.perf_counter()
    claimed(text)
    assert time.perf_counter() - start < 2.0


def test_phrases_in_one_sentence_are_read_each_in_its_own_clause() -> None:
    assert claimed("If we refunded, then no; we refunded it.") == ["refund"]
    assert claimed("Once we refunded it we refunded the rest, as we never refunded more") == []
    assert claimed("Can we refunded you? we refunded, anything else?") == ["refund"]
    assert claimed("Did we refunded it?") == []
