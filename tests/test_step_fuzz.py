"""Fuzzing ``env.step``: whatever an agent sends, the step returns and the episode stays recordable.

Hypothesis draws sequences of actions in every form the environment reads (plain text, JSON
text, tool-call dicts, OpenAI assistant message dicts) and in forms it does not (other objects),
filled with text that has lone surrogates, structures nested thousands deep, integers of
thousands of digits, NaN and infinities, and objects whose ``repr`` and ``str`` raise. For each
step: no exception, the observation is a ``str`` inside ``env.observation_space``, and ``info``
and the trajectory serialise (the trajectory's JSON and hash, the run store's JSONL line, its
text, a dataset's strict JSON line; Parquet and JSON Lines datasets for the hostile forms).
The explicit tests below pin each hostile form named in the issue, the observation bound and a
guard against super-linear steps (a generous bound: bench/long_message.py times them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envsim.batch.store import EpisodeRecord, trajectory_hash
from envsim.datasets import chat_messages, write_rows
from envsim.env import ScenarioEnv
from envsim.scenario import Scenario
from envsim.spaces import ChatText
from envsim.transcript_text import format_messages
from envsim.user.base import UserTurn
from envsim.user.scripted import ScriptedUser
from tests.conftest import DISPATCH, LOOKUP

SLOW_S = 2.0
"""A guard against a step that is super-linear in the message's length (a step takes milliseconds)."""

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Hostile:
    """An object whose ``repr`` and ``str`` raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


def nested(depth: int, kind: str = "dict") -> Any:
    """A dict (or list) nested ``depth`` levels deep."""
    node: Any = 1
    for _ in range(depth):
        node = {"a": node} if kind == "dict" else [node]
    return node


# -- strategies ------------------------------------------------------------------------------

surrogates = st.characters(categories=["Cs"])
texts = st.text(st.one_of(st.characters(), surrogates), max_size=40)
"""Text with any character, lone surrogates included."""

huge_ints = st.sampled_from([5000, -4400, 300, 19, -20]).map(
    lambda digits: (-1 if digits < 0 else 1) * 10 ** abs(digits)
)
floats = st.floats(allow_nan=True, allow_infinity=True)
deep = st.builds(nested, st.sampled_from([150, 300, 1000, 5000]), st.sampled_from(["dict", "list"]))
oddities = st.one_of(st.builds(Hostile), st.builds(object), st.just(b"bytes"), st.just({1, 2}), st.just((1, "a")))

values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), huge_ints, floats, texts, oddities, deep),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
"""JSON-like values, with everything JSON has no room for mixed in."""


def _json_or_text(value: Any) -> str:
    """``value`` as JSON text where it has one (surrogates escaped or not), else its text."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except Exception:  # a raising __str__, a digit limit, nesting past the recursion limit
        return '{"name": "lookup_patient", "arguments": {"phone": ' + "9" * 5000 + "}}"


tool_names = st.one_of(st.sampled_from(["lookup_patient", "dispatch_emergency_services", "nope", ""]), texts)
arguments = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(["phone", "patient_id"]), texts), values, max_size=4),
    values.map(_json_or_text),  # JSON text, as OpenAI sends arguments
    values,
)
"""A tool call's arguments: a dict, JSON text, or anything else."""


tool_call_dicts = st.fixed_dictionaries({"name": tool_names, "arguments": arguments})
openai_messages = st.fixed_dictionaries(
    {
        "role": st.just("assistant"),
        "content": st.one_of(st.none(), texts),
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.one_of(texts, st.integers()),
                    "type": st.just("function"),
                    "function": st.one_of(st.fixed_dictionaries({"name": tool_names, "arguments": arguments}), values),
                }
            ),
            max_size=3,
        ),
    }
)
mutated_json = st.builds(
    lambda base, at, insert: base[:at] + insert + base[at:],
    st.sampled_from([LOOKUP, DISPATCH]),
    st.integers(0, 160),
    texts,
)

actions = st.one_of(
    texts,
    mutated_json,
    tool_call_dicts,
    tool_call_dicts.map(_json_or_text),
    openai_messages,
    openai_messages.map(_json_or_text),
    values,
    st.dictionaries(texts, values, max_size=3),
)
"""Every form of action, well made or not."""


# -- checks ----------------------------------------------------------------------------------


def assert_recordable(env: ScenarioEnv) -> None:
    """The episode's trajectory serialises: its JSON, its hash, the run store's line (which reads back), its text."""
    trajectory = env.trajectory()
    text = trajectory.to_json()
    json.loads(text)
    breakdown = env.score()
    record = EpisodeRecord(
        episode_id="e0",
        scenario_id=trajectory.scenario_id,
        scenario_hash="s",
        config_hash="c",
        index=0,
        base_seed=0,
        seed=0,
        outcome=breakdown.outcome,
        reward=breakdown.total,
        breakdown=breakdown,
        trajectory=trajectory,
        trajectory_hash=trajectory_hash(trajectory),
    )
    assert EpisodeRecord.from_line(record.to_line()).trajectory_hash == record.trajectory_hash
    format_messages(trajectory.messages).encode("utf-8")  # what render() and the CLI print
    json.dumps(chat_messages(trajectory), ensure_ascii=False, allow_nan=False).encode("utf-8")  # a dataset's line


