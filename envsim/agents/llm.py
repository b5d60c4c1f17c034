"""The LLM agent: any litellm provider/model string plays the agent, with native tool calling.

Each turn sends the environment's conversation (``info["messages"]``, system prompt included)
and its tool schemas (``info["tools"]``) through its model client (:class:`envsim.llm.ModelClient`:
litellm by default, a run's call layer in ``envsim generate``), and returns the model's
assistant message as the action: a dict with ``content`` and, when the model called tools,
``tool_calls`` (their ``arguments`` as the model wrote them: the environment turns unreadable
JSON into an error observation). An empty reply becomes ``{"role": "assistant", "content": ""}``.

Works with hosted providers (``openai/gpt-4o-mini``, ``anthropic/...``) and with
OpenAI-compatible local servers through ``api_base`` (``openai/<name>`` or
``hosted_vllm/<name>`` for vLLM, ``ollama_chat/<name>`` for Ollama), including
:mod:`envsim.testing.server`.

Provider errors (rate limits, timeouts, 5xx, bad requests) raise
:class:`~envsim.errors.ModelCallError`: the agent does not retry (litellm's and the OpenAI
client's own retries are switched off too), so that retry policy belongs to the client, e.g. a
batch run's. :attr:`LLMAgent.usage` meters the calls, tokens and cost of the current episode.

Example (litellm's ``mock_response``, no network):
    >>> import numpy as np
    >>> from envsim.env import ScenarioEnv
    >>> env = ScenarioEnv("MedicalSupplyPanicCaller")
    >>> obs, info = env.reset(seed=0)
    >>> agent = LLMAgent("openai/gpt-4o-mini", extra={"mock_response": "What is your phone number?"})
    >>> agent.reset(env.scenario, np.random.default_rng(0))
    >>> agent.act(obs, info)
    {'role': 'assistant', 'content': 'What is your phone number?'}
    >>> agent.usage.calls
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from envsim.agents.base import Policy
from envsim.llm import Completion, ModelCallError, ModelClient, UsageMeter, check_settings, default_client
from envsim.scenario import Scenario

SCENARIO_HEADER = "X-Envsim-Scenario"
"""The request header that names the scenario when ``scenario_header=True`` (read by the test server)."""

_SEED_RANGE = 2**31 - 1


AgentUsage = UsageMeter
"""The meter of an agent's model calls (:class:`envsim.llm.UsageMeter`); the name of earlier releases."""


class LLMAgent(Policy):
    """An agent played by a language model through litellm (see the module docstring).

    Args:
        model: litellm model string, e.g. ``openai/gpt-4o-mini`` or ``hosted_vllm/Qwen2.5-7B-Instruct``.
        temperature: Sampling temperature.
        seed: Seed of the calls: call ``k`` of an episode sends ``seed + k``; ``None`` sends no seed.
        api_base: Endpoint of an OpenAI-compatible server (vLLM, Ollama, a proxy, the envsim test server).
        api_key: Key for that endpoint (local servers accept any; ``None``: litellm's environment lookup).
        timeout: Seconds per model call.
        max_tokens: Cap on each reply's tokens (``None``: the provider's default).
        extra: Further keyword arguments of every call (``top_p``, ``extra_headers``, ``mock_response``...).
        scenario_header: Send the scenario id in an ``X-Envsim-Scenario`` header (for the envsim test server).
        client: The model client (default: litellm, :func:`envsim.llm.default_client`).

    Attributes:
        usage: The current episode's calls, tokens and cost (:class:`~envsim.llm.UsageMeter`; reset by :meth:`reset`).
        last_completion: The last successful reply, with its usage (``None`` before the first).
    """

    def __init__(
        self,
        model: str,
        *,
        temperature: float = 0.0,
        seed: int | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_tokens: int | None = None,
        extra: Mapping[str, Any] | None = None,
        scenario_header: bool = False,
        client: ModelClient | None = None,
    ) -> None:
        check_settings(model, temperature=temperature, timeout=timeout, max_tokens=max_tokens)
        self.model = model
        self.temperature = temperature
        self.seed = seed
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.extra = dict(extra or {})
        self.scenario_header = scenario_header
        self.client = client if client is not None else default_client()
        self.usage = UsageMeter()
        self.last_completion: Completion | None = None
        self._scenario_id: str | None = None

    def reseed(self, seed: int | None) -> None:
        """Seed the calls of the next episodes: call ``k`` of an episode sends ``seed + k``."""
        self.seed = seed

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> None:
        """Start an episode: fresh usage (the model needs no other state: ``info`` carries the conversation)."""
        self.usage = UsageMeter()
        self.last_completion = None
        self._scenario_id = scenario.id

    def request(self, info: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages and keyword arguments of the next call, for ``info`` from the environment."""
        messages = info.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("info['messages'] must be the environment's message list (from reset() or step())")
        kwargs: dict[str, Any] = {
            "temperature": self.temperature,
            "timeout": self.timeout,
            "num_retries": 0,
            "max_retries": 0,
        }
        tools = info.get("tools")
        if tools:
            kwargs["tools"] = list(tools)
            # litellm (1.106) imports its MCP gateway, which needs the optional `mcp` package, for any
            # call with tools unless told to skip it; the flag is internal and never sent to providers.
            kwargs["_skip_mcp_handler"] = True
        if self.seed is not None:
            kwargs["seed"] = (self.seed + self.usage.calls + self.usage.failed_calls) % _SEED_RANGE  # requests so far
        if self.api_base is not None:
            kwargs["api_base"] = self.api_base
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        kwargs.update(self.extra)
        if self.scenario_header and self._scenario_id is not None:
            kwargs["extra_headers"] = {**kwargs.get("extra_headers", {}), SCENARIO_HEADER: self._scenario_id}
        return [dict(m) for m in messages], kwargs

    def _action(self, completion: Completion) -> dict[str, Any]:
        self.usage.add(completion)
        self.last_completion = completion
        action: dict[str, Any] = {"role": "assistant", "content": completion.text}
        if completion.tool_calls:
            action["content"] = completion.text or None
            action["tool_calls"] = [dict(c) for c in completion.tool_calls]
        return action

    def act(self, observation: str, info: dict[str, Any]) -> dict[str, Any]:
        """One model call; the assistant message (content and/or tool_calls) is the action.

        Raises:
            ModelCallError: The provider failed (after no retries).
        """
        messages, kwargs = self.request(info)
        try:
            completion = self.client.complete(self.model, messages, **kwargs)
        except ModelCallError:
            self.usage.fail()
            raise
        return self._action(completion)

    async def aact(self, observation: str, info: dict[str, Any]) -> dict[str, Any]:
        """The async form of :meth:`act` (the client's ``acomplete``)."""
        messages, kwargs = self.request(info)
        try:
            completion = await self.client.acomplete(self.model, messages, **kwargs)
        except ModelCallError:
            self.usage.fail()
            raise
        return self._action(completion)
