"""TRL's ``environment_factory``: envsim scenarios as environments of TRL's own tool-calling loop.

Usage::

    from trl import GRPOConfig, GRPOTrainer
    from envsim.train.environment_factory import EnvironmentFactory

    envs = EnvironmentFactory(["MedicalSupplyPanicCaller", "RetailCancelPendingOrder"])  # or "DIR:split"
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, args=GRPOConfig(...),
        train_dataset=envs.dataset(seeds=range(64)),
        environment_factory=envs,  # {scenario id: environment class}, TRL's multi-environment form
    )
    trainer.train()

:class:`EnvironmentFactory` is a ``dict`` from scenario id to an environment class built for that
scenario (:func:`environment_class`, a :class:`ScenarioEnvironment`); TRL creates one instance per
rollout (``factory()``, reused across batches through ``reset``). Each dataset row
(:meth:`EnvironmentFactory.rows`) names its environment (``environment``, TRL's routing column),
its ``scenario_id`` and ``seed``, and holds a ``prompt`` of the agent's system prompt (with
:data:`TOOL_PROTOCOL` added) and an empty user message, to which TRL appends what ``reset``
returns: the mock user's opening message.

**The protocol.** TRL makes every public method of the environment a tool (but ``reset`` and
``get_reward``) and ends the rollout at the first assistant turn without a tool call. So:

- each of the scenario's tools is a method whose signature (keyword arguments with Python type
  hints, defaults) and Google-style docstring (``Args:``) are generated from envsim's JSON schema
  of the tool (:func:`tool_function`), so ``transformers.utils.get_json_schema`` renders nearly the
  same schema the agent sees in envsim; what a Python hint cannot say (a ``format``, bounds, the
  fields of a nested object) is appended to the argument's description as JSON schema. A call is
  one envsim step: it returns the tool's JSON result, or envsim's typed JSON error
  (``{"error": {"type": ..., "message": ...}}``) for a bad argument, never an exception;
- :meth:`ScenarioEnvironment.reply_to_customer` sends a message to the mock user (one envsim step)
  and returns the user's reply as the tool's result, so user turns are tool results, which TRL
  masks out of the loss;
- once the episode has ended (the user is done, a tool that ends the episode succeeded, the turn
  limit), every further call returns the typed error ``episode_ended``;
- :meth:`ScenarioEnvironment.get_reward` is the episode's reward total. **When the model stops
  without closing the episode** (a turn without a tool call while the user is still talking and
  no ending tool was called, which TRL's loop cannot pass on to the environment), the episode is
  scored as it stands, as envsim scores any episode cut before its end: outcome ``truncated``,
  end reason ``running``, which carries a reward (the final state and statements count as they
  are; the user's satisfaction, never reached, does not). Episodes whose outcome carries no
  reward (``sim_fault``, ``judge_error``, ``reward_error``, ``infra_error``) get ``None``, which
  TRL turns into NaN and drops from the group's statistics (as :mod:`envsim.train.grpo` does).
  The whole breakdown (components, gates, outcome) is :attr:`ScenarioEnvironment.breakdown`, and
  reward functions receive the rollouts' environments as their ``environments`` keyword argument.

Each tool call is its own envsim step (TRL calls the tools of one assistant message one by one),
so it counts towards the scenario's turn limit. Only tool calls reach envsim: text the model
writes next to a tool call, or in its last turn, is never seen by the mock user or the rubric (a
statement the scenario requires must be said with :data:`REPLY_TOOL`), and a call of a tool name
the environment lacks is answered by TRL (``{'error': 'Tool ... not found.'}``), not recorded by
envsim. The environment is envsim's ``ScenarioEnv`` through ``gymnasium.make`` (its ``TimeLimit``
and checkers included). For the differences from the ``rollout_func`` adapter
(:mod:`envsim.train.grpo`) and when to use which, see the README ("Use envsim from another stack").

Nothing here imports torch, transformers, TRL or datasets, except :func:`tool_schemas` and
:meth:`EnvironmentFactory.dataset`, inside the function.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal, Optional, Union

import gymnasium as gym

from envsim.errors import EnvironmentFactoryError
from envsim.reward.outcome import carries_reward
from envsim.tools import error_content
from envsim.user.base import UserSimulator

REPLY_TOOL = "reply_to_customer"
"""The tool through which the agent talks to the mock user."""

RESERVED = frozenset({"reset", "get_reward", REPLY_TOOL})
"""Method names that no scenario tool may take (TRL's and this module's own)."""

EPISODE_ENDED = "episode_ended"
"""The error type of a call made after the episode ended."""

TOOL_PROTOCOL = (
    "\n\nTalk to the customer only with the reply_to_customer tool: its result is the customer's answer. "
    "When the conversation is over, answer without calling a tool."
)
"""Added to the agent's system prompt in :meth:`EnvironmentFactory.rows`: how to reach the customer here."""

