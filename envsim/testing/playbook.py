"""What the test server says: role detection and a deterministic reply for each role.

The local server (:mod:`envsim.testing.server`) answers every chat-completion request by
playing one of envsim's model roles. :func:`detect_role` decides which, from the request
alone, first match wins:

1. the model name: ``envsim-agent``, ``envsim-user``, ``envsim-judge``, ``envsim-checker`` or
   ``envsim-generic`` (after any ``provider/`` prefix, so ``openai/envsim-judge`` names the
   judge as litellm sends it) force a role;
2. an ``X-Envsim-Role`` request header with one of the role names;
3. the prompt, by the opening words of envsim's own templates: a system prompt starting
   ``You are a customer-service agent`` (``agent_system.j2``) is the agent, one starting
   ``You are an impartial evaluator`` (``judge_system.j2``) the judge, one containing
   ``You are role-playing a customer`` (``persona.j2`` inside ``user_system.j2``) the LLM user,
   and a first message starting ``You check one turn written by a simulated customer``
   (``user_checker.j2``) the user-turn checker;
4. otherwise ``agent`` when the request offers tools, else ``generic``.

:class:`Playbook` then replies as that role, deterministically:

- **agent**: finds the scenario (an ``X-Envsim-Scenario`` header, else the system prompt,
  which is the scenario's rendered ``agent_system.j2``, with the user's opening line to tell
  apart scenarios that share a policy) and replays the plan of
  :class:`~envsim.agents.scripted.ScriptedAgent` (ask for the facts, the expected tool calls as
  native ``tool_calls``, the required statements, the closing question). The server keeps no
  state: the next step is the first one of the plan that no assistant message of the request
  has carried out yet, so a step lost to an injected fault is tried again on the next turn.
  An unknown scenario gets a generic policy: one call of the first offered tool, then a
  closing question.
- **user**: finds the scenario by its goal (in the persona text) and plays a cooperative
  customer: the facts the agent's last message asks for, the scenario's closing line and the
  stop marker the prompt names once the agent says what satisfies the customer, the scenario's
  nudges otherwise. An unknown
  scenario gets a generic user who gives the details of the prompt's ``# What you know``
  section when asked for them and ends when asked whether there is anything else.
- **judge**: every criterion of the rubric (from the ``json_schema`` ``response_format`` when
  the request has one, else from the reply form in the system prompt) at its best score
  (``judge_score="max"``) or its worst (``"min"``), as the JSON object the judge asks for.
- **checker**: ``{"ok": true, "faults": []}``.
- **generic**: ``OK.``

Example:
    >>> detect_role("openai/envsim-judge", [])
    'judge'
    >>> detect_role("gpt-4o", [{"role": "system", "content": "You are a customer-service agent for retail."}])
    'agent'
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from envsim.scenario import Scenario

Role = Literal["agent", "user", "judge", "checker", "generic"]
"""The parts the test server plays."""

ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, in the order of :data:`Role`."""

ROLE_HEADER = "x-envsim-role"
"""Request header that forces a role (lower case: header names are matched case-insensitively)."""

SCENARIO_HEADER = "x-envsim-scenario"
"""Request header that names the scenario the agent and the user play (a scenario id)."""

AGENT_PREFIX = "You are a customer-service agent"
"""How envsim's agent system prompt (``agent_system.j2``) starts."""

JUDGE_PREFIX = "You are an impartial evaluator"
"""How envsim's judge system prompt (``judge_system.j2``) starts."""

USER_MARKER = "You are role-playing a customer"
"""What envsim's LLM-user system prompt (``persona.j2`` in ``user_system.j2``) contains."""

CHECKER_PREFIX = "You check one turn written by a simulated customer"
"""How envsim's user-turn checker prompt (``user_checker.j2``) starts."""

DEFAULT_CLOSING = "Is there anything else I can help you with?"
"""What the replaying agent says once its plan is spent."""

DEFAULT_STOP = "###STOP###"
"""The user's end-of-conversation marker when the prompt names none."""

_log = logging.getLogger(__name__)
_STOP_IN_PROMPT = re.compile(r"Never write (\S+) otherwise")
_JUDGE_LINE = re.compile(r'^\s*"([a-z][a-z0-9_]*)": \{"rationale": "<why>", "score": (.+)\},?\s*$', re.MULTILINE)
_SECTION = re.compile(r"^# (.+)$", re.MULTILINE)


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _model_role(model: str) -> Role | None:
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith("envsim-"):
        role = name.removeprefix("envsim-")
        if role in ROLES:
            return role
    return None


