"""TRL's ``environment_factory`` over envsim scenarios (:mod:`envsim.train.environment_factory`).

Fast unit tests of the generated environment classes (signatures, docstrings, calls, the mock
user as a tool, the reward), then GRPOTrainer itself for two steps on CPU with a tiny model
built here (local tokenizer, no hub), warmed up by a short SFT on scripted episodes rewritten in
the tool protocol (a random model never calls a tool), so TRL's tool loop really runs.
"""

from __future__ import annotations

import copy
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import pytest

from envsim.agents.scripted import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.registration import discover
from envsim.rollout import run_episode
from envsim.train.environment_factory import (
    EPISODE_ENDED,
    REPLY_TOOL,
    TOOL_PROTOCOL,
    EnvironmentFactory,
    EnvironmentFactoryError,
    ScenarioEnvironment,
    environment_class,
    python_type,
    tool_function,
    tool_methods,
    tool_schemas,
)
from envsim.user.base import UserTurn
from envsim.user.scripted import ScriptedUser

SCENARIOS = ("MedicalSupplyPanicCaller", "RetailCancelPendingOrder", "BankingLostCardReplacement")

# TRL 1.16 reads `model.is_gradient_checkpointing`, which transformers 5.x deprecates (FutureWarning per step).
TRL_CHECKPOINTING = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"
# TRL marks environment_factory experimental (a UserWarning when the trainer is built).
TRL_EXPERIMENTAL = "ignore:You are using 'environment_factory':UserWarning"


def _envsim_schemas(scenario_id: str) -> dict[str, dict[str, Any]]:
    env = ScenarioEnv(scenario_id)
    return {s["function"]["name"]: s["function"] for s in env.session.tools.schemas()}


def _replay(env: ScenarioEnvironment, messages: list[dict[str, Any]]) -> None:
    """Play an envsim conversation's assistant turns through the environment's methods."""
    for message in messages:
        if message["role"] != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            getattr(env, call["function"]["name"])(**json.loads(call["function"]["arguments"]))
        if not message.get("tool_calls"):
            env.reply_to_customer(message["content"])


# -- the generated classes -------------------------------------------------------------------


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_every_tool_is_a_method_with_a_signature_and_docstring_generated_from_its_schema(scenario_id: str) -> None:
    cls = environment_class(scenario_id)
    schemas = _envsim_schemas(scenario_id)
    assert cls.__name__ == scenario_id and issubclass(cls, ScenarioEnvironment)
    assert sorted(fn.__name__ for fn in tool_methods(cls)) == sorted([*schemas, REPLY_TOOL])
    for name, function in schemas.items():
        method = getattr(cls, name)
        parameters = function["parameters"]
        signature = inspect.signature(method)
        args = list(signature.parameters.values())[1:]
        assert [p.name for p in args] == list(parameters["properties"])
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in args)
        required = set(parameters.get("required", []))
        assert {p.name for p in args if p.default is inspect.Parameter.empty} == required
        for p in args:
            if p.name not in required:
                assert p.default == parameters["properties"][p.name].get("default")
        assert typing.get_type_hints(method) == {**{p.name: p.annotation for p in args}, "return": str}
        doc = inspect.getdoc(method)
        assert doc is not None and doc.startswith(function["description"])
        for arg, prop in parameters["properties"].items():
            assert f"\n    {arg}: {prop['description']}" in doc


def test_transformers_renders_the_envsim_schema_from_the_generated_methods() -> None:
    get_json_schema = pytest.importorskip("transformers.utils").get_json_schema
    seen = 0
    for scenario_id in SCENARIOS:
        env = environment_class(scenario_id)()
        bound = [get_json_schema(getattr(env, fn.__name__)) for fn in tool_methods(type(env))]
        assert tool_schemas(type(env)) == bound
        for name, function in _envsim_schemas(scenario_id).items():
            rendered = get_json_schema(getattr(env, name))["function"]  # a bound method, as TRL passes it
            assert rendered["name"] == name and rendered["description"] == function["description"]
            parameters = rendered["parameters"]
            assert set(parameters.get("required", [])) == set(function["parameters"].get("required", []))
            for arg, prop in function["parameters"]["properties"].items():
                ours = parameters["properties"][arg]
                assert ours["description"].startswith(prop["description"])
                if "enum" in prop:
                    assert ours["enum"] == prop["enum"] and ours["type"] == prop["type"]
                elif "type" in prop and prop["type"] != "array":
                    assert ours["type"] == prop["type"]
                seen += 1
    assert seen > 20


