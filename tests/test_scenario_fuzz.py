"""Fuzzing scenario text: whatever a careless or hostile author writes, loading returns a Scenario or a ScenarioError.

Hypothesis mutates a valid scenario (the tiny test scenario and a shipped one): characters
deleted, inserted and replaced, lines duplicated, anchors and aliases injected (a billion-laughs
block among them), deep brackets, huge integers, tabs, control characters and lone surrogates.
Any other exception, or a load that takes seconds, fails the test. The time bound is a generous
guard against hangs (each load takes milliseconds), not a timing target.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.registration import discover
from envsim.scenario import Scenario
from tests.conftest import TINY_SCENARIO

FAST_S = 5.0
SHIPPED = discover()["MedicalSupplyPanicCaller"][0].read_text(encoding="utf-8")
BOMB = "\nlol0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)
)
ODD = ["\t", "\x00", "\x07", "\ud800", "\udfff", "\ufeff", "\x85", "\u2028", "\r", "\\", '"', "'", "#", "{", "}", ":"]
"""Characters that YAML, Python or the terminal treat specially."""

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    """``base`` after one to four random mutations."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(
            st.sampled_from(
                ["delete", "insert", "replace", "duplicate_line", "alias", "bomb", "brackets", "huge_int", "odd"]
            )
        )
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
        elif kind == "replace":
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
        elif kind == "duplicate_line":
            lines = text.splitlines(keepends=True) or [""]
            i = draw(st.integers(0, len(lines) - 1))
            text = "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
        elif kind == "alias":
            text = text[:at] + draw(st.sampled_from(["&a ", "*a", " *a", "&a [*a]", "<<: *a\n", "&b "])) + text[at:]
        elif kind == "bomb":
            text = text + BOMB if draw(st.booleans()) else BOMB.lstrip("\n") + text
        elif kind == "brackets":
            text = text[:at] + draw(st.sampled_from("[{")) * draw(st.integers(50, 10_000)) + text[at:]
        elif kind == "huge_int":
            text = text.replace(draw(st.sampled_from(["8", "3", "1"])), "9" * draw(st.integers(4000, 6000)), 1)
        else:
            text = text[:at] + draw(st.sampled_from(ODD)) + text[at:]
    return text


def check(text: str) -> None:
    """Loading ``text`` gives a Scenario or a located ScenarioError, in time."""
    start = time.perf_counter()
    try:
        scenario = load_scenario_text(text)
    except ScenarioError as error:
        assert error.problems
        assert all(p.line >= 1 and p.column >= 1 for p in error.problems)
    else:
        assert isinstance(scenario, Scenario)
    assert time.perf_counter() - start < FAST_S


@SETTINGS
@given(mutated(TINY_SCENARIO))
def test_mutated_tiny_scenario_loads_or_fails_cleanly(text: str) -> None:
    check(text)


@SETTINGS
@given(mutated(SHIPPED))
def test_mutated_shipped_scenario_loads_or_fails_cleanly(text: str) -> None:
    check(text)
