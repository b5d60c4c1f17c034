"""Delexicalised values (envsim.train.values): what a value is, placeholders by first appearance, the round trip
from the model's text back to the environment's action, and one codec for SFT rows, rollouts and evaluations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from envsim.agents.hf import parse_generation
from envsim.agents.scripted import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.rollout import run_episode
from envsim.train.chat import assistant_text
from envsim.train.episodes import EpisodeKey, EpisodeRunner, Generation, summarize
from envsim.train.values import KINDS, ValueCodec, is_value, kind_of, make_codec
from tests.train.conftest import SCENARIOS

CODEC = ValueCodec()


def _call(name: str, arguments: dict[str, Any], call_id: str = "c1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def _conversation() -> list[dict[str, Any]]:
    """A caller gives an email and an order id; the agent looks both up; the tool results repeat them."""
    return [
        {"role": "system", "content": "Refunds take 5-7 business days."},
        {"role": "user", "content": "Hi, my email is ana.li7@x.io and the order is #W0301."},
        {"role": "assistant", "content": None,
         "tool_calls": [_call("find_customer_by_email", {"email": "ana.li7@x.io"})]},
        {"role": "tool", "tool_call_id": "c1", "name": "find_customer_by_email",
         "content": json.dumps({"id": "C0059", "email": "ana.li7@x.io", "phone": "312-171-7644"})},
        {"role": "assistant", "content": None, "tool_calls": [_call("get_order", {"order_id": "#W0301"}, "c2")]},
        {"role": "tool", "tool_call_id": "c2", "name": "get_order",
         "content": json.dumps({"id": "#W0301", "customer_id": "C0059", "placed_on": "2024-06-26", "quantity": 3})},
    ]  # fmt: skip


def test_a_value_holds_a_digit_or_at_and_is_cut_at_delimiters() -> None:
    assert all(is_value(v) for v in ["#W0301", "C0059", "ana@x.io", "5-7", "$219.95", "2024-06-26", "2nd"])
    assert not any(is_value(v) for v in ["order", "Zip", "T-Shirt", "find_customer_by_email", "$"])
    view = CODEC.delexicalise(
        [
            {
                "role": "user",
                "content": "Order #W0301, (ana.li7@x.io). It's $19.99: paid on 2024-06-26; call 312-171-7644!",
            }
        ]
    )
    assert view.messages[0]["content"] == "Order <id1>, (<email1>). It's <money1>: paid on <date1>; call <phone1>!"
    assert [kind_of(v) for v in ["a@b", "2024-06-26", "$5", "555-123-4567", "C0059", "5-7", "43214"]] == [
        "email", "date", "money", "phone", "id", "num", "num"
    ]  # fmt: skip


def test_the_same_value_is_the_same_placeholder_on_every_turn() -> None:
    view = CODEC.delexicalise(_conversation())
    system, user, call1, result1, call2, result2 = view.messages
    assert system["content"] == "Refunds take <num1> business days."
    assert user["content"] == "Hi, my email is <email1> and the order is <id1>."
    assert json.loads(call1["tool_calls"][0]["function"]["arguments"]) == {"email": "<email1>"}
    assert json.loads(result1["content"]) == {"id": "<id2>", "email": "<email1>", "phone": "<phone1>"}
    assert json.loads(call2["tool_calls"][0]["function"]["arguments"]) == {"order_id": "<id1>"}
    assert json.loads(result2["content"]) == {
        "id": "<id1>",
        "customer_id": "<id2>",
        "placed_on": "<date1>",
        "quantity": 3,
    }
    assert view.table["<email1>"] == "ana.li7@x.io" and view.table["<id1>"] == "#W0301"
    # A conversation that grows keeps its earlier placeholders (a rollout re-delexicalises every turn).
    shorter = CODEC.delexicalise(_conversation()[:3])
    assert shorter.messages == view.messages[:3]
    assert shorter.table.items() <= view.table.items()
    # The environment's messages are not touched.
    assert _conversation()[1]["content"] == "Hi, my email is ana.li7@x.io and the order is #W0301."


def test_delexicalise_then_lexicalise_is_the_identity_on_actions(tokenizer: Any) -> None:
    messages = _conversation()
    view = CODEC.delexicalise(messages)
    for index in (2, 4):
        written = assistant_text(tokenizer, view.messages, None, assistant_index=index).removesuffix("<|im_end|>")
        assert "<email1>" in written or "<id1>" in written  # the model writes placeholders...
        action = parse_generation(CODEC.lexicalise(written, view.table))  # ...the environment gets the values
        assert isinstance(action, dict)
        (call,) = action["tool_calls"]
        (expected,) = messages[index]["tool_calls"]
        assert call["function"]["name"] == expected["function"]["name"]
        assert json.loads(call["function"]["arguments"]) == json.loads(expected["function"]["arguments"])
    said = CODEC.lexicalise("Your order <id1> is refunded; <money9> is unknown.", view.table)
    assert said == "Your order #W0301 is refunded; <money9> is unknown."  # an unknown placeholder passes through


def test_a_value_written_with_json_escapes_is_the_same_placeholder() -> None:
    raw_result = '{"note":"Jos\\u00e9 wrote from a\\/b7@x.io\\non 2024-06-26","ref":"\\u0023W0301"}'
    assert json.loads(raw_result)["ref"] == "#W0301"
    view = CODEC.delexicalise(
        [
            {"role": "user", "content": "I am a/b7@x.io, order #W0301"},
            {"role": "tool", "tool_call_id": "c", "name": "note", "content": raw_result},
        ]
    )
    assert view.messages[0]["content"] == "I am <email1>, order <id1>"
    assert json.loads(view.messages[1]["content"]) == {"note": "José wrote from <email1>\non <date1>", "ref": "<id1>"}
    assert "u00e9" not in view.table.values()  # an escape is not a value


def test_values_past_their_kinds_slots_stay_literal() -> None:
    emails = [f"user{i}@x.io" for i in range(KINDS["email"] + 2)]
    view = CODEC.delexicalise([{"role": "user", "content": " ".join(emails)}])
    words = view.messages[0]["content"].split()
    assert words[: KINDS["email"]] == [f"<email{i}>" for i in range(1, KINDS["email"] + 1)]
    assert words[KINDS["email"] :] == emails[KINDS["email"] :]
    assert len(CODEC.tokens()) == sum(KINDS.values()) == 64
    assert CODEC.lexicalise(" ".join(words), view.table) == " ".join(emails)


def test_a_placeholder_already_in_the_conversation_is_kept_and_not_reused() -> None:
    """A model that wrote an unknown placeholder sends it to the environment as written; the next new value of
    that kind skips its number."""
    view = CODEC.delexicalise(
        [
            {"role": "assistant", "content": None, "tool_calls": [_call("get_order", {"order_id": "<id1>"})]},
            {"role": "tool", "tool_call_id": "c1", "name": "get_order", "content": "no order <id1>; try #W0302"},
        ]
    )
    assert view.messages[1]["content"] == "no order <id1>; try <id2>"
    assert view.table == {"<id2>": "#W0302"}


def test_a_value_the_agent_composed_stays_literal_in_its_turn() -> None:
    """The caller says "14 March 1985"; the agent writes 1985-03-14 itself: at rollout time no placeholder would
    stand for it, so SFT must not teach one (BankingLostCardReplacement failed this way). Read back later in a
    tool result, it becomes a placeholder."""
    view = CODEC.delexicalise(
        [
            {"role": "user", "content": "Born 14 March 1985, phone 555-201-7788."},
            {"role": "assistant", "content": None,
             "tool_calls": [_call("verify", {"phone": "555-201-7788", "date_of_birth": "1985-03-14"})]},
            {"role": "tool", "tool_call_id": "c1", "name": "verify", "content": '{"dob":"1985-03-14"}'},
        ]
    )  # fmt: skip
    arguments = json.loads(view.messages[1]["tool_calls"][0]["function"]["arguments"])
    assert arguments == {"phone": "<phone1>", "date_of_birth": "1985-03-14"}
    assert json.loads(view.messages[2]["content"]) == {"dob": "<date1>"}


def test_literal_is_no_codec() -> None:
    assert make_codec("literal") is None
    assert isinstance(make_codec("placeholders"), ValueCodec)


@pytest.fixture(scope="module")
def placeholder_tokenizer() -> Any:
    """A tiny tokenizer trained on delexicalised conversations, with the placeholders as tokens of their own."""
    pytest.importorskip("trl", reason="the train extra is not installed")
    from envsim.train.tiny import build_tokenizer, scenario_corpus

    return build_tokenizer(
        scenario_corpus(SCENARIOS, seeds=[0], values=CODEC), vocab_size=2048, extra_tokens=CODEC.tokens()
    )


class SftReplay:
    """Writes, for each context, the next assistant segment of the SFT row whose tokens it starts."""

    def __init__(self, rows: Sequence[dict[str, list[int]]]) -> None:
        self.next: dict[tuple[int, ...], list[int]] = {}
        for row in rows:
            ids, mask = row["input_ids"], row["assistant_masks"]
            i = 0
            while i < len(ids):
                if mask[i] == 1 and (i == 0 or mask[i - 1] == 0):
                    end = i
                    while end < len(ids) and mask[end] == 1:
                        end += 1
                    self.next[tuple(ids[:i])] = ids[i:end]
                    i = end
                else:
                    i += 1

    def __call__(self, contexts: Sequence[list[int]], max_new_tokens: int) -> list[Generation]:
        out = []
        for context in contexts:
            ids = self.next[tuple(context)]  # KeyError: the rollout's context is not the SFT row's
            out.append(Generation(list(ids), [0.0] * len(ids)))
        return out


def test_sft_rows_and_rollouts_share_the_codec_token_for_token(placeholder_tokenizer: Any) -> None:
    """The SFT rows of the scripted agent's conversations, replayed through the episode runner with the same codec:
    the rollout is the SFT row token for token, its placeholders are single tokens, and the environment, which
    receives the values mapped back, scores every episode a success."""
    from envsim.train.sft import sft_rows

    tokenizer = placeholder_tokenizer
    keys = [EpisodeKey(s, seed) for s in SCENARIOS for seed in (0, 1)]
    conversations = []
    for key in keys:
        env = ScenarioEnv(key.scenario_id)
        trajectory, _ = run_episode(env, ScriptedAgent(), seed=key.seed)
        conversations.append((trajectory.messages, env.session.tools.schemas()))
    rows = sft_rows(tokenizer, conversations, values=CODEC)
    placeholder_ids = set(tokenizer.convert_tokens_to_ids(CODEC.tokens()))
    assert any(set(r["input_ids"]) & placeholder_ids for r in rows)
    assert tokenizer.tokenize("<id1>") == ["<id1>"]

    runner = EpisodeRunner(tokenizer, max_turn_tokens=512, values=CODEC)
    rollouts = runner.run(keys, SftReplay(rows))
    assert summarize(rollouts)["success_rate"] == 1.0
    for rollout, row, (messages, _) in zip(rollouts, rows, conversations, strict=True):
        assert rollout.prompt_ids + rollout.completion_ids == row["input_ids"]
        assert [0] * len(rollout.prompt_ids) + rollout.env_mask == row["assistant_masks"]
        literal = json.dumps(rollout.messages)
        assert "<email1>" not in literal and "<id1>" not in literal  # the environment saw values, not placeholders
        assert rollout.messages[-1]["role"] == messages[-1]["role"]


def test_grpo_rollouts_use_the_codec_they_are_given(placeholder_tokenizer: Any) -> None:
    from types import SimpleNamespace as NS

    from envsim.train.grpo import EnvsimRollout

    rollout = EnvsimRollout(values=CODEC)
    trainer = NS(processing_class=placeholder_tokenizer, model=NS(config=NS(max_position_embeddings=4096)))
    assert rollout._runner(trainer).values is CODEC


def test_an_amount_in_cents_is_read_as_the_dollars_the_agent_says() -> None:
    """The caller's $69.97 and the world's 6997 cents are one money placeholder; the agent's own cents stay numbers."""
    view = CODEC.delexicalise(
        [
            {"role": "user", "content": "I was charged $69.97."},
            {"role": "tool", "tool_call_id": "c", "name": "get_order",
             "content": '{"total_cents":6997,"refunded_cents":0,"quantity":2,"paid":true}'},
            {"role": "assistant", "content": None, "tool_calls": [_call("refund", {"amount_cents": 6997})]},
            {"role": "assistant", "content": "The $69.97 hold has been released."},
        ]
    )  # fmt: skip
    result = json.loads(view.messages[1]["content"])
    assert result == {"total_cents": "<money1>", "refunded_cents": "<money2>", "quantity": 2, "paid": True}
    assert view.table["<money1>"] == "$69.97" and view.table["<money2>"] == "$0.00"
    assert json.loads(view.messages[2]["tool_calls"][0]["function"]["arguments"]) == {"amount_cents": 6997}
    assert view.messages[3]["content"] == "The <money1> hold has been released."