_NAME = re.compile(r"^[A-Za-z_]\w*$")
_CARRIED = frozenset({"type", "enum", "anyOf", "items", "additionalProperties", "description", "default", "title"})
"""Schema keys a Python type hint (as ``get_json_schema`` renders it) carries; any other key is written out."""


class ScenarioEnvironment:
    """Base of the environment classes :func:`environment_class` builds: one envsim episode per rollout.

    Subclasses (one per scenario) add the scenario's tools as methods. The only public methods
    here are TRL's ``reset`` and ``get_reward`` and the :data:`REPLY_TOOL` tool: every other
    public method would become a tool.

    Attributes:
        env: The Gymnasium environment (``gymnasium.make`` of the scenario; ``env.unwrapped`` is
            the :class:`~envsim.env.ScenarioEnv`, with its ``trajectory()`` and ``score()``).
        info: The ``info`` of the last reset or step (``messages``, ``tools``, ``turn``...).
        breakdown: The reward breakdown (:class:`~envsim.reward.RewardBreakdown` as a dict) once
            the episode ended or :meth:`get_reward` scored it; ``None`` before.
        outcome: ``breakdown["outcome"]``, or ``None`` before.
    """

    scenario_id: ClassVar[str] = ""
    system_prompt: ClassVar[str] = ""
    user_factory: ClassVar[Callable[[], UserSimulator] | None] = None
    env_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self) -> None:
        options = dict(self.env_options)
        make_user = type(self).user_factory
        if make_user is not None:
            options["user"] = make_user()
        self.env: gym.Env[Any, Any] = gym.make(f"envsim/{self.scenario_id}-v0", **options)
        self.info: dict[str, Any] = {}
        self.breakdown: dict[str, Any] | None = None
        self.outcome: str | None = None
        self._running = False

    def reset(self, **row: Any) -> str:
        """Start an episode; returns the mock user's opening message (TRL appends it to the prompt).

        Args:
            row: The dataset row (TRL passes every column): ``seed`` seeds the episode (the mock
                user's phrasing; ``None`` or absent: not reseeded), ``scenario_id``, when present,
                must be this environment's; other columns are ignored.

        Raises:
            EnvironmentFactoryError: The row names another scenario.
        """
        named = row.get("scenario_id")
        if named is not None and named != self.scenario_id:
            raise EnvironmentFactoryError(
                f"the row names scenario {named!r}, but this environment plays {self.scenario_id!r}: "
                "route rows with the 'environment' column (EnvironmentFactory.rows)"
            )
        seed = row.get("seed")
        opening, self.info = self.env.reset(seed=None if seed is None else int(seed))
        self.breakdown = None
        self.outcome = None
        self._running = True
        return str(opening)

    def reply_to_customer(self, text: str) -> str:
        """Send a message to the customer and return their answer.

        Args:
            text: What to say to the customer.
        """
        return self._step({"role": "assistant", "content": text})

    def get_reward(self) -> float | None:
        """The episode's reward total (see the module docstring), ``None`` for an outcome that carries none.

        An episode still running is scored as it stands (outcome ``truncated``).
        """
        if self.breakdown is None:
            if not self.info:
                raise EnvironmentFactoryError("get_reward() before reset(): no episode to score")
            scenario_env: Any = self.env.unwrapped
            self._record(scenario_env.score().model_dump())
        assert self.breakdown is not None and self.outcome is not None
        return float(self.breakdown["total"]) if carries_reward(self.outcome) else None  # type: ignore[arg-type]

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """One call of the scenario's tool ``name`` (what every generated tool method does)."""
        return self._step({"name": name, "arguments": arguments})

    def _step(self, action: dict[str, Any]) -> str:
        if not self._running:
            return error_content(EPISODE_ENDED, "the episode has ended: no further tool calls or messages")
        observation, _, terminated, truncated, self.info = self.env.step(action)
        if terminated or truncated:
            self._running = False
            self._record(self.info["reward_breakdown"])
        return str(observation)

    def _record(self, breakdown: dict[str, Any]) -> None:
        self.breakdown = breakdown
        self.outcome = str(breakdown["outcome"])


