"""SFT rows: the assistant's tokens only, or the whole conversation for a model trained from scratch."""

from __future__ import annotations

from typing import Any

from envsim.train.sft import sft_rows

MESSAGES = [
    {"role": "system", "content": "You are an agent."},
    {"role": "user", "content": "My email is mei.chen12@mail.test."},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "find_customer_by_email", "arguments": '{"email": "mei.chen12@mail.test"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_0", "content": '{"id": "C0012", "email": "mei.chen12@mail.test"}'},
    {"role": "assistant", "content": "I found your account."},
]


def test_rows_learn_the_assistants_tokens_only_by_default(tokenizer: Any) -> None:
    (row,) = sft_rows(tokenizer, [(MESSAGES, None)])
    mask = row["assistant_masks"]
    assert len(mask) == len(row["input_ids"]) and 0 < sum(mask) < len(mask)
    learned = tokenizer.decode([t for t, m in zip(row["input_ids"], mask, strict=True) if m])
    assert "find_customer_by_email" in learned and "You are an agent" not in learned and "C0012" not in learned


def test_whole_rows_learn_every_token_the_tool_results_too(tokenizer: Any) -> None:
    (row,) = sft_rows(tokenizer, [(MESSAGES, None)], whole=True)
    (default,) = sft_rows(tokenizer, [(MESSAGES, None)])
    assert row["input_ids"] == default["input_ids"]
    assert row["assistant_masks"] == [1] * len(row["input_ids"])


def test_conversations_without_an_assistant_turn_give_no_row(tokenizer: Any) -> None:
    assert sft_rows(tokenizer, [(MESSAGES[:2], None)], whole=True) == []