def test_what_a_type_hint_cannot_say_is_written_into_the_description() -> None:
    fn = tool_function(
        {
            "type": "function",
            "function": {
                "name": "refund",
                "description": "Refund items.",
                "parameters": {
                    "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string"}}}},
                    "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "description": "What."},
                        "day": {"type": "string", "format": "date", "description": "When."},
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "Why."},
                    },
                    "required": ["items", "day"],
                },
            },
        }
    )
    doc = fn.__doc__ or ""
    assert 'items: What. (JSON schema: {"type":"array","items":{"type":"object","properties":{"sku"' in doc
    assert 'day: When. (JSON schema: {"type":"string","format":"date"})' in doc
    assert "note: Why.\n" in doc + "\n"
    signature = inspect.signature(fn)
    assert signature.parameters["note"].default is None
    assert typing.get_type_hints(fn)["items"] == list[dict[str, Any]]
    assert python_type({"type": ["integer", "null"]}) == (typing.Optional[int], True)  # noqa: UP045


def test_a_schema_that_is_no_python_signature_is_refused() -> None:
    schema = {"type": "function", "function": {"name": "f", "description": "F.", "parameters": {"properties": {}}}}
    schema["function"]["parameters"]["properties"]["not-a-name"] = {"type": "string", "description": "x"}
    with pytest.raises(EnvironmentFactoryError, match="'not-a-name' cannot be a Python parameter name"):
        tool_function(schema)