def detect_role(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    headers: Mapping[str, str] | None = None,
    *,
    has_tools: bool = False,
) -> Role:
    """The role a request asks the server to play (see the module docstring for the rules).

    Args:
        model: The request's ``model`` field (``provider/`` prefixes are ignored).
        messages: The request's messages.
        headers: Request headers, names in lower case.
        has_tools: Whether the request offers tools.

    Example:
        >>> detect_role("local", [{"role": "user", "content": "hi"}], {"x-envsim-role": "user"})
        'user'
        >>> detect_role("local", [{"role": "user", "content": "hi"}], has_tools=True)
        'agent'
    """
    by_model = _model_role(model)
    if by_model is not None:
        return by_model
    forced = (headers or {}).get(ROLE_HEADER, "").strip().lower()
    if forced in ROLES:
        return forced
    system = next((_text(m) for m in messages if m.get("role") == "system"), "")
    first = _text(messages[0]) if messages else ""
    if system.startswith(AGENT_PREFIX):
        return "agent"
    if system.startswith(JUDGE_PREFIX):
        return "judge"
    if USER_MARKER in system:
        return "user"
    if first.lstrip().startswith(CHECKER_PREFIX):
        return "checker"
    return "agent" if has_tools else "generic"


# -- scenarios --------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def _closest(candidates: Sequence[Scenario], opening: str) -> Scenario:
    """The candidate whose user opening line is in ``opening``, else the one sharing most words (first on ties)."""
    if len(candidates) == 1 or not opening:
        return candidates[0]
    for candidate in candidates:
        if candidate.user.opening in opening:
            return candidate
    said = _words(opening)
    overlaps = [len(said & _words(c.user.opening)) / (len(said | _words(c.user.opening)) or 1) for c in candidates]
    return candidates[int(np.argmax(overlaps))]


def read_scenario(path: Path) -> Scenario:
    """A scenario file, validated but not linted, read with envsim's bounded YAML reader (files are untrusted)."""
    from envsim.yamlsource import load_yaml

    return Scenario.model_validate(load_yaml(path).data)


class ScenarioIndex:
    """The scenarios the server knows, findable by id, agent system prompt and user goal.

    Args:
        scenarios: Scenarios to know; ``None`` loads every registered scenario (those of
            ``ENVSIM_SCENARIOS`` or the repository's ``scenarios/``), skipping any that fail to load.
        extra_files: Further scenario files to load (e.g. a test's own scenario).
    """

    def __init__(self, scenarios: Sequence[Scenario] | None = None, extra_files: Sequence[str | Path] = ()) -> None:
        from envsim.prompts import render

        found: list[Scenario] = list(scenarios) if scenarios is not None else self._registered()
        found.extend(read_scenario(Path(p)) for p in extra_files)
        self.by_id: dict[str, Scenario] = {s.id: s for s in found}
        self.by_prompt: dict[str, list[Scenario]] = {}
        for scenario in self.by_id.values():
            prompt = render("agent_system.j2", domain=scenario.domain, guidelines=scenario.agent.guidelines)
            self.by_prompt.setdefault(prompt, []).append(scenario)

    @staticmethod
    def _registered() -> list[Scenario]:
        from envsim.registration import discover

        out: list[Scenario] = []
        for scenario_id, (path, _) in discover().items():
            try:
                out.append(read_scenario(path))
            except Exception as error:  # a broken file must not take the server down
                _log.warning("test server: skipping scenario %s: %s", scenario_id, error)
        return out

    def for_agent(self, messages: Sequence[Mapping[str, Any]], scenario_id: str | None = None) -> Scenario | None:
        """The scenario of an agent request: by id when given, else by system prompt and opening line."""
        if scenario_id:
            return self.by_id.get(scenario_id)
        system = next((_text(m) for m in messages if m.get("role") == "system"), "")
        candidates = self.by_prompt.get(system.strip())
        if not candidates:
            return None
        opening = next((_text(m) for m in messages if m.get("role") == "user"), "")
        return _closest(candidates, opening)

    def for_user(self, system: str, opening: str, scenario_id: str | None = None) -> Scenario | None:
        """The scenario of an LLM-user request: by id when given, else by the goal in its system prompt."""
        if scenario_id:
            return self.by_id.get(scenario_id)
        candidates = [s for s in self.by_id.values() if s.user.goal.strip() in system]
        return _closest(candidates, opening) if candidates else None


# -- replies ----------------------------------------------------------------------------------


