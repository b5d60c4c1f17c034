"""The tiny model and the locally trained tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envsim.train.tiny import TEMPLATE_NAME, build_model, parameter_count, trl_chat_template


def test_the_tokenizer_uses_trls_qwen2_5_template_byte_for_byte(tokenizer: Any) -> None:
    trl = pytest.importorskip("trl")
    shipped = (Path(trl.__file__).parent / "chat_templates" / TEMPLATE_NAME).read_text(encoding="utf-8")
    assert tokenizer.chat_template == shipped == trl_chat_template()
    from trl.chat_template_utils import add_response_schema, supports_tool_calling

    assert supports_tool_calling(tokenizer)
    add_response_schema(tokenizer)  # raises "Unrecognized chat template" for any other template
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "left"


def test_tool_markers_are_single_tokens_kept_when_decoding(tokenizer: Any) -> None:
    ids = tokenizer('<tool_call>\n{"name": "x"}\n</tool_call><|im_end|>', add_special_tokens=False)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[0]) == "<tool_call>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == '<tool_call>\n{"name": "x"}\n</tool_call>'


def test_a_model_saved_with_its_tokenizer_reads_back_the_same_tokens(tokenizer: Any, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = build_model(tokenizer, hidden_size=32, layers=1, heads=2, intermediate_size=64)
    assert 0 < parameter_count(model) < 200_000
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\nMy phone number is 555-0142.<|im_end|>\n<|im_start|>assistant\n"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]  # not swapped for a model-specific tokenizer
    assert loaded.chat_template == tokenizer.chat_template
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert again.config.eos_token_id == tokenizer.eos_token_id
