"""With ``split_values`` the tiny tokenizer splits a value the same way wherever it appears."""

from __future__ import annotations

from typing import Any

import pytest

from envsim.train.tiny import build_tokenizer, value_pre_tokenizer

pytest.importorskip("tokenizers", reason="the train extra is not installed")


def _pieces(tokenizer: Any, text: str) -> list[str]:
    return [tokenizer.decode([i]) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


NAMES = ("yusuf", "raj", "olivia", "mei", "carlos", "amara", "liam", "sofia")
SURNAMES = ("smith", "jones", "martinez", "chen", "okafor", "novak")


@pytest.fixture(scope="module")
def value_corpus() -> list[str]:
    """Conversations of many instances (the values vary), each instance's values recurring in it."""
    texts = []
    for i in range(48):
        email = f"{NAMES[i % 8]}.{SURNAMES[i % 6]}{100 + 7 * i}@{('example.com', 'mail.test')[i % 2]}"
        order = f"#W{1000 + 37 * i:04d}"
        texts.append(
            f"<|im_start|>user\nMy email is {email}. Order {order}.<|im_end|>\n"
            '<|im_start|>assistant\n<tool_call>\n{"name": "find_customer_by_email", '
            f'"arguments": {{"email": "{email}"}}}}\n</tool_call><|im_end|>\n'
            f'<|im_start|>user\n<tool_response>\n{{"email":"{email}","order":"{order}"}}\n</tool_response><|im_end|>\n'
        )
    return texts


def test_a_value_repeated_in_training_is_no_single_token(value_corpus: list[str]) -> None:
    tokenizer = build_tokenizer(value_corpus, vocab_size=4096, split_values=True)
    pieces = _pieces(tokenizer, "yusuf.smith100@example.com")
    assert pieces == ["yusuf", ".", "smith", "1", "0", "0", "@", "example", ".", "com"]


def test_without_split_values_a_training_value_may_become_one_token(value_corpus: list[str]) -> None:
    tokenizer = build_tokenizer(value_corpus, vocab_size=4096)
    assert len(_pieces(tokenizer, "yusuf.smith100@example.com")) < 10  # merged: what split_values prevents


def test_a_value_splits_into_the_same_tokens_in_a_sentence_and_in_a_tool_call(value_corpus: list[str]) -> None:
    tokenizer = build_tokenizer(value_corpus, vocab_size=4096, split_values=True)
    for value in ("mei.okafor994@mail.test", "#W4321", "raj.jones351@example.com", "#W0301", "555-0473"):
        said = _pieces(tokenizer, f"My email is {value}. Thanks")
        called = _pieces(tokenizer, f'{{"email": "{value}"}}')
        value_tokens = _pieces(tokenizer, value)
        assert _contains(said, value_tokens), (value, said)
        assert _contains(called, value_tokens), (value, called)


def _contains(tokens: list[str], part: list[str]) -> bool:
    return any(tokens[i : i + len(part)] == part for i in range(len(tokens) - len(part) + 1))


def test_the_pre_split_isolates_digits_and_value_punctuation_only() -> None:
    pieces = [p for p, _ in value_pre_tokenizer().pre_tokenize_str('{"id": "#W12", "x": 1}')]
    assert pieces == ['{"id":Ġ"', "#", "W", "1", "2", '",Ġ"x":Ġ', "1", "}"]


def test_a_saved_value_splitting_tokenizer_reads_back_the_same_tokens(value_corpus: list[str], tmp_path: Any) -> None:
    from transformers import AutoTokenizer

    tokenizer = build_tokenizer(value_corpus, vocab_size=4096, split_values=True)
    tokenizer.save_pretrained(tmp_path)
    text = 'My email is mei.okafor994@mail.test. {"order_id": "#W4321"}'
    assert AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_the_flywheel_builds_a_value_splitting_tokenizer_when_asked(tmp_path: Any) -> None:
    pytest.importorskip("trl", reason="the train extra is not installed")
    from envsim.train.flywheel import FlywheelConfig, _model

    config = FlywheelConfig(out=tmp_path, split_values=True, vocab_size=1024, hidden_size=32, layers=1)
    _, tokenizer, info = _model(config, ["RetailCancelPendingOrder"], None)
    assert info["vocab"] <= 1024 + 8
    assert _pieces(tokenizer, "#W0301") == ["#", "W", "0", "3", "0", "1"]
    _, plain, _ = _model(
        config.model_copy(update={"split_values": False, "out": tmp_path / "plain"}), ["RetailCancelPendingOrder"], None
    )
    assert len(_pieces(plain, "#W0301")) < 6
