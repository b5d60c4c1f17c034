"""Rendering a family body: native values, text, and the fast path agreeing with the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from envsim.errors import TemplateError
from envsim.factory.render import as_context, live_containers, render_body, render_value
from envsim.prompts import render_scenario_text

CONTEXT = as_context(
    {
        "order": {"id": "#W0004", "items": [{"name": "mug", "unit_price_cents": 1299}], "status": "delivered"},
        "txs": [{"id": "TX1"}, {"id": "TX2"}],
        "persona": "calm",
        "nothing": None,
    }
)


@pytest.mark.parametrize(
    "text",
    [
        "Order {{ order.id }} is {{ order.status | upper }}.",
        "First: {{ order.items | first }}",
        "It cost {{ order.items.0.unit_price_cents | dollars }}",
        "{{ order.status | title }} x{{ order.items | length }} {{ nothing }}",
        "{{ persona | capitalize | trim }}!",
        "{% if order.status == 'delivered' %}here{% else %}not yet{% endif %}",
        'Hi {{ name | default("there") }}',
    ],
)
def test_text_renders_as_the_sandbox_renders_it(text: str) -> None:
    assert render_value(text, CONTEXT) == render_scenario_text(text, **CONTEXT)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{{ txs | ids }}", ["TX1", "TX2"]),
        ("{{ order.items | length }}", 1),
        ("{{ order.items }}", [{"name": "mug", "unit_price_cents": 1299}]),
        ("{{ order.items.0.unit_price_cents | dollars }}", "$12.99"),
        ("{{ nothing }}", None),
        ("{{ order['id'] }}", "#W0004"),
    ],
)
def test_a_lone_expression_renders_to_its_native_value(text: str, value: Any) -> None:
    result = render_value(text, CONTEXT)
    assert result == value and type(result) is type(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ order.colour }}", "has no attribute 'colour'"),
        ("{{ order.id | shout }}", "the filter 'shout' is not allowed"),
        ("{{ persona | ids }}", "ids takes a list of records"),
        ("{{ order.__class__ }}", "blocked"),
        ("{{ order.id * 3 }}", "arithmetic"),
    ],
)
def test_what_the_sandbox_refuses_is_refused(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render_value(text, CONTEXT)


def test_template_free_parts_of_a_body_are_shared_not_copied() -> None:
    body = {"fixed": {"a": [1, "x"]}, "live": {"b": ["{{ persona }}", {"c": "y"}]}}
    out = render_body(body, CONTEXT, live=live_containers(body))
    assert out == {"fixed": {"a": [1, "x"]}, "live": {"b": ["calm", {"c": "y"}]}}
    assert out["fixed"] is body["fixed"] and out["live"]["b"][1] is body["live"]["b"][1]
    assert out["live"] is not body["live"]
