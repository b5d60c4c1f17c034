"""The Hugging Face agent, with a tiny Qwen2 model and a tokenizer trained here (nothing from the hub).

The model is trained for a few seconds to answer the first turn of a shipped scenario with a
tool call, so that generation, the chat template with tools, decoding and parsing are all
exercised end to end: the environment then runs the call the model generated.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tokenizers
import torch  # the train extra: CI installs .[dev,train]
import transformers
import trl

from envsim.agents.hf import HFAgent, parse_generation, template_messages
from envsim.agents.registry import make_agent
from envsim.env import ScenarioEnv

SCENARIO = "MedicalSupplyPanicCaller"
TARGET = '<tool_call>\n{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}\n</tool_call>'
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"]
# Qwen2's pre-tokenizer split: AutoTokenizer rebuilds a Qwen2 model's tokenizer with it, whatever was saved.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _tokenizer(corpus: list[str]) -> Any:
    """A byte-level BPE tokenizer trained on ``corpus``, with Qwen's special tokens and TRL's Qwen2.5 template."""
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

    backend = tokenizers.Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer)
    template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=template
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny Qwen2 model on disk that answers the scenario's first turn with TARGET."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared with other processes: one thread is faster
    try:
        _, info = ScenarioEnv(SCENARIO).reset(seed=0)
        template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
        renderer = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tokenizers.Tokenizer(tokenizers.models.BPE()),
            chat_template=template,
        )
        prompt = renderer.apply_chat_template(
            template_messages(info["messages"]), tools=info["tools"], add_generation_prompt=True, tokenize=False
        )
        tokenizer = _tokenizer([prompt, TARGET + "<|im_end|>"])
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        target_ids = tokenizer(TARGET + "<|im_end|>", add_special_tokens=False)["input_ids"]
        torch.manual_seed(0)
        config = transformers.Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=None,
        )
        model = transformers.Qwen2ForCausalLM(config)
        inputs, labels = torch.tensor([prompt_ids + target_ids]), torch.tensor(target_ids)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-2)
        for _ in range(300):  # about 50 steps; logits only where the answer is
            logits = model(input_ids=inputs, logits_to_keep=len(target_ids) + 1).logits[0, :-1]
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if loss.item() < 0.05:
                break
        assert loss.item() < 0.05, "the tiny model did not learn its one answer"
        path = tmp_path_factory.mktemp("tiny-qwen2")
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        yield path
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def first_turn() -> tuple[ScenarioEnv, str, dict[str, Any]]:
    env = ScenarioEnv(SCENARIO)
    observation, info = env.reset(seed=0)
    return env, observation, info


# -- end to end -----------------------------------------------------------------------------------


def test_generated_tool_call_runs_in_the_env(
    model_dir: Path, first_turn: tuple[ScenarioEnv, str, dict[str, Any]]
) -> None:
    env, observation, info = first_turn
    agent = HFAgent(model_dir, max_new_tokens=40)
    agent.reset(env.scenario, np.random.default_rng(0))
    action = agent.act(observation, info)
    assert agent.last_text.strip() == TARGET  # decoded with its special tokens, the end marker cut off
    assert isinstance(action, dict)
    assert action["content"] is None
    [call] = action["tool_calls"]
    assert call["function"] == {"name": "lookup_patient", "arguments": '{"phone": "555-0142"}'}
    observation, *_ = env.step(action)
    assert json.loads(observation)["id"] == "PT-9001"
    assert agent.usage.calls == 1 and agent.usage.tool_calls == 1
    assert agent.usage.prompt_tokens > 500 and 0 < agent.usage.completion_tokens <= 40


def test_the_next_turn_renders_the_tool_result_and_generates(
    model_dir: Path, first_turn: tuple[ScenarioEnv, str, dict[str, Any]]
) -> None:
    env, observation, info = first_turn
    agent = HFAgent(model_dir, max_new_tokens=40)
    agent.reset(env.scenario, np.random.default_rng(0))
    observation, *_, info = env.step(agent.act(observation, info))
    agent.max_new_tokens = 8
    prompt = agent.prompt(info)
    assert '<tool_call>\n{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}\n</tool_call>' in prompt
    assert "<tool_response>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    action = agent.act(observation, info)  # whatever the tiny model says, it is a valid action
    observation, *_ = env.step(action)
    assert isinstance(observation, str)
    assert agent.usage.calls == 2 and agent.usage.completion_tokens <= 40 + 8


def test_sampling_is_seeded_by_the_episode_generator(
    model_dir: Path, first_turn: tuple[ScenarioEnv, str, dict[str, Any]]
) -> None:
    env, observation, info = first_turn
    texts = []
    for seed in (1, 1, 2):
        agent = HFAgent(model_dir, max_new_tokens=6, temperature=5.0)  # hot enough to stray from the answer
        agent.reset(env.scenario, np.random.default_rng(seed))
        agent.act(observation, info)
        texts.append(agent.last_text)
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_async_act_and_registry(model_dir: Path, first_turn: tuple[ScenarioEnv, str, dict[str, Any]]) -> None:
    env, observation, info = first_turn
    agent = make_agent("hf", model_path=str(model_dir), max_new_tokens=40)
    assert isinstance(agent, HFAgent)
    agent.reset(env.scenario, np.random.default_rng(0))
    action = asyncio.run(agent.aact(observation, info))
    assert isinstance(action, dict) and action["tool_calls"][0]["function"]["name"] == "lookup_patient"


def test_options_are_validated(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        HFAgent(model_dir, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        HFAgent(model_dir, temperature=-1)


def test_importing_the_agents_does_not_import_the_train_extra() -> None:
    code = (
        "import sys, envsim.agents.hf, envsim.agents.llm, envsim.agents.registry, envsim.testing.server; "
        "print(sorted(m for m in ('litellm', 'torch', 'transformers', 'trl') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


# -- reading generations --------------------------------------------------------------------------


def test_parsing_the_tokenizer_round_trip_of_a_tool_call(model_dir: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    text = f"Let me look that up.\n{TARGET}"
    decoded = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"], skip_special_tokens=False)
    assert decoded == text
    action = parse_generation(decoded)
    assert isinstance(action, dict) and action["content"] == "Let me look that up."
    assert action["tool_calls"][0]["function"]["arguments"] == '{"phone": "555-0142"}'


@pytest.mark.parametrize(
    ("text", "calls", "content"),
    [
        ('<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call><tool_call>{"name": "b"}</tool_call>', 2, None),
        ('Checking.\n<tool_call>\n{"name": "a", "arguments": {}}', 1, "Checking."),  # cut off at max_new_tokens
        ('{"name": "get_order", "arguments": {"order_id": "#W1"}}', 1, None),
        ('```json\n{"name": "get_order", "parameters": {"order_id": "#W1"}}\n```', 1, None),
        ("<think>The user wants help.</think>How can I help?", 0, "How can I help?"),
        ('{"note": "no name, so a message"}', 0, '{"note": "no name, so a message"}'),
    ],
)
def test_parse_generation(text: str, calls: int, content: str | None) -> None:
    action = parse_generation(text)
    assert isinstance(action, dict)
    assert len(action.get("tool_calls", [])) == calls
    assert action["content"] == content


def test_an_unreadable_tool_call_becomes_a_malformed_action(
    first_turn: tuple[ScenarioEnv, str, dict[str, Any]],
) -> None:
    env, _, _ = first_turn
    action = parse_generation('<tool_call>{"name": "lookup_patient", "arguments": {"phone": </tool_call>')
    assert action == '{"name": "lookup_patient", "arguments": {"phone":'
    observation, *_ = env.step(action)
    assert json.loads(observation)["error"]["type"] == "malformed_action"


def test_template_messages_gives_templates_objects() -> None:
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "{}"},
    ]
    out = template_messages(messages)
    assert out[0]["content"] == "" and out[0]["tool_calls"][0]["function"]["arguments"] == "{"  # unreadable: kept
    assert messages[0]["content"] is None  # the input is not changed


def test_a_batch_run_builds_the_hf_agent_on_the_runs_device(model_dir: Path) -> None:
    from envsim.batch.plan import GenerateConfig, RunOptions
    from envsim.batch.runner import Participants

    config = GenerateConfig(agent="hf", agent_model=str(model_dir))
    participants = Participants(config, RunOptions(device="cpu"))
    first, second = participants.agent(), participants.agent()
    assert isinstance(first, HFAgent) and isinstance(second, HFAgent)
    assert first.device == "cpu" and next(first.model.parameters()).device.type == "cpu"
    assert first.model is second.model  # one loaded model, shared by the run's agents
    with pytest.raises(ValueError, match="device"):
        RunOptions(device="gpu")
