"""Tool schemas from signatures and docstrings; dispatch that never raises."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pytest
from pydantic import Field

from envsim.errors import RuleViolation
from envsim.tools import Toolkit, ToolRegistry, describe, parse_docstring, tool
from envsim.world import Record, World, WorldState


class Box(Record):
    size: int


class BoxState(WorldState):
    boxes: dict[str, Box]


class BoxKit(Toolkit):
    name = "boxes"
    state_model = BoxState

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.boxes = world.table("boxes", Box)

    @tool()
    def get_box(self, box_id: str) -> Box:
        """Get a box.

        Args:
            box_id: The box id.
        """
        return self.boxes.require(box_id, "box")

    @tool(write=True)
    def shrink(self, box_id: str, by: int, mode: Literal["soft", "hard"] = "soft") -> Box:
        """Shrink a box.

        Args:
            box_id: The box id.
            by: How much smaller,
                in units.
            mode: How.
        """
        box = self.boxes.require(box_id, "box")
        if box.size - by < 0:
            raise RuleViolation("a box cannot have a negative size")
        self.boxes.put(box_id, box.model_copy(update={"size": box.size - by}))
        return self.boxes.require(box_id)

    @tool()
    def count(self, n: Annotated[int, Field(ge=1, le=5)] = 1) -> int:
        """Count.

        Args:
            n: How many, 1 to 5.
        """
        return n

    @tool(write=True, ends_episode=True, escalation=True)
    def explode(self) -> dict[str, str]:
        """Blow everything up."""
        raise ZeroDivisionError("boom")


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([BoxKit(World(BoxState(boxes={"b": Box(size=3)})))])


def _error(result_content: str) -> str:
    return str(json.loads(result_content)["error"]["type"])


def test_schema_comes_from_signature_and_docstring(registry: ToolRegistry) -> None:
    schema = {s["function"]["name"]: s["function"] for s in registry.schemas()}
    shrink = schema["shrink"]
    assert shrink["description"] == "Shrink a box."
    assert shrink["parameters"]["required"] == ["box_id", "by"]
    assert shrink["parameters"]["properties"]["by"] == {"description": "How much smaller, in units.", "type": "integer"}
    assert shrink["parameters"]["properties"]["mode"]["enum"] == ["soft", "hard"]
    assert shrink["parameters"]["additionalProperties"] is False
    assert schema["explode"]["parameters"]["properties"] == {}
    assert schema["count"]["parameters"]["properties"]["n"]["maximum"] == 5


def test_flags_and_describe(registry: ToolRegistry) -> None:
    specs = [registry.spec(n) for n in registry.names]
    assert describe([s for s in specs if s is not None]) == [
        "get_box (read): Get a box.",
        "shrink (write): Shrink a box.",
        "count (read): Count.",
        "explode (write, ends episode, escalation): Blow everything up.",
    ]


def test_dispatch_outcomes(registry: ToolRegistry) -> None:
    assert registry.call("shrink", {"box_id": "b", "by": 1}).content == '{"size":2}'
    assert _error(registry.call("shrink", {"box_id": "b", "by": 9}).content) == "rule_violation"
    assert _error(registry.call("shrink", {"box_id": "zz", "by": 1}).content) == "not_found"
    assert _error(registry.call("shrink", {"box_id": "b", "by": "lots"}).content) == "invalid_arguments"
    assert _error(registry.call("shrink", {"box_id": "b"}).content) == "invalid_arguments"
    assert _error(registry.call("shrink", ["b"]).content) == "invalid_arguments"
    assert _error(registry.call("shrnk", {}).content) == "unknown_tool"
    assert _error(registry.call("count", {"n": 9}).content) == "invalid_arguments"
    assert registry.call("count", {"n": 5}).content == "5"
    bug = registry.call("explode", {})
    assert _error(bug.content) == "internal" and not bug.ends_episode


def test_tool_definitions_are_checked() -> None:
    with pytest.raises(TypeError, match="not described under Args"):

        class Bad(Toolkit):
            name = "bad"

            @tool()
            def f(self, x: int) -> int:
                """Do f."""
                return x


def test_parse_docstring_sections() -> None:
    summary, args = parse_docstring("""Summary line
    continues here.

    Args:
        a: First.
        b (int): Second,
            wrapped.

    Returns:
        Nothing.
    """)
    assert summary == "Summary line continues here."
    assert args == {"a": "First.", "b": "Second, wrapped."}


def test_schemas_are_built_once_and_each_caller_gets_its_own_copy(registry: ToolRegistry) -> None:
    spec = registry.spec("shrink")
    assert spec is not None
    first = spec.openai_schema
    first["function"]["parameters"]["properties"]["by"]["description"] = "changed by a caller"
    first["function"]["parameters"]["required"].append("mode")
    second = spec.openai_schema
    assert second["function"]["parameters"]["properties"]["by"]["description"] == "How much smaller, in units."
    assert second["function"]["parameters"]["required"] == ["box_id", "by"]
    assert second is not first and second["function"] is not first["function"]
    other = ToolRegistry(registry.toolkits).schemas()  # another registry (environment): fresh dicts, same content
    assert other == registry.schemas() and other[0] is not registry.schemas()[0]


class OddKit(Toolkit):
    name = "odd"
    state_model = BoxState

    @tool()
    def weird(self, kind: str) -> object:
        """Return what JSON cannot hold.

        Args:
            kind: Which value.
        """
        return {"object": object(), "surrogate": "\ud800"}[kind]


@pytest.mark.parametrize("kind", ["object", "surrogate"])
def test_a_result_json_cannot_hold_is_an_internal_error(kind: str) -> None:
    registry = ToolRegistry([OddKit(World(BoxState(boxes={})))])
    result = registry.call("weird", {"kind": kind})
    assert _error(result.content) == "internal" and not result.ok