def test_a_tool_named_like_a_reserved_method_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    reset = ScenarioEnv.reset

    def clashing(self: ScenarioEnv, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        opening, info = reset(self, **kwargs)
        clash = {"type": "function", "function": {"name": "get_reward", "description": "x", "parameters": {}}}
        return opening, {**info, "tools": [*info["tools"], clash]}

    monkeypatch.setattr(ScenarioEnv, "reset", clashing)
    with pytest.raises(EnvironmentFactoryError, match="'BankingLostCardReplacement': tool 'get_reward' cannot be"):
        environment_class("BankingLostCardReplacement", judge_model="openai/clash-test")  # not cached yet


# -- calls, the mock user, the reward --------------------------------------------------------


def test_a_tool_call_changes_the_world_and_a_bad_argument_is_envsim_s_typed_error() -> None:
    env = EnvironmentFactory("RetailCancelPendingOrder")["RetailCancelPendingOrder"]()
    env.reset(seed=0)
    world = env.env.unwrapped.session.world  # type: ignore[attr-defined]
    before = world.state_hash()
    result = json.loads(env.cancel_order(order_id="#W0001", reason="no_longer_needed"))  # type: ignore[attr-defined]
    assert result["order"]["status"] == "cancelled"
    assert world.state_hash() != before
    bad = json.loads(env.cancel_order(order_id="#W0001", reason="bored"))  # type: ignore[attr-defined]
    assert bad["error"]["type"] == "invalid_arguments" and "reason" in bad["error"]["message"]
    missing = json.loads(env.get_order())  # type: ignore[attr-defined]
    assert missing["error"]["type"] == "invalid_arguments" and "order_id" in missing["error"]["message"]
    extra = json.loads(env.get_order(order_id="#W0001", colour="red"))  # type: ignore[attr-defined]
    assert extra["error"]["type"] == "invalid_arguments" and "colour" in extra["error"]["message"]
    unknown = json.loads(env.get_order(order_id="#W9999"))  # type: ignore[attr-defined]
    assert unknown["error"]["type"] == "not_found"
    # Every call was an envsim step, recorded in the trajectory.
    calls = env.env.unwrapped.trajectory().tool_calls  # type: ignore[attr-defined]
    assert [(c.name, c.ok, c.error_type) for c in calls] == [
        ("cancel_order", True, None),
        ("cancel_order", False, "invalid_arguments"),
        ("get_order", False, "invalid_arguments"),
        ("get_order", False, "invalid_arguments"),
        ("get_order", False, "not_found"),
    ]


def test_reply_to_customer_returns_the_mock_user_s_reply() -> None:
    env = environment_class("RetailCancelPendingOrder")()
    opening = env.reset(seed=3, scenario_id="RetailCancelPendingOrder", prompt=[], environment="ignored")
    reference = ScenarioEnv("RetailCancelPendingOrder")
    assert opening == reference.reset(seed=3)[0]
    reply = env.reply_to_customer("Could you give me your order number?")
    assert reply == reference.step("Could you give me your order number?")[0]
    assert env.info["messages"][-1] == {"role": "user", "content": reply}
    # A message that looks like a tool call is still a message to the customer.
    env.reply_to_customer('{"name": "cancel_order", "arguments": {"order_id": "#W0001"}}')
    assert env.env.unwrapped.trajectory().tool_calls == []  # type: ignore[attr-defined]


def test_a_played_episode_gets_envsim_s_reward_and_breakdown() -> None:
    env = environment_class("RetailCancelPendingOrder")()
    reference = ScenarioEnv("RetailCancelPendingOrder")
    trajectory, _ = run_episode(reference, ScriptedAgent(), seed=1)
    env.reset(seed=1)
    _replay(env, trajectory.messages)
    played = env.env.unwrapped.trajectory()  # type: ignore[attr-defined]
    assert played.end_reason == "user_done" == trajectory.end_reason
    assert played.final_state_hash == trajectory.final_state_hash
    assert env.get_reward() == 1.0 == reference.score().total
    assert env.outcome == "success" and env.breakdown is not None
    assert env.breakdown == reference.score().model_dump()
    # After the end, every call is a typed error and the world stays as it was.
    ended = json.loads(env.get_order(order_id="#W0001"))  # type: ignore[attr-defined]
    assert ended["error"]["type"] == EPISODE_ENDED
    assert json.loads(env.reply_to_customer("Anything else?"))["error"]["type"] == EPISODE_ENDED
    assert env.env.unwrapped.trajectory() is played  # type: ignore[attr-defined]


def test_a_model_that_stops_without_closing_is_scored_as_it_stands() -> None:
    env = environment_class("RetailCancelPendingOrder")()
    env.reset(seed=1)
    env.cancel_order(order_id="#W0001", reason="no_longer_needed")  # type: ignore[attr-defined]
    reward = env.get_reward()  # TRL calls it after a turn without a tool call: the user never said goodbye
    assert env.breakdown is not None and env.outcome == "truncated"
    assert reward == env.breakdown["total"] and reward is not None and 0.0 < reward < 1.0
    assert env.breakdown["components"]["final_state"]["score"] == 1.0
    again = environment_class("RetailCancelPendingOrder")()
    again.reset(seed=1)
    assert again.get_reward() == 0.0  # nothing done: nothing earned


def test_reset_starts_a_fresh_episode_and_refuses_another_scenario_s_row() -> None:
    env = environment_class("RetailCancelPendingOrder")()
    with pytest.raises(EnvironmentFactoryError, match="before reset"):
        env.get_reward()
    env.reset(seed=1)
    env.cancel_order(order_id="#W0001", reason="no_longer_needed")  # type: ignore[attr-defined]
    env.get_reward()
    env.reset(seed=1)
    assert env.breakdown is None and env.env.unwrapped.trajectory().tool_calls == []  # type: ignore[attr-defined]
    with pytest.raises(EnvironmentFactoryError, match="names scenario 'BankingLostCardReplacement'"):
        env.reset(seed=1, scenario_id="BankingLostCardReplacement")


class _FaultyUser(ScriptedUser):
    """A scripted user that breaks character on its first reply (a simulator fault)."""

    def reply(self, agent_message: str, messages: Any) -> UserTurn:
        return UserTurn("As an AI language model, I cannot say.", fault="the user broke character")


def test_an_episode_the_simulator_broke_gets_no_reward() -> None:
    envs = EnvironmentFactory("RetailCancelPendingOrder", user_factory=_FaultyUser)
    env = envs["RetailCancelPendingOrder"]()
    assert isinstance(env.env.unwrapped.user, _FaultyUser)  # type: ignore[attr-defined]
    env.reset(seed=0)
    env.reply_to_customer("How can I help?")
    assert env.outcome == "sim_fault"
    assert env.get_reward() is None  # TRL turns None into NaN: dropped from the group, not scored 0


def test_the_turn_limit_ends_the_episode() -> None:
    env = environment_class("RetailCancelPendingOrder")()
    env.reset(seed=0)
    limit = env.env.unwrapped.scenario.max_turns  # type: ignore[attr-defined]
    results = [env.get_order(order_id="#W0001") for _ in range(limit + 1)]  # type: ignore[attr-defined]
    assert env.outcome == "truncated" and env.breakdown is not None
    assert env.env.unwrapped.trajectory().end_reason == "max_turns"  # type: ignore[attr-defined]
    assert json.loads(results[-1])["error"]["type"] == EPISODE_ENDED
    assert env.get_reward() == env.breakdown["total"]


def test_the_factory_is_trl_s_multi_environment_dict_and_its_rows_route_to_it() -> None:
    shipped = discover()["BankingLostCardReplacement"][0].parents[1]
    envs = EnvironmentFactory(["RetailCancelPendingOrder", str(shipped / "banking")])
    assert isinstance(envs, dict)
    assert "RetailCancelPendingOrder" in envs and "BankingLostCardReplacement" in envs
    assert all(issubclass(cls, ScenarioEnvironment) for cls in envs.values())
    assert envs["RetailCancelPendingOrder"] is environment_class("RetailCancelPendingOrder")  # one class per scenario
    rows = envs.rows(seeds=[4, 5])
    assert len(rows) == 2 * len(envs)
    row = rows[0]
    assert row["environment"] == row["scenario_id"] == "RetailCancelPendingOrder" and row["seed"] == 4
    system, user = row["prompt"]
    assert system["role"] == "system" and system["content"].endswith(TOOL_PROTOCOL)
    assert system["content"].startswith(
        ScenarioEnv("RetailCancelPendingOrder").reset(seed=0)[1]["messages"][0]["content"]
    )
    assert user == {"role": "user", "content": ""}
    # TRL calls reset with every column but `environment`; the opening is the envsim episode's.
    env = envs[row["environment"]]()
    opening = env.reset(**{k: v for k, v in row.items() if k != "environment"})
    assert opening == ScenarioEnv("RetailCancelPendingOrder").reset(seed=4)[0]


# -- GRPOTrainer through environment_factory --------------------------------------------------


def _tool_protocol(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An envsim conversation in the factory's protocol: messages to the user become reply_to_customer
    calls answered by the user's next message; the model then closes with a turn without a tool call."""
    from envsim.agents.hf import template_messages

    out: list[dict[str, Any]] = [{"role": "system", "content": messages[0]["content"] + TOOL_PROTOCOL}]
    for message in template_messages(messages[1:]):
        if message["role"] == "assistant" and not message.get("tool_calls"):
            call = {"type": "function", "function": {"name": REPLY_TOOL, "arguments": {"text": message["content"]}}}
            out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif message["role"] == "user" and out[-1]["role"] == "assistant":
            out.append({"role": "tool", "name": REPLY_TOOL, "content": message["content"]})
        elif message["role"] == "tool":
            out.append({"role": "tool", "content": message["content"]})
        else:
            out.append(message)
    return [*out, {"role": "assistant", "content": "Goodbye."}]


@pytest.fixture(scope="module")
def warm_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tiny model and local tokenizer fine-tuned on scripted episodes in the factory's tool protocol."""
    pytest.importorskip("trl", reason="the train extra is not installed")
    import torch
    from transformers import set_seed

    from envsim.train.sft import sft_config, sft_rows, sft_train
    from envsim.train.tiny import build_model, build_tokenizer, scenario_corpus

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        set_seed(0)
        scenario = "RetailCancelPendingOrder"
        tools = tool_schemas(environment_class(scenario))  # what TRL renders into the prompt
        env = ScenarioEnv(scenario)
        conversations = [_tool_protocol(run_episode(env, ScriptedAgent(), seed=s)[0].messages) for s in range(2)]
        corpus = scenario_corpus([scenario], seeds=[0])
        tokenizer = build_tokenizer([*corpus, json.dumps(tools), *map(json.dumps, conversations)], vocab_size=4096)
        model = build_model(tokenizer, hidden_size=128, layers=2, heads=2, intermediate_size=256, seed=0)
        args = sft_config(
            str(tmp_path_factory.mktemp("sft")),
            max_steps=40,
            learning_rate=3e-3,
            per_device_train_batch_size=1,
            lr_scheduler_type="constant",
            logging_steps=40,
            seed=0,
        )
        sft_train(model, tokenizer, sft_rows(tokenizer, [(c, tools) for c in conversations]), args=args, quiet=True)
        yield tokenizer, model
    finally:
        torch.set_num_threads(threads)


@pytest.mark.filterwarnings(TRL_CHECKPOINTING)
@pytest.mark.filterwarnings(TRL_EXPERIMENTAL)
def test_grpo_trains_through_environment_factory(warm_model: Any, tmp_path: Path) -> None:
    import torch
    from trl import GRPOTrainer  # type: ignore[attr-defined]

    from envsim.train.grpo import grpo_config

    tokenizer, model = warm_model
    model = copy.deepcopy(model)
    envs = EnvironmentFactory("RetailCancelPendingOrder")
    seen: list[list[tuple[Any, ...]]] = []

    def record(completions: list[Any], environments: list[ScenarioEnvironment], **kwargs: Any) -> list[None]:
        """Weight-0 observer: each rollout's environment, episode and TRL completion (None: no score of its own)."""
        seen.append(
            [
                (type(e).__name__, e.env.unwrapped.trajectory(), e.get_reward(), kwargs["seed"][i], completions[i])  # type: ignore[attr-defined]
                for i, e in enumerate(environments)
            ]
        )
        return [None] * len(environments)

    args = grpo_config(
        str(tmp_path),
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=2,
        learning_rate=1e-3,
        temperature=1.0,
        max_completion_length=256,
        max_tool_calling_iterations=6,
        reward_weights=[0.0],
        seed=0,
    )
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            args=args,
            reward_funcs=[record],
            train_dataset=envs.dataset(seeds=range(2)),
            environment_factory=envs,
        )
        trainer.train()
    finally:
        torch.set_num_threads(threads)

    steps = [entry for entry in trainer.state.log_history if "rewards/RetailCancelPendingOrder/mean" in entry]
    assert len(seen) == len(steps) == 2
    calls_seen = replies_seen = 0
    for batch, logged in zip(seen, steps, strict=True):
        assert len(batch) == 8 and {name for name, *_ in batch} == {"RetailCancelPendingOrder"}
        # The group of 4 shares a seed, so an opening message; each rollout had its own episode.
        assert len({id(t) for _, t, *_ in batch}) == 8
        for group in (batch[:4], batch[4:]):
            assert len({seed for *_, seed, _ in group}) == 1
            assert len({t.messages[1]["content"] for _, t, *_ in group}) == 1
        # The logged reward is envsim's: the mean of get_reward() over the batch.
        rewards = [r for _, _, r, *_ in batch]
        assert all(r is not None for r in rewards)
        assert logged["rewards/RetailCancelPendingOrder/mean"] == pytest.approx(sum(rewards) / 8)  # type: ignore[arg-type]
        for _, trajectory, _, _, completion in batch:
            calls_seen += len(trajectory.tool_calls)
            replies_seen += sum(m["role"] == "user" for m in trajectory.messages[2:])
            # The envsim steps' observations (tool results and the user's replies, in order) are TRL's tool
            # results (but the last ones, when TRL dropped results past max_completion_length); after the
            # episode's end, calls get the episode_ended error; a call of a tool name the environment does
            # not have never reaches it (TRL answers it: "{'error': 'Tool ... not found.'}").
            observations = [m["content"] for m in trajectory.messages[2:] if m["role"] in ("tool", "user")]
            results = [m["content"] for m in completion if m["role"] == "tool"]
            trl_errors = [r for r in results if r.startswith("{'error': 'Tool ") and r.endswith(" not found.'}")]
            played = [r for r in results if EPISODE_ENDED not in r and r not in trl_errors]
            assert played == observations[: len(played)]
        assert logged["tools/call_frequency"] > 0
    assert calls_seen > 0 and replies_seen > 0, "the warm model called a scenario tool and talked to the user"
    changed = [name for name, value in model.named_parameters() if not torch.equal(before[name], value.detach())]
    assert changed, "the parameters changed"
