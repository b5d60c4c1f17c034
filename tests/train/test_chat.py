"""Chat-template segments: prompt, assistant turns (trained), environment turns (not trained)."""

from __future__ import annotations

from typing import Any

import pytest

from envsim.agents.scripted import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.rollout import run_episode
from envsim.train.chat import TemplateError, assistant_text, encode, encode_conversation, environment_text, render


def _episode(scenario_id: str = "MedicalSupplyPanicCaller") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env = ScenarioEnv(scenario_id)
    trajectory, _ = run_episode(env, ScriptedAgent(), seed=0)
    return trajectory.messages, env.session.tools.schemas()


def test_segments_cover_the_rendered_conversation(tokenizer: Any) -> None:
    messages, tools = _episode()
    ids, mask = encode_conversation(tokenizer, messages, tools)
    assert len(ids) == len(mask)
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    full = render(tokenizer, messages[: last + 1], tools, add_generation_prompt=False)
    assert tokenizer.decode(ids) + "\n" == full  # everything up to the last assistant turn's end-of-turn token
    trained = tokenizer.decode([t for t, bit in zip(ids, mask, strict=True) if bit])
    wanted = "".join(
        assistant_text(tokenizer, messages, tools, assistant_index=i)
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    )
    assert trained == wanted
    assert '<tool_call>\n{"name": "lookup_patient"' in trained and "<tool_response>" not in trained


def test_environment_text_is_what_follows_the_turn(tokenizer: Any) -> None:
    messages, tools = _episode()
    first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
    text = environment_text(tokenizer, messages[: first + 2], tools, assistant_index=first, ended=True)
    reply = messages[first + 1]["content"]
    assert text == f"\n<|im_start|>user\n{reply}<|im_end|>\n<|im_start|>assistant\n"
    cut = environment_text(tokenizer, messages[: first + 2], tools, assistant_index=first, ended=False)
    assert cut == "<|im_end|>" + text
    assert encode(tokenizer, text)[-3:] == encode(tokenizer, "<|im_start|>assistant\n")[-3:]


def test_a_template_that_rewrites_earlier_turns_is_refused() -> None:
    class Rewriting:
        eos_token = "<E>"

        def apply_chat_template(
            self, messages: Any, tools: Any = None, add_generation_prompt: bool = False, tokenize: bool = False
        ) -> str:
            n = len(messages)  # every message is rendered with the conversation's length: not prefix-preserving
            return "".join(f"[{n}]{m['content']}<E>" for m in messages) + ("<A>" if add_generation_prompt else "")

    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    with pytest.raises(TemplateError, match="prefix-preserving"):
        environment_text(Rewriting(), messages, None, assistant_index=1, ended=True)


def test_a_conversation_without_assistant_turns_has_nothing_to_learn(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="no assistant turn"):
        encode_conversation(tokenizer, [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], None)
