"""Scenario text is placeholders, not a program: checked, located, bounded in size and time."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envsim import prompts
from envsim.errors import EnvsimError, TemplateError
from envsim.prompts import TemplateProblem, check_scenario_template, render, render_remembered, render_scenario_text

BOMBS = [
    "{% for a in range(10**5) %}{% for b in range(10**5) %}x{% endfor %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ 'x' ~ 'x' ~ 'x' }}",
    "{{ ('x' * 10**6) | join('y' * 10**3) }}",
]


@pytest.mark.parametrize("source", BOMBS)
def test_template_bombs_fail_fast_with_a_typed_error(source: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(TemplateError) as caught:
            render_scenario_text(source, value="v", key="k")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(caught.value, EnvsimError) and caught.value.line == 1
    assert elapsed < 5 and peak < 5_000_000


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    [
        ("{% for i in items %}{{ i }}{% endfor %}", 1, 4, "{% for %} is not allowed"),
        ("{% set x = 1 %}{{ x }}", 1, 4, "{% set %} is not allowed"),
        ("{% macro m() %}{% endmacro %}", 1, 4, "{% macro %} is not allowed"),
        ("{% include 'persona.j2' %}", 1, 4, "{% include %} is not allowed"),
        ("My {{ value.upper() }}", 1, 18, "calls are not allowed"),
        ("{{ range(3) }}", 1, 9, "calls are not allowed"),
        ("{{ value * 2 }}", 1, 10, "arithmetic ('*')"),
        ("{{ value ** 2 }}", 1, 10, "arithmetic ('**')"),
        ("{{ -value }}", 1, 4, "arithmetic ('-')"),
        ("x\n  {{ value ~ key }}", 2, 12, "arithmetic ('~')"),
        ("{{ value[0:2] }}", 1, 9, "no slices"),
        ("{{ value[key] }}", 1, 9, "literal string or integer"),
        ("{{ value.__class__ }}", 1, 10, "'__class__' is blocked"),
        ("{{ value['__globals__'] }}", 1, 11, "'__globals__' is blocked"),
        ("{{ _secret }}", 1, 4, "'_secret' is blocked"),
        ("{{ value | replace('a', 'b') }}", 1, 12, "the filter 'replace' is not allowed"),
        ("{{ value | join('" + "x" * 300 + "') }}", 1, 1, "at most 200 characters"),
        ("{% if value is sameas key %}x{% endif %}", 1, 16, "the test 'sameas' is not allowed"),
        ("{{ [value, key] }}", 1, 1, "list literals"),
        ("{{ valeu }}", 1, 4, "undefined name 'valeu' (known names: key, value)"),
        ("{{ value }", 1, 1, "template syntax error"),
        ("{% if value %}x", 1, 1, "template syntax error"),
    ],
)
def test_forbidden_constructs_are_located(source: str, line: int, column: int, words: str) -> None:
    problems = check_scenario_template(source, ["key", "value"])
    assert problems and (problems[0].line, problems[0].column) == (line, column)
    assert words in problems[0].message
    with pytest.raises(TemplateError) as caught:  # rendering refuses it too, at the same place
        render_scenario_text(source, value="555-0142", key="phone")
    assert (caught.value.line, caught.value.column) == (line, column) or "undefined" in words


def test_every_problem_of_a_template_is_reported() -> None:
    source = "Hi {{ valeu }} and {{ value * 3 }}\n{% for x in y %}{% endfor %}"
    assert check_scenario_template(source, ["value"]) == [
        TemplateProblem(1, 7, "undefined name 'valeu' (known names: value)"),
        TemplateProblem(1, 29, "arithmetic ('*') is not allowed in scenario text"),
        TemplateProblem(2, 4, "{% for %} is not allowed in scenario text (only {{ ... }} and {% if %})"),
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("My {{ key }} is {{ value }}.", "My phone is 555-0142."),
        ("{{ key | upper }}: {{ value | trim | lower }}", "PHONE: 555-0142"),
        ("{{ order.id }} / {{ order['items'][0] }} / {{ order['items'] | join(', ') }}", "#W1 / mug / mug, lamp"),
        ("{{ nickname | default('there') | title }}", "There"),
        ("{% if nickname is defined %}hi{% elif key == 'phone' %}call me{% else %}-{% endif %}", "call me"),
        ("{{ value if key != 'email' else 'hidden' }} ({{ order['items'] | length }} items)", "555-0142 (2 items)"),
        ("{# a note #}{% raw %}{{ not rendered }}{% endraw %}", "{{ not rendered }}"),
    ],
)
def test_placeholders_filters_and_conditions_render(source: str, expected: str) -> None:
    order = {"id": "#W1", "items": ["mug", "lamp"]}
    assert check_scenario_template(source, ["key", "value", "order"]) == []  # nickname: only as optional
    assert render_scenario_text(source, key="phone", value="555-0142", order=order) == expected


def test_undefined_names_and_attributes_at_render_time_are_typed_with_their_line() -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined") as caught:
        render_scenario_text("first line\n\nthird {{ missing }}", value="v")
    assert caught.value.line == 3
    with pytest.raises(TemplateError, match="has no attribute 'nope'"):
        render_scenario_text("{{ value.nope }}", value="v")
    with pytest.raises(TemplateError, match="No first item"):  # a filter's own failure is typed too
        render_scenario_text("{{ items | first }}", items=[])


def test_output_is_bounded_even_for_an_allowed_template() -> None:
    big = "x" * (prompts.MAX_OUTPUT_CHARS + 1)
    with pytest.raises(TemplateError, match="longer than 65536 characters"):
        render_scenario_text("{{ value }}", value=big)
    with pytest.raises(TemplateError, match="longer than"):
        render_scenario_text("{{ items | join(', ') }}", items=["y" * 1000] * 100)


def test_rendering_time_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts, "MAX_RENDER_SECONDS", -1.0)
    with pytest.raises(TemplateError, match="rendering took longer than"):
        render_scenario_text("{{ value }} and {{ key }}", value="v", key="k")


def test_packaged_templates_keep_the_full_sandbox() -> None:
    loop = "{% for i in range(3) %}{{ i * 2 }}{% endfor %}"
    assert check_scenario_template(loop)  # refused as scenario text ...
    assert prompts.environment().from_string(loop).render() == "024"  # ... allowed in packaged templates
    assert render("agent_ask_facts.j2", asks=["phone", "email"]).endswith("your phone, email?")


FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "#}", " value ", " key ", "|", " upper", " join(', ')", "(", ")", "[", "]", "'",
    '"', ".", "__class__", " * ", " ** ", "10**9", " ~ ", " for x in range(10**5) ", " endfor ", " if ", " else ",
    " endif ", " set x = 1 ", " not ", " and ", " is defined ", "\n", "0", "-", ":", "lipsum", " raw ", " endraw ",
]  # fmt: skip


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=30).map("".join))
def test_any_text_renders_or_raises_a_typed_error_quickly(source: str) -> None:
    started = time.perf_counter()
    problems = check_scenario_template(source, ["key", "value"])
    forbidden = [p for p in problems if not p.message.startswith("undefined name")]
    try:
        text = render_scenario_text(source, key="phone", value="555-0142")
    except TemplateError:
        pass
    else:  # (an undefined name in a branch not taken renders)
        assert not forbidden and len(text) <= prompts.MAX_OUTPUT_CHARS
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "text", ["", "a", "a\n", "a\n\n", "x}} y %} #}", "\n", "two\nlines\n", "  spaced  \n", "tab\tend"]
)
def test_plain_text_renders_as_jinja2_renders_it_without_a_template(text: str) -> None:
    from envsim.prompts import _compiled, scenario_environment

    before = _compiled.cache_info().currsize
    assert render_scenario_text(text) == scenario_environment().from_string(text).render()
    assert check_scenario_template(text) == []
    assert _compiled.cache_info().currsize == before  # nothing compiled for plain text


def test_render_remembered_is_render_and_follows_its_context() -> None:
    for statements in [(), ("Your card is frozen.",), ("Done.", "Refunded.")]:
        assert render_remembered("agent_closing.j2", statements=statements) == render(
            "agent_closing.j2", statements=list(statements)
        )
    first = render_remembered("agent_system.j2", domain="retail", guidelines="Verify the email first.")
    assert first == render("agent_system.j2", domain="retail", guidelines="Verify the email first.")
    again = render_remembered("agent_system.j2", domain="retail", guidelines="Never refund twice.")
    assert "Never refund twice." in again and "Verify the email first." not in again
    assert render_remembered("user_fact.j2", key="zip_code", value="10001") == "My zip code is 10001."
