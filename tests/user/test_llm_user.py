"""The LLM user, driven through litellm's real client path by a custom provider (``envsim-test/...``)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from envsim.agents import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.llm import litellm
from envsim.loader import load_scenario
from envsim.rollout import arun_episode, run_episode
from envsim.scenario import PersonaSpec, Scenario
from envsim.transcripts.schema import Conversation, Turn
from envsim.user.faults import STOP_MARKER
from envsim.user.llm import LLMUser, retrieve_exemplars
from envsim.user.persona import Exemplar, load_persona
from envsim.user.registry import make_user

REPO = Path(__file__).resolve().parents[2]
PANIC_CALLER = REPO / "scenarios" / "medical_supply" / "medical_supply_panic_caller.yaml"

Reply = str | Callable[[list[dict[str, Any]]], str]


@dataclass
class Provider:
    """Scripted replies per model name (as the handler sees it: no provider prefix), and every call made."""

    replies: dict[str, list[Reply]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def script(self, model: str, *replies: Reply) -> None:
        """Queue the replies ``envsim-test/<model>`` gives, in order."""
        self.replies.setdefault(model, []).extend(replies)

    def serve(self, model: str, messages: list[dict[str, Any]], api_base: str | None, params: dict[str, Any]) -> str:
        """Record one call and give the next scripted reply."""
        self.calls.append({"model": model, "messages": messages, "api_base": api_base, **params})
        reply = self.replies[model].pop(0)
        return reply(messages) if callable(reply) else reply

    def of(self, model: str) -> list[dict[str, Any]]:
        """The calls made to ``model``."""
        return [c for c in self.calls if c["model"] == model]


@pytest.fixture(scope="module")
def registered() -> Iterator[Provider]:
    """A litellm custom provider ``envsim-test`` serving a :class:`Provider`'s scripted replies."""
    lib = litellm()
    state = Provider()

    class Handler(lib.CustomLLM):  # type: ignore[misc,name-defined]
        def completion(self, *args: Any, **kwargs: Any) -> Any:  # litellm passes everything by keyword
            model = kwargs["model"]
            params = dict(kwargs["optional_params"])
            text = state.serve(model, kwargs["messages"], kwargs["api_base"], params)
            return lib.ModelResponse(
                model=model,
                choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                usage={"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48},
            )

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return self.completion(*args, **kwargs)

    entry = {"provider": "envsim-test", "custom_handler": Handler()}
    lib.custom_provider_map.append(entry)
    yield state
    lib.custom_provider_map.remove(entry)


@pytest.fixture
def provider(registered: Provider) -> Provider:
    """The registered provider, with no replies queued and no calls recorded."""
    registered.replies.clear()
    registered.calls.clear()
    return registered


@pytest.fixture(scope="module")
def panic_caller() -> Scenario:
    """The medical-supply panic-caller scenario (phone and address are hidden facts)."""
    return load_scenario(PANIC_CALLER)


def started(scenario: Scenario, **options: Any) -> LLMUser:
    """An LLM user on ``envsim-test/user``, reset on ``scenario``."""
    options.setdefault("model", "envsim-test/user")
    user = LLMUser(**options)
    user.reset(scenario, np.random.default_rng(0))
    return user


# -- the call --------------------------------------------------------------------------------


def test_the_opening_is_the_scenarios_and_needs_no_call(provider: Provider, panic_caller: Scenario) -> None:
    user = LLMUser("envsim-test/user")
    assert user.reset(panic_caller, np.random.default_rng(0)) == panic_caller.user.opening
    assert provider.calls == [] and user.usage.calls == 0


def test_temperature_seed_and_options_reach_the_call(provider: Provider, tiny_scenario: Scenario) -> None:
    provider.script("user", "He's on the floor!", "Please hurry!")
    user = started(tiny_scenario, temperature=0.3, seed=11, api_base="http://localhost:9", max_tokens=60)
    user.reply("Tell me what happened.", [])
    user.reply("Is he conscious?", [])
    first, second = provider.calls
    assert (first["temperature"], first["seed"], first["max_tokens"], first["api_base"]) == (
        0.3,
        11,
        60,
        "http://localhost:9",
    )
    assert second["seed"] == 12  # every call gets its own seed


def test_the_seed_derives_from_the_environments_generator(provider: Provider, tiny_scenario: Scenario) -> None:
    def first_seed(env_seed: int) -> int:
        provider.script("user", "Help!")
        rng = np.random.default_rng(env_seed)
        state = rng.bit_generator.state
        user = LLMUser("envsim-test/user")
        user.reset(tiny_scenario, rng)
        assert rng.bit_generator.state == state  # the environment's own stream is untouched
        user.reply("What happened?", [])
        return int(provider.calls[-1]["seed"])

    assert first_seed(5) == first_seed(5) != first_seed(6)


def test_the_prompt_is_the_persona_with_hidden_facts_and_flipped_roles(
    provider: Provider, panic_caller: Scenario
) -> None:
    provider.script("user", "It's 555-0142!")
    user = started(panic_caller)
    messages = [
        {"role": "system", "content": "You are a customer-service agent."},
        {"role": "user", "content": panic_caller.user.opening},
        {"role": "assistant", "content": "Stay with me.", "tool_calls": [{"id": "c1", "function": {"name": "x"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"id": "PT-9001", "address": "18 Alder Lane"}'},
        {"role": "assistant", "content": "What is your phone number?"},
    ]
    turn = user.reply("What is your phone number?", messages)
    assert turn.text == "It's 555-0142!" and turn.fault is None
    system, *conversation = provider.calls[0]["messages"]
    assert system["role"] == "system"
    persona = load_persona("panicked_caller")
    assert persona.description in system["content"] and panic_caller.user.goal in system["content"]
    assert (
        '- phone (phone, number); when asked, say something like: "My phone number is 555-0142."' in system["content"]
    )
    assert "- address (address, where)" in system["content"]
    assert STOP_MARKER in system["content"]
    assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
    assert conversation[1]["content"] == panic_caller.user.opening
    assert conversation[2]["content"] == "Stay with me.\n\nWhat is your phone number?"
    assert "PT-9001" not in str(conversation)  # tool results are not shown to the user
    assert user.revealed == {"phone"}


def test_follow_ups_are_in_the_prompt_in_order(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", "Please hurry!")
    requests = ["Can my wife ride in the ambulance?", "Which hospital is it?"]
    user_spec = panic_caller.user.model_copy(update={"follow_ups": requests})
    user = started(panic_caller.model_copy(update={"user": user_spec}))
    user.reply("Help is on the way.", [])
    system = provider.calls[0]["messages"][0]["content"]
    assert "# Your further requests" in system
    assert system.index(f"- {requests[0]}") < system.index(f"- {requests[1]}")
    provider.script("user", "Please hurry!")
    started(panic_caller).reply("Help is on the way.", [])
    assert "# Your further requests" not in provider.calls[-1]["messages"][0]["content"]


def test_given_facts_are_no_longer_hidden(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", "555-0142!", "Please hurry!")
    user = started(panic_caller)
    user.reply("Your phone number?", [])
    user.reply("Thanks.", [])
    system = provider.calls[1]["messages"][0]["content"]
    assert "- phone (phone, number)" not in system and "- address (address, where)" in system
    assert "already given\nphone" in system


def test_own_history_is_used_when_no_messages_are_given(provider: Provider, tiny_scenario: Scenario) -> None:
    provider.script("user", "He fell!", "Hurry!")
    user = started(tiny_scenario)
    user.reply("What happened?", [])
    user.reply("Is he breathing?", [])
    contents = [m["content"] for m in provider.calls[1]["messages"][1:]]
    assert contents[1:] == [tiny_scenario.user.opening, "What happened?", "He fell!", "Is he breathing?"]


# -- ending ----------------------------------------------------------------------------------


def test_the_stop_marker_ends_the_conversation(provider: Provider, tiny_scenario: Scenario) -> None:
    provider.script("user", f"Oh thank god, thank you! {STOP_MARKER}")
    user = started(tiny_scenario)
    turn = user.reply("Help is on the way.", [])
    assert (turn.text, turn.done, turn.fault) == ("Oh thank god, thank you!", True, None)
    assert turn.affect == "relieved"


def test_quotes_around_the_whole_reply_are_removed(provider: Provider, tiny_scenario: Scenario) -> None:
    provider.script("user", f'"Thank you! {STOP_MARKER}"')
    turn = started(tiny_scenario).reply("Help is on the way.", [])
    assert (turn.text, turn.done) == ("Thank you!", True)


def test_a_bare_stop_marker_says_the_closing_line(provider: Provider, tiny_scenario: Scenario) -> None:
    provider.script("user", STOP_MARKER)
    turn = started(tiny_scenario).reply("Help is on the way.", [])
    assert turn.done and turn.text == tiny_scenario.user.closing


def test_a_user_who_gives_up_is_done(provider: Provider, tiny_scenario: Scenario) -> None:
    user = started(tiny_scenario)
    turns = []
    for _ in range(10):
        provider.script("user", "Why are you asking me that? Somebody has to come right now!")
        turns.append(user.reply("Would you like to renew your oxygen order?", []))
        if turns[-1].done:
            break
    assert user.affect_state.gives_up and turns[-1].done
    assert not any(t.done for t in turns[:-1]) and all(t.fault is None for t in turns)
    assert turns[-1].affect == "panicked"


# -- planted faults --------------------------------------------------------------------------

GOOD = "Please, he's not breathing properly, I need help now!"


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        ("We're at 18 Alder Lane, Springfield, my number is 555-0142.", "reveals_unasked_fact"),
        ("Agent: I understand. Let me look that up for you.", "speaks_as_agent"),
        ("", "empty"),
        ("As an AI language model, I cannot make phone calls.", "breaks_persona"),
        ("Our patient id is PT-4471, email me at dad@example.org.", "invents_fact"),
    ],
)
def test_a_planted_fault_is_regenerated(provider: Provider, panic_caller: Scenario, planted: str, kind: str) -> None:
    provider.script("user", planted, GOOD)
    user = started(panic_caller)
    turn = user.reply("I'm here to help, what is going on?", [])
    assert (turn.text, turn.fault) == (GOOD, None)
    assert {f.kind for f in user.fault_log} == {kind}
    assert (user.usage.calls, user.usage.retries) == (2, 1)
    first, retry = (c["messages"][0]["content"] for c in provider.calls)
    assert "rejected" not in first and "rejected" in retry and kind.replace("_", " ") in retry


def test_ending_too_early_is_regenerated(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", f"Never mind. {STOP_MARKER}", GOOD)
    turn = started(panic_caller).reply("Please hold.", [])
    assert (turn.text, turn.done, turn.fault) == (GOOD, False, None)


def test_a_turn_still_faulty_after_the_retries_carries_the_fault(provider: Provider, panic_caller: Scenario) -> None:
    leak = "My number is 555-0142."
    provider.script("user", leak, leak, leak)
    user = started(panic_caller, max_retries=2)
    turn = user.reply("What happened?", [])
    assert turn.text == leak and not turn.done
    assert turn.fault == "reveals_unasked_fact: gives phone ('555-0142') before the agent asked for it"
    assert (user.usage.calls, user.usage.retries, len(user.fault_log)) == (3, 2, 3)
    seed = provider.calls[0]["seed"]
    assert [c["seed"] for c in provider.calls] == [seed, seed + 1, seed + 2]  # a regeneration is a new sample


def test_no_retries_returns_the_first_faulty_turn(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", "")
    turn = started(panic_caller, max_retries=0).reply("What happened?", [])
    assert turn.fault == "empty: the turn has no text" and len(provider.calls) == 1


# -- the LLM checker -------------------------------------------------------------------------

OK = '{"ok": true, "faults": []}'


def test_the_llm_checker_rejects_a_turn_the_rules_pass(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", "My neighbour Bob is a nurse, he's here.", GOOD)
    provider.script("checker", '{"ok": false, "faults": [{"kind": "invents_fact", "detail": "no neighbour"}]}', OK)
    user = started(panic_caller, checker_model="envsim-test/checker", checker_api_base="http://checker:1")
    turn = user.reply("What happened?", [])
    assert (turn.text, turn.fault) == (GOOD, None)
    assert [(f.kind, f.source) for f in user.fault_log] == [("invents_fact", "llm")]
    assert (user.usage.calls, user.usage.checker_calls, user.usage.retries) == (4, 2, 1)
    check = provider.of("checker")[0]
    assert check["temperature"] == 0.0 and check["api_base"] == "http://checker:1"
    assert "My neighbour Bob is a nurse" in check["messages"][0]["content"]


def test_the_checker_is_not_asked_about_a_turn_the_rules_reject(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", "", GOOD)
    provider.script("checker", OK)
    user = started(panic_caller, checker_model="envsim-test/checker")
    assert user.reply("What happened?", []).fault is None
    assert len(provider.of("checker")) == 1


def test_an_unusable_verdict_is_a_fault(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", GOOD)
    provider.script("checker", "The turn looks fine.")
    turn = started(panic_caller, checker_model="envsim-test/checker", max_retries=0).reply("What happened?", [])
    assert turn.fault is not None and turn.fault.startswith("checker_failed: ")


# -- usage, async, registry ------------------------------------------------------------------


def test_usage_counts_tokens_and_cost_per_episode(tiny_scenario: Scenario) -> None:
    user = LLMUser("openai/gpt-4o-mini", completion_options={"mock_response": "He fell, please hurry!"})
    user.reset(tiny_scenario, np.random.default_rng(0))
    user.reply("What happened?", [])
    one = copy.copy(user.usage)
    user.reply("Is he breathing?", [])
    assert one.calls == 1 and one.prompt_tokens > 0 and one.completion_tokens > 0 and one.cost > 0
    assert user.usage.calls == 2 and user.usage.cost == pytest.approx(2 * one.cost)
    user.reset(tiny_scenario, np.random.default_rng(0))
    assert user.usage.calls == 0 and user.fault_log == []


def test_areply_goes_through_acompletion(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", "Agent: how can I help you?", GOOD)
    user = started(panic_caller, seed=3)
    turn = asyncio.run(user.areply("What happened?", []))
    assert (turn.text, turn.fault) == (GOOD, None)
    assert [c["seed"] for c in provider.calls] == [3, 4]


def test_reply_before_reset_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        LLMUser("envsim-test/user").reply("hi", [])


@pytest.mark.parametrize("options", [{"max_retries": -1}, {"temperature": 3.0}])
def test_bad_options_raise(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LLMUser(**options)


def test_the_registry_makes_an_llm_user() -> None:
    user = make_user("llm", model="envsim-test/user", temperature=0.0, seed=1)
    assert isinstance(user, LLMUser) and (user.model, user.temperature, user.seed) == ("envsim-test/user", 0.0, 1)


# -- exemplars -------------------------------------------------------------------------------

CHATS = [
    Conversation(corpus="star", id="1", turns=[Turn(role="user", text="I need to book a hotel room in Paris.")]),
    Conversation(
        corpus="star",
        id="2",
        turns=[
            Turn(role="user", text="Hello?"),
            Turn(role="agent", text="Yes?"),
            Turn(role="user", text="My father collapsed, he can't breathe, please send an ambulance!"),
        ],
    ),
    Conversation(corpus="star", id="3", turns=[Turn(role="user", text="Is the oxygen refill ready?")]),
]


def test_exemplars_are_the_best_matching_user_turns(panic_caller: Scenario) -> None:
    lines = retrieve_exemplars(panic_caller, CHATS, k=2)
    assert lines == ["My father collapsed, he can't breathe, please send an ambulance!", "Is the oxygen refill ready?"]


def test_the_personas_own_exemplars_come_first(panic_caller: Scenario) -> None:
    persona = load_persona("panicked_caller").model_copy(
        update={"exemplars": [Exemplar(corpus="star", dialogue_id="1", turn_index=0)]}
    )
    scenario = panic_caller.model_copy(
        update={"user": panic_caller.user.model_copy(update={"persona": PersonaSpec(inline=persona)})}
    )
    assert retrieve_exemplars(scenario, CHATS, k=2) == [
        "I need to book a hotel room in Paris.",
        "My father collapsed, he can't breathe, please send an ambulance!",
    ]


def test_exemplars_reach_the_prompt_from_a_canonical_jsonl(
    provider: Provider, panic_caller: Scenario, tmp_path: Path
) -> None:
    from envsim.transcripts.importers import write_jsonl

    write_jsonl(CHATS, tmp_path / "chats.jsonl")
    provider.script("user", GOOD)
    started(panic_caller, exemplars=tmp_path / "chats.jsonl", n_exemplars=1).reply("What happened?", [])
    system = provider.calls[0]["messages"][0]["content"]
    assert '- "My father collapsed, he can\'t breathe, please send an ambulance!"' in system
    assert "hotel" not in system


# -- whole episodes --------------------------------------------------------------------------


def caller(messages: list[dict[str, Any]]) -> str:
    """A well-behaved caller model: answers what the agent (the model's ``user`` turn) asks."""
    asked = messages[-1]["content"].lower()
    if "phone" in asked and "address" in asked:
        return "555-0142, and we're at 18 Alder Lane, Springfield. Hurry!"
    return f"Thank you, I'll stay with him. {STOP_MARKER}"


def test_a_whole_episode_with_the_reference_agent(provider: Provider, panic_caller: Scenario) -> None:
    provider.script("user", *[caller] * 4)
    user = LLMUser("envsim-test/user", seed=7)
    trajectory, breakdown = run_episode(ScenarioEnv(panic_caller, user=user), ScriptedAgent(), seed=1)
    assert breakdown.total == 1.0 and trajectory.end_reason == "agent_ended"
    assert {"role": "user", "content": "555-0142, and we're at 18 Alder Lane, Springfield. Hurry!"} in (
        trajectory.messages
    )
    assert user.fault_log == [] and user.usage.calls == len(provider.calls) == 1
    assert user.revealed == {"phone", "address"}
    first = provider.calls[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user"]


def test_a_whole_async_episode(provider: Provider, tiny_scenario: Scenario) -> None:
    provider.script("user", *[lambda m: "555-0142!" if "phone" in m[-1]["content"] else f"Thanks {STOP_MARKER}"] * 4)
    user = LLMUser("envsim-test/user")
    trajectory, breakdown = asyncio.run(arun_episode(ScenarioEnv(tiny_scenario, user=user), ScriptedAgent(), seed=2))
    assert breakdown.total == 1.0 and user.fault_log == []
    assert {"role": "user", "content": "555-0142!"} in trajectory.messages


def _prompts_for_phone(
    provider: Provider, tiny_scenario: Scenario, update: dict[str, Any], messages: tuple[str, ...]
) -> tuple[LLMUser, list[str]]:
    """A user on the tiny scenario with its phone fact updated, after replying to ``messages``; its system prompts."""
    phone = tiny_scenario.user.facts[0].model_copy(update=update)
    scenario = tiny_scenario.model_copy(update={"user": tiny_scenario.user.model_copy(update={"facts": [phone]})})
    user = started(scenario)
    for message in messages:
        user.reply(message, [])
    return user, [c["messages"][0]["content"] for c in provider.of("user")]


def test_the_prompt_holds_what_is_not_found_yet_and_a_slip_to_correct(
    provider: Provider, tiny_scenario: Scenario
) -> None:
    """``found_after`` and ``said_first`` (envsim.user.recall) reach the model: not found yet until asked enough,
    the wrong value to give once, then the correction to start the next message with."""
    provider.script("user", "I can't find it, hold on!", "It's 555-0124!", "Oh no, I mean 555-0142! Hurry!")
    user, prompts = _prompts_for_phone(
        provider,
        tiny_scenario,
        {"found_after": 1, "said_first": "555-0124"},
        ("What is your phone number?", "What is your phone number?", "Thanks, one moment."),
    )
    assert len(prompts) == 3
    assert "you have not found it yet" in prompts[0] and "you have not found it yet" not in prompts[1]
    assert all('you say "555-0124"' in p for p in prompts[:2]) and 'you say "555-0124"' not in prompts[2]
    assert "Correct your mistake first" in prompts[2] and 'but it is "555-0142"' in prompts[2]
    assert "Correct your mistake first" not in prompts[1] and user.revealed == {"phone"}


def test_the_prompt_holds_a_detail_just_found_for_the_next_message(provider: Provider, tiny_scenario: Scenario) -> None:
    """A fact looked for (``found_after``) is given in the next message, asked or not, and only then."""
    provider.script("user", "I can't find it, hold on!", "Found it: 555-0142.", "Thanks!")
    user, prompts = _prompts_for_phone(
        provider,
        tiny_scenario,
        {"found_after": 1},
        ("What is your phone number?", "Thanks, one moment.", "Still checking."),
    )
    assert ["Details you have just found" in p for p in prompts] == [False, True, False]
    assert 'your phone: "555-0142"' in prompts[1] and user.revealed == {"phone"}