def _resolve(schema: Any, defs: Mapping[str, Any]) -> Any:
    """``schema`` with every local ``$ref`` (``#/$defs/...``) replaced by its definition."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            return _resolve(defs[ref[8:]], defs)
        return {k: _resolve(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_resolve(v, defs) for v in schema]
    return schema


_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}


def python_type(schema: Mapping[str, Any]) -> tuple[Any, bool]:
    """The Python type hint for a (``$ref``-free) JSON schema, and whether the hint carries all of it.

    Example:
        >>> python_type({"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]})
        (typing.Optional[typing.Literal['a', 'b']], True)
        >>> python_type({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}})
        (list[dict[str, typing.Any]], False)
        >>> python_type({"type": "string", "format": "date"})
        (<class 'str'>, False)
    """
    carried = set(schema) <= _CARRIED
    if "enum" in schema:
        values = tuple(schema["enum"])
        scalar = all(v is None or isinstance(v, (str, int, float, bool)) for v in values)
        if values and scalar:
            literal: Any = Literal
            return literal[values], carried
        return Any, False
    if "anyOf" in schema:
        parts = [python_type(s) for s in schema["anyOf"]]
        union: Any = Union
        hint = union[tuple(h for h, _ in parts)] if len(parts) > 1 else parts[0][0]
        return hint, carried and all(c for _, c in parts)
    kind = schema.get("type")
    if isinstance(kind, list):
        return python_type({**{k: v for k, v in schema.items() if k != "type"}, "anyOf": [{"type": t} for t in kind]})
    if kind in _SCALARS:
        return _SCALARS[kind], carried
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, Mapping):
            return list, carried
        item, item_carried = python_type(items)
        return list[item], carried and item_carried  # type: ignore[valid-type]
    if kind == "object":
        extra = schema.get("additionalProperties")
        if "properties" in schema or not isinstance(extra, Mapping):
            return dict[str, Any], carried and not schema.get("properties") and extra in (None, True)
        value, value_carried = python_type(extra)
        return dict[str, value], carried and value_carried  # type: ignore[valid-type]
    return Any, False


def _described(description: str, schema: Mapping[str, Any], carried: bool) -> str:
    """An ``Args:`` line's text: the description on one line, plus the schema the hint cannot carry."""
    text = " ".join(description.split()) or "(no description)"
    if carried:
        return text
    rest = {k: v for k, v in schema.items() if k not in ("description", "default", "title")}
    return f"{text} (JSON schema: {json.dumps(rest, separators=(',', ':'))})"


def tool_function(schema: Mapping[str, Any]) -> Callable[..., str]:
    """The method for one envsim tool, generated from its OpenAI schema (``{"type": "function", ...}``).

    Its ``__signature__`` is ``(self, *, arg: hint = default, ...)`` with the hints of
    :func:`python_type`, its ``__annotations__`` the same hints (and ``str`` for the return), its
    docstring the tool's description and an ``Args:`` line per argument: what
    ``transformers.utils.get_json_schema`` reads. Calling it runs the tool as one envsim step
    with the arguments as given, so envsim, not Python, validates them.

    Example:
        >>> fn = tool_function({"type": "function", "function": {"name": "find", "description": "Find an order.",
        ...     "parameters": {"type": "object", "properties": {
        ...         "order_id": {"type": "string", "description": "The id."},
        ...         "limit": {"type": "integer", "default": 10, "description": "At most."}},
        ...     "required": ["order_id"]}}})
        >>> inspect.signature(fn)
        <Signature (self, *, order_id: str, limit: int = 10) -> str>
        >>> print(fn.__doc__)
        Find an order.
        <BLANKLINE>
        Args:
            order_id: The id.
            limit: At most.
    """
    function = schema["function"]
    name = str(function["name"])
    parameters = function.get("parameters") or {}
    defs = parameters.get("$defs") or {}
    required = set(parameters.get("required") or ())
    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    lines: list[str] = []
    for arg, raw in (parameters.get("properties") or {}).items():
        if not _NAME.match(arg) or arg == "self":
            raise EnvironmentFactoryError(f"tool {name!r}: argument {arg!r} cannot be a Python parameter name")
        prop = _resolve(raw, defs)
        hint, carried = python_type(prop)
        if arg not in required and "default" not in prop:
            hint, default = Optional[hint], None  # noqa: UP045 - a runtime hint built from a variable
        else:
            default = prop.get("default", inspect.Parameter.empty) if arg not in required else inspect.Parameter.empty
        annotations[arg] = hint
        signature.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint))
        lines.append(f"    {arg}: {_described(str(prop.get('description', '')), prop, carried)}")
    annotations["return"] = str

    def call(self: ScenarioEnvironment, **arguments: Any) -> str:
        return self._call_tool(name, arguments)

    summary = " ".join(str(function.get("description") or name).split())
    call.__name__ = call.__qualname__ = name
    call.__doc__ = summary + ("\n\nArgs:\n" + "\n".join(lines) if lines else "")
    call.__annotations__ = annotations
    setattr(call, "__signature__", inspect.Signature(signature, return_annotation=str))  # noqa: B010 - mypy
    return call