def _canonical(arguments: Any) -> str | None:
    """Tool-call arguments (a dict or its JSON text) as canonical JSON; ``None`` when unreadable."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False)


def _signature(message: Mapping[str, Any]) -> tuple[str, ...]:
    """What an assistant message (or a plan step) did: its tool calls, else its text."""
    calls = message.get("tool_calls") or []
    if calls:
        out = ["tools"]
        for call in calls:
            fn = call.get("function", call) if isinstance(call, dict) else {}
            canonical = _canonical(fn.get("arguments")) if isinstance(fn, dict) else None
            if canonical is None:
                return ("unreadable",)
            out.append(f"{fn.get('name')}:{canonical}")
        return tuple(out)
    return ("text", " ".join(_text(message).split()))


def _as_message(step: str | dict[str, Any]) -> dict[str, Any]:
    """A plan step of :class:`ScriptedAgent` as an assistant message with native tool calls."""
    if isinstance(step, dict):
        return {"role": "assistant", "content": step.get("content"), "tool_calls": list(step.get("tool_calls", []))}
    if step.lstrip().startswith("{"):
        call = json.loads(step)
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)},
                }
            ],
        }
    return {"role": "assistant", "content": step}


def _seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _sections(prompt: str) -> dict[str, str]:
    """The ``# Heading`` sections of a prompt, heading → body."""
    marks = list(_SECTION.finditer(prompt))
    return {
        m.group(1).strip(): prompt[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(prompt)].strip()
        for i, m in enumerate(marks)
    }


def _best_score(spec: str | dict[str, Any], best: bool) -> int | str:
    """The best (or worst) score of a criterion, from its form in the prompt or its JSON schema."""
    if isinstance(spec, dict):
        if "enum" in spec:
            values = list(spec["enum"])
            return "pass" if best and "pass" in values else ("fail" if "fail" in values else values[0])
        low, high = int(spec.get("minimum", 1)), int(spec.get("maximum", 5))
        return high if best else low
    if '"pass"' in spec:
        return "pass" if best else "fail"
    numbers = [int(n) for n in re.findall(r"-?\d+", spec)] or [1]
    return max(numbers) if best else min(numbers)