def step_checked(env: ScenarioEnv, action: Any) -> tuple[str, bool]:
    """One step, with the observation checked against the space and ``info`` serialised; (observation, ended)."""
    observation, reward, terminated, truncated, info = env.step(action)
    assert isinstance(observation, str) and env.observation_space.contains(observation)
    assert isinstance(float(reward), float)
    pydantic_core.to_json(info["messages"])
    return observation, terminated or truncated


@SETTINGS
@given(st.lists(actions, min_size=1, max_size=3))
def test_no_action_breaks_a_step_or_the_record(tiny_scenario: Scenario, sequence: list[Any]) -> None:
    env = ScenarioEnv(tiny_scenario)
    env.reset(seed=0)
    for action in sequence:
        _, ended = step_checked(env, action)
        if ended:
            break
    assert_recordable(env)


# -- the hostile forms, one by one -----------------------------------------------------------

HOSTILE: dict[str, Any] = {
    "surrogate in text": "Could you help \ud800 me?",
    "surrogate in JSON text": '{"name": "lookup_patient", "arguments": {"phone": "\udfff"}}',
    "surrogate JSON escape": '{"name": "lookup_patient", "arguments": {"phone": "\\ud800"}}',
    "surrogate in a dict": {"name": "lookup_patient", "arguments": {"phone": "555\ud800"}},
    "surrogate in an OpenAI message": {
        "role": "assistant",
        "content": "x\ud800",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup_patient", "arguments": "{}"}}],
    },
    "5000-deep dict": nested(5000),
    "5000-deep arguments": {"name": "lookup_patient", "arguments": nested(5000)},
    "10**5000 argument": {"name": "lookup_patient", "arguments": {"phone": 10**5000}},
    "5000-digit JSON number": '{"name": "lookup_patient", "arguments": {"phone": ' + "9" * 5000 + "}}",
    "raising repr as a value": {"name": "lookup_patient", "arguments": {"phone": Hostile()}},
    "raising repr as the action": Hostile(),
    "10 MB message": "x" * 10_000_000,
    "NaN argument": {"name": "lookup_patient", "arguments": {"phone": float("nan")}},
    "1e999 in JSON text": '{"name": "lookup_patient", "arguments": {"phone": 1e999}}',
}


@pytest.mark.parametrize("form", list(HOSTILE))
def test_each_hostile_action_is_a_malformed_action_observation(
    tiny_env: ScenarioEnv, form: str, tmp_path: Path
) -> None:
    tiny_env.reset(seed=0)
    observation, ended = step_checked(tiny_env, HOSTILE[form])
    assert json.loads(observation)["error"]["type"] == "malformed_action" and not ended
    assert_recordable(tiny_env)
    step_checked(tiny_env, LOOKUP)  # the episode goes on
    assert_recordable(tiny_env)
    rows = [{"messages": chat_messages(tiny_env.trajectory()), "scenario_id": "TinyEmergency"}]
    write_rows(rows, tmp_path / "sft.parquet")
    write_rows(rows, tmp_path / "sft.jsonl")


def test_a_megabyte_message_steps_in_milliseconds(tiny_env: ScenarioEnv) -> None:
    tiny_env.reset(seed=0)
    for message in ["Could you tell me your phone number? " * 27_000, "a" * 1_000_000]:
        start = time.perf_counter()
        observation, _ = step_checked(tiny_env, message)
        assert time.perf_counter() - start < SLOW_S
    assert_recordable(tiny_env)


def test_an_observation_longer_than_the_space_is_cut_to_it(tiny_scenario: Scenario) -> None:
    env = ScenarioEnv(tiny_scenario)
    env.reset(seed=0)
    # the tool's error quotes the argument (repr doubles each backslash, JSON doubles it again): 4x the action
    observation, _ = step_checked(env, {"name": "lookup_patient", "arguments": {"phone": "\\" * 400_000}})
    assert len(observation) == env.observation_space.max_length  # type: ignore[attr-defined]
    assert observation.endswith("more than the observation space's 1,000,000]")
    small = ScenarioEnv(tiny_scenario)
    small.observation_space = ChatText(max_length=40)
    small.reset(seed=0)
    observation, _ = step_checked(small, LOOKUP)
    assert len(observation) == 40 and observation.startswith('{"')


class SurrogateUser(ScriptedUser):
    """A user simulator whose replies (like a model's, decoded from JSON) hold a lone surrogate."""

    def reply(self, agent_message: str, messages: Sequence[dict[str, Any]]) -> UserTurn:
        turn = super().reply(agent_message, messages)
        return UserTurn(turn.text + " \ud83d", done=turn.done, affect=turn.affect)


def test_a_user_reply_with_a_lone_surrogate_is_recorded_as_its_escape(tiny_scenario: Scenario) -> None:
    env = ScenarioEnv(tiny_scenario, user=SurrogateUser())
    env.reset(seed=0)
    observation, _ = step_checked(env, "What is your phone number?")
    assert observation.endswith(" \\ud83d")
    assert_recordable(env)
