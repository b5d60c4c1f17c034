"""Shared fixtures: a tiny scenario on the small medical-supply world is the default for everything."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envsim.env import ScenarioEnv
from envsim.loader import load_scenario_text
from envsim.scenario import Scenario
from tests.llm_clients import close_litellm_clients, closing_event_loops

REPO = Path(__file__).resolve().parents[1]

TINY_SCENARIO = """\
id: TinyEmergency
domain: medical_supply
description: A caller's father collapsed; the agent must find him and send an ambulance.
toolkits: [medical_supply]
world:
  fixture: small
  seed: 3
  inline:
    patients:
      PT-9001: {id: PT-9001, name: Walter Brennan, phone: "555-0142", date_of_birth: "1941-03-02",
                address: "18 Alder Lane", insurance_plan_id: null}
agent:
  guidelines: In an emergency, find the patient and dispatch emergency services.
user:
  goal: Get an ambulance for her father.
  opening: He collapsed, please help!
  facts:
    - {key: phone, value: "555-0142", asked_by: [phone, number]}
  satisfied_by: ["help is on the way"]
  persona: {ref: panicked_caller}
expected:
  actions:
    - {name: lookup_patient, arguments: {phone: "555-0142"}}
    - name: dispatch_emergency_services
      arguments: {patient_id: PT-9001, emergency: unresponsive, address_confirmed: true, details: collapsed}
  required_statements: [{any_of: ["help is on the way"]}]
  forbidden_actions: [{name: create_equipment_order}]
  escalation: required
max_turns: 8
"""

LOOKUP = '{"name": "lookup_patient", "arguments": {"phone": "555-0142"}}'
DISPATCH = (
    '{"name": "dispatch_emergency_services", "arguments": {"patient_id": "PT-9001", '
    '"emergency": "unresponsive", "address_confirmed": true, "details": "collapsed"}}'
)


@pytest.fixture(scope="session")
def tiny_scenario() -> Scenario:
    """The tiny emergency scenario, validated and linted."""
    return load_scenario_text(TINY_SCENARIO)


@pytest.fixture
def tiny_env(tiny_scenario: Scenario) -> ScenarioEnv:
    """A fresh environment on the tiny scenario."""
    return ScenarioEnv(tiny_scenario)


@pytest.fixture(scope="session", autouse=True)
def _close_litellm_clients() -> Iterator[None]:
    """Every event loop closes litellm's async sessions bound to it; the session's end closes its sync clients.

    See :mod:`tests.llm_clients`. The client cache is emptied and collected while pytest still
    watches, so a client left open (a regression, or a new kind of client in a litellm upgrade)
    fails the session with its ``unclosed <socket ...>`` ResourceWarning instead of being printed
    after it.
    """
    with closing_event_loops():
        yield
    close_litellm_clients()
    gc.collect()


@pytest.fixture(autouse=True)
def _close_implicit_event_loop() -> Iterator[None]:
    """Close the main-thread event loop litellm's sync path creates and never closes.

    litellm's service logger calls ``asyncio.get_event_loop()``; a later ``asyncio.run`` orphans
    that loop, and its ResourceWarning (an error under ``filterwarnings = error``) would fail a
    random later test. With ``set_event_loop(None)`` litellm runs those hooks with ``asyncio.run``.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


@dataclass
class LoggedCalls:
    """What a litellm success callback saw (see :func:`slow_litellm_callback`)."""

    count: int = 0


@pytest.fixture
def slow_litellm_callback(monkeypatch: pytest.MonkeyPatch) -> LoggedCalls:
    """A litellm callback that takes 50 ms per call (a logging service over the network) and counts them.

    litellm copies ``litellm.callbacks`` into its own lists on a call; they are all replaced here
    (restored after the test), so that no callback of another test is left in them.
    """
    from envsim import llm

    lib = llm.litellm()
    from litellm.integrations.custom_logger import CustomLogger

    seen = LoggedCalls()

    class Slow(CustomLogger):  # type: ignore[misc]
        async def async_log_success_event(self, *args: object, **kwargs: object) -> None:
            await asyncio.sleep(0.05)
            seen.count += 1

    monkeypatch.setattr(lib, "callbacks", [Slow()])
    for name in (
        "input_callback",
        "success_callback",
        "failure_callback",
        "_async_success_callback",
        "_async_failure_callback",
    ):
        monkeypatch.setattr(lib, name, [])
    return seen
