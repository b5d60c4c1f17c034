"""Mapping files: how the tool calls of a conversation log become a toolkit's expected actions.

A log's agent actions have their own names and argument shapes: ABCD's buttons
(``pull-up-account`` with positional ``values``), STAR's knowledge-base queries
(``bank_fraud_report`` with ``constraints``), a team's own tools in OpenAI-format logs. A mapping
file (YAML) maps each source action name onto a tool of one toolkit::

    toolkit: retail
    world: {fixture: default, seed: 0}      # optional: the drafts' world (default: the default fixture)
    guidelines: ...                         # optional: the drafts' agent guidelines (default: a template)
    actions:
      lookup_customer:                      # a source action name
        tool: find_customer_by_email        # the toolkit's tool
        arguments: {email: customer_email}  # tool argument <- source argument
      cancel:
        tool: cancel_order
        arguments: {order_id: order}
        constants: {reason: no_longer_needed}
      search-faq: {tool: null}              # no counterpart: dropped from the expected actions

Source arguments are named as :func:`source_arguments` flattens them: an OpenAI call's argument
names, STAR's constraint names (``FullName``, ``AccountNumber``), ABCD's value positions (``"0"``,
``"1"``...). A source action that the mapping does not name maps onto the toolkit's tool of the
same name with the same arguments, when there is one; otherwise the draft cannot be mapped.

A mapping that names an unknown tool or argument is a located error (``file:line:col: field:
message``, with a "did you mean"), raised before anything is mined.

Example:
    >>> source_arguments({"values": ["ada", "ada@example.com"]})
    {'0': 'ada', '1': 'ada@example.com'}
    >>> source_arguments({"constraints": [{"FullName": '"Jane Doe "'}, {"PIN": "9431"}]})
    {'FullName': 'Jane Doe', 'PIN': '9431'}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envsim.errors import Problem, ScenarioError
from envsim.suggest import did_you_mean
from envsim.toolkits import get_toolkit
from envsim.world import WorldSpec
from envsim.yamlsource import YamlDocument, load_yaml, problems_from_validation


class ActionMapping(BaseModel):
    """One source action mapped onto a toolkit tool (``tool: null`` drops the action)."""

    model_config = ConfigDict(extra="forbid")

    tool: str | None = Field(description="The toolkit's tool, or null when the action has no counterpart.")
    arguments: dict[str, str] = Field(
        default_factory=dict, description="Tool argument -> the source argument its value comes from."
    )
    constants: dict[str, Any] = Field(default_factory=dict, description="Tool argument -> a fixed value.")


class MiningMapping(BaseModel):
    """A mapping file: the toolkit, optionally the drafts' world and guidelines, and the action map."""

    model_config = ConfigDict(extra="forbid")

    toolkit: str | None = Field(None, description="The toolkit the actions map onto (must match --toolkit).")
    world: WorldSpec | None = Field(None, description="The drafts' world (default: the default fixture, seed 0).")
    guidelines: str | None = Field(None, min_length=1, description="The drafts' agent guidelines.")
    actions: dict[str, ActionMapping] = Field(default_factory=dict, description="Source action name -> its tool.")


def source_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """A logged call's arguments as one flat mapping (ABCD values by position, STAR constraints by name)."""
    values = arguments.get("values")
    if set(arguments) == {"values"} and isinstance(values, list):
        return {str(i): v for i, v in enumerate(values)}
    constraints = arguments.get("constraints")
    if set(arguments) == {"constraints"} and isinstance(constraints, list):
        flat: dict[str, Any] = {}
        for item in constraints:
            if isinstance(item, dict):
                for key, value in item.items():
                    flat[str(key)] = _unquoted(value)
        return flat
    return dict(arguments)


def _unquoted(value: Any) -> Any:
    """STAR writes string constraints JSON-quoted (``'"Jane Doe "'``): the stripped string inside."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            try:
                decoded = json.loads(text)
            except json.JSONDecodeError:
                return text
            return decoded.strip() if isinstance(decoded, str) else decoded
        return text
    return value


def load_mapping(path: Path, toolkit: str) -> MiningMapping:
    """Read and check a mapping file against ``toolkit``; :class:`~envsim.errors.ScenarioError` with every
    located problem otherwise (unknown keys, tools, arguments; another toolkit)."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ScenarioError([doc.problem((), "a mapping file must be a mapping (toolkit, actions)", field="")])
    try:
        mapping = MiningMapping.model_validate(doc.data)
    except ValidationError as error:
        problems = problems_from_validation(doc, error, MiningMapping)
        problems.sort(key=lambda p: (p.line, p.column))
        raise ScenarioError(problems) from None
    problems = check_mapping(mapping, toolkit, doc)
    if problems:
        raise ScenarioError(problems)
    return mapping


def check_mapping(mapping: MiningMapping, toolkit: str, doc: YamlDocument) -> list[Problem]:
    """Every problem of ``mapping`` against the tools of ``toolkit``, located in ``doc``."""
    problems: list[Problem] = []
    if mapping.toolkit is not None and mapping.toolkit != toolkit:
        problems.append(doc.problem(("toolkit",), f"the mapping is for toolkit {mapping.toolkit!r}, not {toolkit!r}"))
    specs = get_toolkit(toolkit).tool_specs
    for source, action in mapping.actions.items():
        if action.tool is None:
            continue
        spec = specs.get(action.tool)
        if spec is None:
            message = f"unknown tool {action.tool!r} in toolkit {toolkit}{did_you_mean(action.tool, specs)}"
            problems.append(doc.problem(("actions", source, "tool"), message))
            continue
        parameters = list(spec.args_model.model_fields)
        for section in ("arguments", "constants"):
            for name in getattr(action, section):
                if name not in parameters:
                    message = (
                        f"{action.tool} has no argument {name!r}{did_you_mean(name, parameters)}; "
                        f"its arguments: {', '.join(parameters)}"
                    )
                    problems.append(doc.problem(("actions", source, section, name), message, key=True))
        for name in set(action.arguments) & set(action.constants):
            problems.append(
                doc.problem(("actions", source, "constants", name), "given in both arguments and constants", key=True)
            )
    problems.sort(key=lambda p: (p.line, p.column))
    return problems