_CLASSES: dict[tuple[str, Any, tuple[tuple[str, Any], ...]], type[ScenarioEnvironment]] = {}


def environment_class(
    scenario_id: str,
    *,
    user_factory: Callable[[], UserSimulator] | None = None,
    judge_model: str | None = None,
) -> type[ScenarioEnvironment]:
    """The TRL environment class of a registered scenario (built once per arguments), named after it.

    Its methods are the scenario's tools (:func:`tool_function`), :data:`REPLY_TOOL`, ``reset`` and
    ``get_reward``; the class attribute ``system_prompt`` is the agent's system prompt.

    Args:
        scenario_id: A registered scenario id (a suite's scenarios are registered by :func:`envsim.suite.resolve_ids`).
        user_factory: Makes each instance's mock user (default: the scripted user).
        judge_model: The scenario judges' model (None: offline, the judges are not run).

    Raises:
        UnknownNameError: The scenario is not registered.
        EnvironmentFactoryError: A tool's name clashes with :data:`RESERVED` or is private.

    Example:
        >>> cls = environment_class("MedicalSupplyPanicCaller")
        >>> cls.__name__, "dispatch_emergency_services" in vars(cls)
        ('MedicalSupplyPanicCaller', True)
    """
    from envsim.env import ScenarioEnv

    options: dict[str, Any] = {} if judge_model is None else {"judge_model": judge_model}
    key = (scenario_id, user_factory, tuple(sorted(options.items())))
    if key in _CLASSES:
        return _CLASSES[key]
    _, info = ScenarioEnv(scenario_id).reset(seed=0)
    namespace: dict[str, Any] = {
        "scenario_id": scenario_id,
        "user_factory": staticmethod(user_factory) if user_factory is not None else None,
        "env_options": options,
        "system_prompt": info["messages"][0]["content"],
        "__doc__": f"The envsim scenario {scenario_id!r} as a TRL environment (envsim.train.environment_factory).",
        "__module__": __name__,
    }
    for schema in info["tools"]:
        name = schema["function"]["name"]
        if name in RESERVED or name.startswith("_"):
            raise EnvironmentFactoryError(
                f"scenario {scenario_id!r}: tool {name!r} cannot be a TRL environment method "
                f"(reserved: {', '.join(sorted(RESERVED))}; names starting with '_' are not tools)"
            )
        method = tool_function(schema)
        method.__qualname__ = f"{scenario_id}.{name}"
        namespace[name] = method
    cls = type(scenario_id, (ScenarioEnvironment,), namespace)
    _CLASSES[key] = cls
    return cls