class Playbook:
    """Deterministic replies for every role (see the module docstring).

    Args:
        index: The scenarios the agent and user roles can play.
        seed: Seed of the replaying agent's mistakes (with ``agent_error_rate > 0``).
        agent_error_rate: The replaying agent's ``ScriptedAgent(error_rate=...)``: per planned step, the
            probability of a mistake (0: the reference run, reward 1.0 with a cooperative user).
        judge_score: ``"max"`` (every criterion at its best score) or ``"min"`` (at its worst).
    """

    def __init__(
        self,
        index: ScenarioIndex,
        *,
        seed: int = 0,
        agent_error_rate: float = 0.0,
        judge_score: Literal["max", "min"] = "max",
    ) -> None:
        self.index = index
        self.seed = seed
        self.agent_error_rate = agent_error_rate
        self.judge_score = judge_score
        self._plans = lru_cache(maxsize=4096)(self._plan)

    def reply(
        self,
        role: Role,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The assistant message (``content`` and maybe ``tool_calls``) of ``role`` for this request."""
        scenario_id = (headers or {}).get(SCENARIO_HEADER) or None
        if role == "agent":
            return self.agent(messages, tools, scenario_id)
        if role == "user":
            return {"role": "assistant", "content": self.user(messages, scenario_id)}
        if role == "judge":
            return {"role": "assistant", "content": self.judge(messages, response_format)}
        if role == "checker":
            return {"role": "assistant", "content": '{"ok": true, "faults": []}'}
        return {"role": "assistant", "content": "OK."}

    # -- agent ----------------------------------------------------------------------------

    def _plan(self, scenario_id: str, opening: str) -> tuple[dict[str, Any], ...]:
        from envsim.agents.scripted import ScriptedAgent

        scenario = self.index.by_id[scenario_id]
        agent = ScriptedAgent(error_rate=self.agent_error_rate)
        agent.reset(scenario, np.random.default_rng(_seed(self.seed, scenario_id, opening)))
        steps = [agent.act("", {}) for _ in range(scenario.max_turns + 2)]
        while steps and steps[-1] == DEFAULT_CLOSING:  # the agent repeats its closing once the plan is spent
            steps.pop()
        return tuple(_as_message(s) for s in steps)

    def agent(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], scenario_id: str | None = None
    ) -> dict[str, Any]:
        """The agent's next message: the next step of the replayed plan not carried out yet."""
        scenario = self.index.for_agent(messages, scenario_id)
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        if scenario is None:
            return self._generic_agent(messages, tools, turn)
        opening = next((_text(m) for m in messages if m.get("role") == "user"), "")
        plan: tuple[dict[str, Any], ...] = self._plans(scenario.id, opening if self.agent_error_rate else "")
        done = 0
        for message in messages:
            if done < len(plan) and message.get("role") == "assistant":
                done += _signature(message) == _signature(plan[done])
        if done >= len(plan):
            return {"role": "assistant", "content": DEFAULT_CLOSING}
        step = dict(plan[done])
        if step.get("tool_calls"):
            step["tool_calls"] = [{**call, "id": f"call_{turn}_{k}"} for k, call in enumerate(step["tool_calls"])]
        return step

    @staticmethod
    def _generic_agent(
        messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]], turn: int
    ) -> dict[str, Any]:
        if tools and not any(m.get("role") == "tool" for m in messages):
            fn = tools[0].get("function", tools[0])
            parameters = fn.get("parameters", {}) if isinstance(fn, Mapping) else {}
            properties = parameters.get("properties", {})
            arguments: dict[str, Any] = {}
            for name in parameters.get("required", []):
                prop = properties.get(name, {})
                if "enum" in prop:
                    arguments[name] = prop["enum"][0]
                else:
                    kind = prop.get("type")
                    arguments[name] = {"integer": 1, "number": 1.0, "boolean": True}.get(str(kind), "unknown")
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{turn}_0",
                        "type": "function",
                        "function": {"name": str(fn.get("name", "tool")), "arguments": json.dumps(arguments)},
                    }
                ],
            }
        return {"role": "assistant", "content": DEFAULT_CLOSING}

    # -- user -----------------------------------------------------------------------------

    def user(self, messages: Sequence[Mapping[str, Any]], scenario_id: str | None = None) -> str:
        """The simulated customer's next turn (the stop marker appended when it ends the conversation).

        A cooperative customer, read off the conversation (no state): the facts the agent's last
        message asks for (the scenario's ``asked_by`` words), said as the scenario says them; the
        closing line and the stop marker when the agent says a ``satisfied_by`` phrase; otherwise
        the scenario's nudges in turn. This model sees only the text, so it proposes to stop on the
        phrase alone; the LLM user (:mod:`envsim.user.llm`) vetoes the stop marker while the world
        says the scenario's goal is unmet, so the ending still follows the goal, not the phrase.
        """
        from envsim.prompts import render, render_scenario_text

        system = next((_text(m) for m in messages if m.get("role") == "system"), "")
        found = _STOP_IN_PROMPT.search(system)
        stop = found.group(1) if found else DEFAULT_STOP
        turns = [m for m in messages if m.get("role") in ("user", "assistant")][1:]  # after "[The agent picks up...]"
        opening = next((_text(m) for m in turns if m.get("role") == "assistant"), "")
        agent_turns = [_text(m) for m in turns if m.get("role") == "user"]
        last = agent_turns[-1].lower() if agent_turns else ""
        scenario = self.index.for_user(system, opening, scenario_id)
        if scenario is None:
            return self._generic_user(system, last, stop)
        spec = scenario.user
        asked = [f for f in spec.facts if any(word.lower() in last for word in f.asked_by)]
        if asked:
            return " ".join(
                render_scenario_text(f.say, value=f.value, key=f.key)
                if f.say is not None
                else render("user_fact.j2", key=f.key, value=f.value)
                for f in asked
            )
        if any(phrase.lower() in last for phrase in spec.satisfied_by):
            return f"{spec.closing} {stop}"
        nudges = spec.nudges or [f"I still need help: {spec.goal}"]
        return nudges[(len(agent_turns) - 1) % len(nudges)]

    @staticmethod
    def _generic_user(system: str, agent_message: str, stop: str) -> str:
        sections = _sections(system)
        known = {}
        for line in sections.get("What you know", "").splitlines():
            key, sep, value = line.removeprefix("- ").partition(": ")
            if sep and line.startswith("- "):
                known[key.strip()] = value.strip()
        asked = agent_message.lower()
        given = [f"My {key} is {value}." for key, value in known.items() if any(w in asked for w in key.split())]
        if given:
            return " ".join(given)
        if "anything else" in asked:
            return f"No, that's all. Thank you! {stop}"
        return "Okay, please go ahead."

    # -- judge ----------------------------------------------------------------------------

    def judge(self, messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None = None) -> str:
        """The judge's JSON verdict: every criterion at the configured end of its scale."""
        best = self.judge_score == "max"
        criteria: dict[str, str | dict[str, Any]] = {}
        schema = ((response_format or {}).get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            defs = schema.get("$defs", {})
            for cid, prop in schema.get("properties", {}).items():
                ref = prop.get("$ref", "")
                verdict = defs.get(ref.rsplit("/", 1)[-1], prop) if ref else prop
                criteria[cid] = verdict.get("properties", {}).get("score", {})
        if not criteria:
            system = next((_text(m) for m in messages if m.get("role") == "system"), "")
            criteria = {m.group(1): m.group(2) for m in _JUDGE_LINE.finditer(system)}
        verdicts = {
            cid: {"rationale": "Scored by the envsim test server.", "score": _best_score(spec, best)}
            for cid, spec in criteria.items()
        }
        return json.dumps(verdicts)
