"""The persona model, the persona library and the role-play instructions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import yaml
from jinja2 import UndefinedError
from pydantic import ValidationError

from envsim.errors import UnknownNameError
from envsim.prompts import render
from envsim.scenario import Fact
from envsim.user.affect import AffectMachine
from envsim.user.llm import render_persona
from envsim.user.persona import (
    DEFAULT_PANIC,
    Exemplar,
    Persona,
    Provenance,
    Verbosity,
    load_persona,
    persona_library,
)

CORE = {"calm", "annoyed", "confused", "panicked_caller", "fraud_victim", "demanding_escalator"}


def _persona(**fields: Any) -> Persona:
    return Persona.model_validate({"name": "p", **fields})


# -- the library --------------------------------------------------------------------------


def test_library_has_the_core_personas() -> None:
    assert set(persona_library()) >= CORE
    assert load_persona("fraud_victim").name == "fraud_victim"


def test_unknown_persona_suggests_a_name() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'panicked_caller'"):
        load_persona("panicked_caler")


def test_library_traits_are_sensible() -> None:
    calm, annoyed, confused = load_persona("calm"), load_persona("annoyed"), load_persona("confused")
    panicked, fraud, escalator = (load_persona(n) for n in ("panicked_caller", "fraud_victim", "demanding_escalator"))
    # emergencies panic; nobody else does
    assert panicked.panic_intensity > fraud.panic_intensity > 0
    assert calm.panic_intensity == annoyed.panic_intensity == confused.panic_intensity == escalator.panic_intensity == 0
    # the escalator escalates most readily, the calm customer least
    assert escalator.escalation_propensity > annoyed.escalation_propensity > calm.escalation_propensity
    # the confused customer asks most, writes most and most formally
    assert confused.question_rate == max(p.question_rate for p in (calm, annoyed, confused, escalator))
    assert confused.verbosity.mean_words > calm.verbosity.mean_words > annoyed.verbosity.mean_words
    assert confused.speech_register == "formal" and annoyed.speech_register == "casual"
    # the calm customer types cleanly and volunteers details; a panicking caller does neither
    assert calm.typo_rate == 0 and panicked.typo_rate > 0
    assert calm.disclosure == "volunteers" and panicked.disclosure == "answers_only"
    assert escalator.initial_affect == "angry" and annoyed.initial_affect == "frustrated"
    for name in CORE:
        assert load_persona(name).provenance is None and load_persona(name).exemplars == []  # hand-written


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"typo_rate": 1.5}, "less than or equal to 1"),
        ({"question_rate": -0.1}, "greater than or equal to 0"),
        ({"escalation_propensity": 2}, "less than or equal to 1"),
        ({"panic_intensity": -1}, "greater than or equal to 0"),
        ({"register": "shouty"}, "'formal', 'neutral' or 'casual'"),
        ({"disclosure": "everything"}, "'volunteers' or 'answers_only'"),
        ({"initial_affect": "bored"}, "'calm', 'confused'"),
        ({"verbosity": {"mean_words": 0, "std_words": 1}}, "greater than 0"),
        ({"verbosity": {"mean_words": 5, "stdev": 1}}, "Extra inputs are not permitted"),
        ({"patience": 51}, "less than or equal to 50"),
        ({"human_demands": []}, "at least 1 item"),
        ({"verbosty": {"mean_words": 5}}, "Extra inputs are not permitted"),
        ({"initial_affect": "panicked", "panic_intensity": 0}, "needs panic_intensity > 0"),
        ({"provenance": {"corpus": "star", "dialogue_ids": ["1", "2"], "n_dialogues": 1}}, "n_dialogues is 1"),
        ({"exemplars": [{"corpus": "star", "dialogue_id": "7", "turn_index": -1}]}, "greater than or equal to 0"),
    ],
)
def test_traits_are_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _persona(**fields)


def test_defaults_are_a_neutral_customer() -> None:
    p = _persona()
    assert (p.disclosure, p.speech_register, p.typo_rate, p.panic_intensity) == ("answers_only", "neutral", 0.0, 0.0)
    assert p.human_demands == ["I want to speak to a person."]


def test_a_persona_that_starts_panicked_panics_by_default() -> None:
    assert _persona(initial_affect="panicked").panic_intensity == DEFAULT_PANIC > 0
    assert _persona(initial_affect="panicked", panic_intensity=0.3).panic_intensity == 0.3


def test_register_key_round_trips_through_yaml() -> None:
    p = _persona(
        register="casual",
        provenance={
            "corpus": "star",
            "dialogue_ids": ["12", "40"],
            "n_dialogues": 250,
            "fitted_at": "2026-01-05T10:00:00Z",
            "command": "envsim calibrate --corpus star",
        },
        exemplars=[{"corpus": "star", "dialogue_id": "12", "turn_index": 3}],
    )
    assert p.speech_register == "casual"
    dumped = p.model_dump(mode="json")
    assert dumped["register"] == "casual" and "speech_register" not in dumped
    again = Persona.model_validate(yaml.safe_load(yaml.safe_dump(dumped)))
    assert again == p
    assert p.provenance == Provenance(
        corpus="star",
        dialogue_ids=["12", "40"],
        n_dialogues=250,
        fitted_at=datetime(2026, 1, 5, 10, tzinfo=UTC),
        command="envsim calibrate --corpus star",
    )
    assert p.exemplars == [Exemplar(corpus="star", dialogue_id="12", turn_index=3)]


def test_verbosity_lognormal_matches_its_mean_and_spread() -> None:
    v = Verbosity(mean_words=12, std_words=6)
    back = Verbosity.from_lognormal(v.mu, v.sigma)
    assert (back.mean_words, back.std_words) == (12.0, 6.0)
    rng = np.random.default_rng(1)
    samples = np.array([v.sample(rng) for _ in range(20000)])
    assert samples.min() >= 1
    assert abs(samples.mean() - 12) < 0.3 and abs(samples.std() - 6) < 0.4
    low, high = v.typical_range()
    assert 0.75 < np.mean((samples >= low) & (samples <= high)) < 0.9  # the 10th..90th percentiles


def test_zero_spread_verbosity_is_exact() -> None:
    v = Verbosity(mean_words=7, std_words=0)
    assert v.sigma == 0 and v.sample(np.random.default_rng(0)) == 7 and v.typical_range() == (7, 7)


# -- render_persona -----------------------------------------------------------------------


def _instructions(name: str, affect: Any = None, **extra: Any) -> str:
    persona = load_persona(name)
    return render_persona(
        persona,
        goal="Get a refund for order #W0003.",
        facts_known=extra.get("facts", {"email": "ada@example.com", "order_id": "#W0003"}),
        affect=affect or persona.initial_affect,
    )


def test_render_persona_states_goal_facts_and_traits() -> None:
    text = _instructions("annoyed")
    assert "Get a refund for order #W0003." in text
    assert "- email: ada@example.com" in text and "- order id: #W0003" in text
    low, high = load_persona("annoyed").verbosity.typical_range()
    assert f"usually between {low} and {high}" in text
    assert "Register: casual" in text
    assert "one word in 50" in text  # typo_rate 0.02
    assert "Give a detail only when the agent asks for it" in text  # answers_only
    assert "You are clearly frustrated" in text
    assert "2 unhelpful replies" in text
    assert "sometimes ask for a human" in text
    assert "emergency" not in text


def test_render_persona_differs_by_trait() -> None:
    calm, confused = _instructions("calm"), _instructions("confused")
    assert "you spell correctly" in calm.lower() and "make typos" in confused
    assert "Register: formal" in confused and "plain everyday language" in calm
    assert "Give a detail only when the agent asks for it" in confused
    assert "You may offer one of these details before you are asked" in calm  # volunteers
    assert "You are calm and cooperative." in calm and "confused" in confused
    assert "usually ask the agent a question" not in calm and "often ask the agent a question" in confused


def test_render_persona_describes_panic_and_when_to_demand_a_human() -> None:
    persona = load_persona("panicked_caller")
    start = _instructions("panicked_caller")
    assert "This is an emergency and you are extremely panicked" in start
    assert "You still need emergency help" in start
    machine = AffectMachine(persona, emergency=True)
    machine.observe({"ignores_emergency"})
    demanding = _instructions("panicked_caller", machine.state)
    assert "Demand help or a human who can send it now" in demanding and persona.human_demands[0] in demanding
    machine.observe({"ignores_emergency"})
    giving_up = _instructions("panicked_caller", machine.state)
    assert f'You give up. End the conversation with: "{persona.give_up}"' in giving_up
    machine = AffectMachine(persona, emergency=True)
    machine.observe({"escalates"})
    assert "You are relieved" in _instructions("panicked_caller", machine.state)


def test_render_persona_takes_scenario_facts_and_no_facts() -> None:
    facts = [Fact(key="date_of_birth", value="1941-03-02", asked_by=["birth"])]
    assert "- date of birth: 1941-03-02" in _instructions("calm", facts=facts)
    assert "No account details" in _instructions("calm", facts={})


def test_render_persona_is_deterministic() -> None:
    assert _instructions("fraud_victim") == _instructions("fraud_victim")
    assert len({_instructions(name) for name in CORE}) == len(CORE)


def test_persona_template_is_strict_about_missing_variables() -> None:
    persona = load_persona("calm")
    with pytest.raises(UndefinedError, match="'goal' is undefined"):
        render("persona.j2", name=persona.name, description=persona.description, facts=[])