def tool_methods(cls: type[ScenarioEnvironment]) -> list[Callable[..., Any]]:
    """The functions TRL makes tools of: the public functions of the class but ``reset`` and ``get_reward``."""
    return [
        fn
        for name, fn in inspect.getmembers(cls, predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]


def tool_schemas(cls: type[ScenarioEnvironment]) -> list[dict[str, Any]]:
    """The tool schemas TRL renders into the prompt for ``cls`` (``transformers.utils.get_json_schema``)."""
    from transformers.utils.chat_template_utils import get_json_schema

    return [get_json_schema(fn) for fn in tool_methods(cls)]


class EnvironmentFactory(dict[str, type[ScenarioEnvironment]]):
    """Scenario id → environment class, for ``GRPOTrainer(environment_factory=...)`` (see the module docstring).

    Args:
        scenarios: Scenario ids, or suite references (``DIR``, ``DIR:split``) standing for their scenarios.
        user_factory: Makes each rollout's mock user (default: the scripted user).
        judge_model: The scenario judges' model (None: offline).

    Example:
        >>> envs = EnvironmentFactory("MedicalSupplyPanicCaller")
        >>> env = envs["MedicalSupplyPanicCaller"]()
        >>> opening = env.reset(seed=7)
        >>> '"id":"PT-9001"' in env.lookup_patient(phone="555-0142")
        True
        >>> env.lookup_patient(phone=42)
        '{"error":{"type":"invalid_arguments","message":"phone: Input should be a valid string"}}'
    """

    def __init__(
        self,
        scenarios: str | Sequence[str],
        *,
        user_factory: Callable[[], UserSimulator] | None = None,
        judge_model: str | None = None,
    ) -> None:
        from envsim.suite import resolve_ids

        names = [scenarios] if isinstance(scenarios, str) else list(scenarios)
        super().__init__(
            (sid, environment_class(sid, user_factory=user_factory, judge_model=judge_model))
            for sid in resolve_ids(names)
        )

    def rows(self, seeds: Iterable[int]) -> list[dict[str, Any]]:
        """One dataset row per scenario and seed (scenario-major): ``prompt`` (the system prompt with
        :data:`TOOL_PROTOCOL`, then an empty user message that ``reset`` fills), ``environment``
        (TRL's routing column), ``scenario_id`` and ``seed``."""
        seed_list = [int(s) for s in seeds]
        return [
            {
                "prompt": [
                    {"role": "system", "content": f"{cls.system_prompt}{TOOL_PROTOCOL}"},
                    {"role": "user", "content": ""},
                ],
                "environment": scenario_id,
                "scenario_id": scenario_id,
                "seed": seed,
            }
            for scenario_id, cls in self.items()
            for seed in seed_list
        ]

    def dataset(self, seeds: Iterable[int]) -> Any:
        """:meth:`rows` as a ``datasets.Dataset`` (the ``train`` extra)."""
        from datasets import Dataset  # type: ignore[import-untyped]

        return Dataset.from_list(self.rows(seeds))
