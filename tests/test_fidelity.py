"""``envsim fidelity``: distances, classifiers, the template split, replays, planted users that fail, the command."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from envsim import fidelity
from envsim.calibrate import classify
from envsim.cli import app
from envsim.errors import EnvsimError
from envsim.fidelity import (
    PersonaFidelity,
    Replay,
    context_aucs,
    context_rows,
    dialogue_level,
    evaluate,
    human_reference,
    js_divergence,
    ks_distance,
    persona_figures,
    replay,
    replay_scenario,
    stand_in,
    targets,
    task_facts,
    wasserstein,
)
from envsim.fidelity_classifier import FEATURES, cv_auc, fit_logistic, turn_features
from envsim.fidelity_measures import NearDuplicates, edit_distance, pair_accuracy
from envsim.fidelity_split import Split, SplitLeakError, check_split, split_by_template, write_pool
from envsim.scenario import Fact, Scenario
from envsim.testing.server import start_server
from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
from envsim.transcripts.schema import Conversation, ToolEvent, Turn
from envsim.user.affect_scorer import rank_auc
from envsim.user.base import UserSimulator, UserTurn
from envsim.user.transcript.coherence import CoherenceModel
from envsim.user.transcript.corpus import star_file
from envsim.user.transcript.text import Names
from tests.conftest import REPO


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The transcript corpus folder; fails (never skips) when it is missing."""
    folder = corpus_dir()
    assert folder is not None and folder.is_dir(), f"transcript corpus not found: set {CORPUS_ENV}"
    return folder


# -- numbers ---------------------------------------------------------------------------------


def test_auc_against_a_hand_computed_case() -> None:
    # positives 0.35, 0.8; negatives 0.1, 0.4: of the 4 pairs, 3 rank the positive higher -> 3/4
    assert rank_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # a tie counts half: positive 0.5 vs negatives 0.5 and 0.2 -> (0.5 + 1) / 2
    assert rank_auc([0.5, 0.5, 0.2], [True, False, False]) == 0.75


def test_cross_validated_auc_separable_and_indistinguishable() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 100)
    groups = [f"d{i // 4}" for i in range(200)]
    separable = (labels + 0.05 * rng.normal(size=200))[:, None]
    assert cv_auc(separable, labels, groups) == 1.0
    noise = rng.normal(size=(200, 5))
    assert 0.35 < cv_auc(noise, labels, groups) < 0.65
    assert cv_auc(-separable, labels, groups) == 1.0  # the classifier learns the sign


def test_logistic_regression_is_symmetric() -> None:
    x = np.array([[-2.0], [-1.0], [1.0], [2.0], [-0.5], [0.5]])
    y = np.array([0, 0, 1, 1, 1, 0])
    beta = fit_logistic(x, y)
    assert beta[0] > 0 and abs(beta[1]) < 1e-6  # slope positive, intercept 0 by symmetry


def test_distances() -> None:
    assert ks_distance([1, 2, 3, 4], [1, 2, 3, 4]) == 0.0
    assert ks_distance([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert wasserstein([1, 2, 3], [2, 3, 4]) == pytest.approx(1.0)
    assert js_divergence({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert js_divergence({"a": 1, "b": 3}, {"a": 2, "b": 6}) == 0.0
    # half-overlapping: p = (1/2, 1/2, 0), q = (0, 1/2, 1/2) -> JS = 1/2 bit
    assert js_divergence({"a": 1, "b": 1}, {"b": 1, "c": 1}) == pytest.approx(0.5)


def test_turn_features_are_stable_across_processes() -> None:
    rows = turn_features(["Hi there?!", "my PIN is 4321"])
    assert rows.shape == (2, len(FEATURES))
    code = "from envsim.fidelity import turn_features; print(turn_features(['Hi there?!', 'my PIN is 4321']).sum())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert float(other.stdout) == pytest.approx(rows.sum())  # hashed unigrams use CRC-32, not hash()


# -- replay (a made-up dialogue) -------------------------------------------------------------


def _made_up() -> Conversation:
    return Conversation(
        corpus="star",
        id="42",
        labels={"user_task": "Your name is Ann Lee. Book a table for 4 people at 7 pm.", "domains": ["restaurant"]},
        turns=[
            Turn(role="user", text="hi, I need a table"),
            Turn(role="agent", text="Sure."),
            Turn(role="agent", text="What time?"),
            Turn(role="user", text="7 pm please"),
            Turn(role="tool", tool=ToolEvent(name="restaurant_book", arguments={}, result={"ok": True})),
            Turn(role="agent", text="Booked. Anything else?"),
            Turn(role="user", text="no thanks"),
            Turn(role="user", text="bye"),
        ],
    )


class Echo(UserSimulator):
    """Says back what it was told, and records the messages it saw."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        self.scenario = scenario
        return scenario.user.opening

    def reply(self, agent_message: str, messages: Any) -> UserTurn:
        self.seen.append([dict(m) for m in messages])
        return UserTurn(f"echo: {agent_message}", done="Anything else" in agent_message)


def test_task_facts_and_replay_scenario() -> None:
    conversation = _made_up()
    facts = {f.key: f for f in task_facts(conversation)}
    assert facts["name"].value == "Ann Lee" and facts["time_1"].value == "7 pm"
    assert "how many" in facts["quantity_1"].asked_by
    scenario = replay_scenario(conversation, "star_calm", list(facts.values()))
    assert scenario.user.opening == "hi, I need a table" and scenario.domain == "restaurant"
    assert scenario.user.persona.ref == "star_calm"


def _task_text(text: str) -> Conversation:
    return Conversation(corpus="star", id="9", turns=[], labels={"user_task": text, "persona_instructions": []})


def test_a_destination_is_a_place_not_an_acronym_or_a_day() -> None:
    """'to RSVP' and 'to 23rd' are no destinations: a fact holding them made the user refuse every turn saying them."""
    rsvp = {f.key: f.value for f in task_facts(_task_text("Your are Ben and would like to RSVP to a party."))}
    assert "destination" not in rsvp and "RSVP" not in rsvp.values()
    day = {f.key: f.value for f in task_facts(_task_text("Move your appointment to 23rd March."))}
    assert day.get("destination") is None
    ride = {f.key: f.value for f in task_facts(_task_text("You want a ride from 'Hospital' to 'Airport'."))}
    assert ride["origin"] == "Hospital" and ride["destination"] == "Airport"
    city = {f.key: f.value for f in task_facts(_task_text("Book a flight to San Francisco."))}
    assert city["destination"] == "San Francisco"


def test_a_date_is_not_asked_for_by_its_own_words() -> None:
    """'May 8th' is asked for by day, date and when, never by 'may' ('May I have your name?' asked for the date)."""
    facts = task_facts(_task_text("You want to reserve a room at the Old Town Inn from May 8th to 23rd."))
    dates = [f for f in facts if f.key.startswith("date")]
    assert dates and all("may" not in f.asked_by for f in dates) and all("date" in f.asked_by for f in dates)


def test_answers_a_task_states_in_sentences_are_facts() -> None:
    """'You don't need parking.', 'You have no dietary restrictions.', 'You can only eat halal food.' and what has
    happened: the role-player had them, so the replaying user has them too (a yes or a no, or its own line)."""
    task = (
        "Your are Ben and would like to RSVP to a party. You need parking. You have no dietary restrictions. "
        "You have not paid the application fee. You can only eat halal food. "
        "You have had a cough and a sore throat, for two days now. You cannot remember if you had payed the fee."
    )
    facts = {f.key: f for f in task_facts(_task_text(task))}
    answers = [(f.value, f.asked_by) for k, f in facts.items() if k.startswith("yes_no")]
    assert answers == [("yes", ["parki"]), ("no", ["dieta", "restr"]), ("no", ["appli", "fee"])]
    halal, happened = facts["statement_1"], facts["statement_2"]
    assert (halal.value, halal.say) == ("halal", "I can only eat halal food.") and "restr" in halal.asked_by
    assert happened.say == "I have had a cough and a sore throat for two days now." and "sympt" in happened.asked_by
    assert (facts["statement_3"].value, facts["statement_3"].say) == ("not sure", "I can't remember if I paid the fee.")
    # 'What doctor would you like to see?' asks for Dr. Johnson, whether the name's span holds the title or not
    for names in (Names(proper=frozenset({"johnson"})), Names(proper=frozenset({"dr", "johnson"}))):
        doctor = task_facts(_task_text("You would like an appointment with Dr. Johnson."), names)
        assert [f.asked_by for f in doctor if f.value.endswith("Johnson")] == [["doctor"]], doctor  # not 'appoint'
    host = task_facts(_task_text("You would like to RSVP. The host is Mark."), Names(proper=frozenset({"mark"})))
    assert "doctor" not in host[-1].asked_by
    unsure = task_facts(_task_text("You forgot your PIN. Now you remember your PIN again. It was either 7402 or 3941."))
    assert [f.value for f in unsure if f.key == "pin"] == ["7402 or 3941"]  # what the role-player knew
    # a need with more to it is the goal, not a yes
    ride = task_facts(_task_text("You need directions from 'University' to 'Airport'."))
    assert not any(f.key.startswith(("yes_no", "statement")) for f in ride) and ride


def test_instructions_that_change_or_withhold_a_value_reach_the_replayed_fact() -> None:
    """'The flight ID was actually 704', 'you are actually closer to University' and 'you forgot your PIN' (then
    'Now you remember your PIN'): what the role-player was told to do, as ``said_first`` and ``found_after``."""

    def facts(task: str, *instructions: str) -> dict[str, Fact]:
        labels = {"user_task": task, "persona_instructions": list(instructions)}
        return {f.key: f for f in task_facts(Conversation(corpus="star", id="9", turns=[], labels=labels))}

    flight = facts("Reserve flight with id 761. Your name is Mark.", "The flight ID was actually 704.")["number_1"]
    assert (flight.value, flight.said_first) == ("704", "761")
    ride = facts(
        "You need a ride from 'Hospital' to '5th and Main'.",
        "You realize that you are actually closer to Broadway and Main right now. Change your departure location.",
    )
    assert (ride["origin"].value, ride["origin"].said_first, ride["destination"].said_first) == (
        "Broadway and Main",
        "Hospital",
        None,
    )
    bank = facts(
        "Follow the instructions.",
        "You are Jane Doe. Your account number is 95381901, but you forgot your PIN.",
        "Now you remember you PIN again. Maybe. It was either 3941 or 0314.",
    )
    assert (bank["pin"].value, bank["pin"].found_after, bank["account_number"].found_after) == ("3941 or 0314", 1, 0)
    plain = facts("Reserve flight with id 761. Your name is Mark.")["number_1"]
    assert (plain.said_first, plain.found_after) == (None, 0)


def test_instructions_that_add_a_request_become_the_replays_follow_ups() -> None:
    """'Now compare tomorrow's weather to Pittsburgh's', 'it occurs to you that you also want ...': requests STAR told
    the role-player to make after the first; small talk and the way to end are none."""
    instructions = [
        "Talk to your AI assistant to see what the weather will be like tomorrow. [instruction 1 of 4]",
        "If you've figured it out already, try to engage the assistant in some small talk. [instruction 2 of 4]",
        "Now compare tomorrow's weather in Los Angeles to the weather in Pittsburgh. [instruction 3 of 4]",
        "It occurs to you that you also want to make an appointment for your kid. [instruction 4 of 4]",
        "Once you know when the weather will change, you can end the conversation. [instruction 5 of 5]",
    ]
    labels = {"user_task": "Follow the instructions.", "persona_instructions": instructions}
    conversation = Conversation(corpus="star", id="9", turns=[], labels=labels)
    assert fidelity.follow_ups(conversation) == [
        "compare tomorrow's weather in Los Angeles to the weather in Pittsburgh.",
        "you also want to make an appointment for your kid.",
    ]
    assert replay_scenario(conversation, "star_calm", []).user.follow_ups == fidelity.follow_ups(conversation)
    assert fidelity.follow_ups(Conversation(corpus="star", id="9", turns=[], labels={"user_task": "Book."})) == []
    several = (
        "Use your imagination to generate a conversation about the topics 'Reserving a table at a restaurant', "
        "'Bank balance checking' and 'Filing a bank fraud report' (in any order). [instruction 1 of 6]"
    )
    labels = {"user_task": "Come up with your own scenario!", "persona_instructions": [several]}
    conversation = Conversation(corpus="star", id="9", turns=[], labels=labels)
    assert fidelity.follow_ups(conversation) == ["Bank balance checking", "Filing a bank fraud report"]


def test_replay_feeds_the_agent_side_and_collects_both_sides() -> None:
    user = Echo()
    conversation = _made_up()
    result = replay(user, conversation, replay_scenario(conversation, "star_calm", []), np.random.default_rng(0))
    assert result.human == ["7 pm please", "no thanks", "bye"]  # every human turn after the opening
    assert result.simulated == ["echo: Sure. What time?", "echo: Booked. Anything else?"]  # merged agent turns
    # one pair per human reply that answered agent turns; "bye" follows a user turn: no pair; the user had ended
    assert result.pairs == [
        ("Sure. What time?", "7 pm please", "echo: Sure. What time?"),
        ("Booked. Anything else?", "no thanks", "echo: Booked. Anything else?"),
    ]
    tool_calls = [m for m in user.seen[-1] if m.get("tool_calls")]
    assert tool_calls and tool_calls[0]["tool_calls"][0]["function"]["name"] == "restaurant_book"
    assert user.seen[-1][-2]["role"] == "tool"


# -- copy distance ---------------------------------------------------------------------------


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def test_edit_distance_and_near_duplicates_match_a_plain_implementation() -> None:
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    rng = np.random.default_rng(0)
    words = ["yes", "no", "my", "name", "is", "ann", "lee", "please", "a", "taxi", "at", "7", "pm"]
    pool = [" ".join(rng.choice(words, size=int(rng.integers(1, 7)))) for _ in range(150)]
    index = NearDuplicates(pool)
    for _ in range(120):
        query = " ".join(rng.choice(words, size=int(rng.integers(1, 7))))
        expected = any(_levenshtein(query, p) <= 0.2 * max(len(query), len(p)) for p in set(pool))
        assert index.within(query) == expected, query
    assert index.within("  YES ") == ("yes" in pool)  # lower case, spaces collapsed
    assert not index.within("") and np.isnan(index.rate([]))


# -- the template split ----------------------------------------------------------------------


def _task(i: str, task: str, instructions: list[str] | None = None) -> Conversation:
    labels = {"user_task": task, "persona_instructions": instructions or []}
    return Conversation(corpus="star", id=i, turns=[], labels=labels)


def test_a_template_on_both_sides_is_refused() -> None:
    evaluation = [_task("1", "Reserve flight 33. Your name is Mark.")]
    pool = [_task("2", "Reserve flight 114. Your name is Ben."), _task("3", "reserve  flight 33. your name is mark.")]
    with pytest.raises(SplitLeakError, match=r"1 evaluated dialogue\(s\).*dialogue 1 and pool dialogue 3"):
        check_split(evaluation, pool)
    check_split(evaluation, pool[:1])  # another filled scenario is not a leak
    # the split never builds one: a dialogue not held out by id that shares a held-out template goes nowhere
    split = split_by_template([*evaluation, *pool], lambda i: i == "1")
    assert [c.id for c in split.pool] == ["2"] and split.excluded == 1
    instructed = [_task("4", "Follow the bot.", ["Be rude."]), _task("5", "Follow the bot.", ["Be kind."])]
    assert [c.id for c in split_by_template(instructed, lambda i: i == "4").pool] == ["5"]  # instructions count


def test_the_real_split_shares_no_template(split: Split) -> None:
    check_split(split.evaluation, split.pool)
    counts = split.summary()
    assert counts["dialogues_evaluation"] > 1000 and counts["dialogues_pool"] > 4000
    assert counts["dialogues_evaluation"] + counts["dialogues_pool"] + counts["dialogues_excluded"] == 6652


def test_the_pool_file_holds_the_pool_only(split: Split, tmp_path: Path, corpus: Path) -> None:
    from envsim.user.transcript.corpus import read_star

    wanted = {c.id for c in split.pool[:50]}
    folder = write_pool(_source(corpus), wanted, tmp_path)
    assert {c.id for c in read_star(folder)} == wanted


def test_a_pool_from_a_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EnvsimError, match=r"needs STAR's dialogues\.jsonl"):
        write_pool(tmp_path / "dialogues.csv", {"1"}, tmp_path)
    broken = tmp_path / "dialogues.jsonl"
    broken.write_text('{"DialogueID": 1}\n{"no id": true}\n', encoding="utf-8")
    with pytest.raises(EnvsimError, match=r"dialogues.jsonl:2: not a STAR dialogue"):
        write_pool(broken, {"1"}, tmp_path / "out")


# -- planted users on real held-out dialogues ------------------------------------------------


def _source(corpus: Path) -> Path:
    return star_file(corpus) / "dialogues.jsonl.gz"


@pytest.fixture(scope="module")
def version(corpus: Path) -> tuple[str, int]:
    source = _source(corpus)
    return str(source), source.stat().st_mtime_ns


@pytest.fixture(scope="module")
def split(version: tuple[str, int]) -> Split:
    return fidelity._split(*version)


@pytest.fixture(scope="module")
def pool(version: tuple[str, int]) -> NearDuplicates:
    return fidelity._pool_index(*version)


@pytest.fixture(scope="module")
def coherence(version: tuple[str, int]) -> CoherenceModel:
    return fidelity._coherence(*version, 0)


@pytest.fixture(scope="module")
def calm(split: Split) -> list[Conversation]:
    return [c for c in split.evaluation if classify(c) == "star_calm"][:100]


class Drawer(UserSimulator):
    """A planted user: each reply drawn (seeded) from fixed lines, whatever the agent said."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.rng = np.random.default_rng(0)

    def reset(self, scenario: Scenario, rng: np.random.Generator) -> str:
        self.rng = rng
        return scenario.user.opening

    def reply(self, agent_message: str, messages: Any) -> UserTurn:
        return UserTurn(self.lines[int(self.rng.integers(len(self.lines)))])


def _replays(user: UserSimulator, conversations: list[Conversation]) -> list[Replay]:
    return [
        replay(user, c, replay_scenario(c, "star_calm", []), np.random.default_rng([0, i]))
        for i, c in enumerate(conversations)
    ]


def test_a_user_copying_pool_turns_verbatim_has_copy_rate_one(
    pool: NearDuplicates, coherence: CoherenceModel, calm: list[Conversation]
) -> None:
    copier = Drawer([pool.texts[int(i)] for i in np.random.default_rng(1).choice(len(pool), 2000)])
    figures = persona_figures("star_calm", _replays(copier, calm[:20]), pool=pool, coherence=coherence)
    assert figures.copy_rate_sim == 1.0
    assert figures.copy_rate_human < 0.7  # held-out human replies are not all copies


@pytest.fixture(scope="module")
def ignoring(calm: list[Conversation]) -> list[Replay]:
    """A planted user ignoring the agent: human replies of other held-out dialogues of the persona, in random order."""
    lines = [t for r in _replays(Drawer(["x"]), calm[40:]) for t in r.human]
    return _replays(Drawer(lines), calm[:40])


def test_a_user_ignoring_the_agent_fails_context_auc_misfit_and_dialogue_level(
    pool: NearDuplicates, coherence: CoherenceModel, ignoring: list[Replay]
) -> None:
    # human replies of other held-out dialogues of the same persona, in random order: not one answers its turn
    replays = ignoring
    figures = persona_figures("star_calm", replays, pool=pool, coherence=coherence, seed=0)
    assert figures.context_auc is not None and figures.context_auc > 0.65  # fails its target
    assert figures.context_auc > figures.turn_auc + 0.1  # what a reply alone cannot show
    assert figures.context_auc_shuffled is not None and 0.35 < figures.context_auc_shuffled < 0.65  # chance
    assert figures.misfit_sim is not None and figures.misfit_human is not None
    assert figures.misfit_sim > figures.misfit_human + 0.3
    assert figures.near_duplicates_removed > 0 and figures.context_pairs > 40
    level = dialogue_level(replays, pool, seed=0)
    assert level.accuracy is not None and level.accuracy > 0.75
    assert level.accuracy_shuffled is not None and 0.25 < level.accuracy_shuffled < 0.75
    report_targets = targets(_report(figures, level), {"transcript": 0.5})
    verdicts = {t.figure: t.passed for t in report_targets}
    assert verdicts["context_auc[star_calm]"] is False and verdicts["dialogue_accuracy"] is False
    assert verdicts["misfit_gap"] is False and verdicts["tau[transcript]"] is False


def test_the_human_reference_sits_below_a_user_ignoring_the_agent(pool: NearDuplicates, ignoring: list[Replay]) -> None:
    planted = context_aucs({"star_calm": context_rows(ignoring, pool)}, seed=0)["star_calm"][0]
    reference = human_reference({"star_calm": ignoring}, pool, seed=0)
    auc = reference.context_auc["star_calm"]
    assert planted is not None and auc is not None and reference.context_auc_all is not None
    assert auc < planted - 0.05  # another human answering the same turn fits it better than a reply to another turn
    assert reference.dialogue_accuracy is not None and reference.dialogue_pairs >= 30
    kept = len(context_rows(ignoring, pool).human)  # the same positions as the planted user's figures
    assert reference.positions == kept == reference.exact_matches + reference.act_fallbacks + reference.any_fallbacks
    assert reference.exact_matches > 0 and reference.act_fallbacks > 0
    assert human_reference({"star_calm": ignoring}, pool, seed=0) == reference  # the same seed, the same figures


def _tiny(dialogue: str, pairs: list[tuple[str, str]]) -> Replay:
    """A replay whose human replies start with their dialogue's id, so a stand-in reply tells where it came from."""
    return Replay(dialogue, pairs=[(agent, f"{dialogue} {reply}", None) for agent, reply in pairs])


def test_the_stand_in_never_draws_the_evaluated_dialogues_own_reply() -> None:
    replays = [
        _tiny("d1", [("Hello, how can I help?", "I need a taxi"), ("What is your name?", "Ann Lee"),
                     ("Your flight is booked.", "great, thanks so much")]),
        _tiny("d2", [("Hello, how can I help?", "book me a table for two"),
                     ("What time works for you?", "around seven in the evening")]),
        # d3's closing turn: no other dialogue has its act
        _tiny("d3", [("What is your name?", "Bob"), ("Anything else?", "no that is all")]),
    ]  # fmt: skip
    pool = NearDuplicates(["d3 Bob"])  # d3's first reply is a near-duplicate of a pool turn: not evaluated
    for seed in range(20):
        out = stand_in(replays, pool, np.random.default_rng(seed))
        drawn = [(r.dialogue_id, i, s) for r in out.replays for i, (_, _, s) in enumerate(r.pairs)]
        assert [(d, i) for d, i, s in drawn if s is None] == [("d3", 0)]  # every kept position, and only those
        for (dialogue, _, text), source in zip([x for x in drawn if x[2] is not None], out.sources, strict=True):
            assert text is not None and source != dialogue and not text.startswith(dialogue)
        # the same turn: d1's greeting and name question, d2's greeting; the same act: d2's time question; any
        # other dialogue: d1's inform and d3's closing (no other dialogue has those acts)
        assert (out.exact, out.act, out.other) == (3, 1, 2)
        by_position = {(d, i): s for d, i, s in drawn}
        assert by_position[("d1", 1)] == "d3 Bob"  # the same agent turn, drawn although a near-duplicate
        assert by_position[("d3", 1)] is not None and by_position[("d3", 1)].startswith(("d1", "d2"))
        again = stand_in(replays, pool, np.random.default_rng(seed))
        assert again.sources == out.sources and [r.pairs for r in again.replays] == [r.pairs for r in out.replays]
    alone = stand_in(replays[:1], None, np.random.default_rng(0))  # no other dialogue: no stand-in, nothing drawn
    assert all(s is None for _, _, s in alone.replays[0].pairs) and alone.sources == []
    small = human_reference({"star_calm": replays}, pool, seed=0)  # too few dialogues for folds: no AUC, no crash
    assert small.context_auc == {"star_calm": None} and small.dialogue_accuracy is None and small.positions == 6


def _report(figures: PersonaFidelity, level: fidelity.DialogueLevel) -> fidelity.FidelityReport:
    sim, human = figures.misfit_sim, figures.misfit_human
    gap = None if sim is None or human is None else sim - human
    return fidelity.FidelityReport(
        user="planted", model=None, corpus="-", seed=0, split="-", split_counts={}, personas={"star_calm": figures},
        context_auc_all=figures.context_auc, context_auc_all_shuffled=figures.context_auc_shuffled,
        dialogue_level=level, copy_rate=fidelity.CopyRate(distance=0.2, pool_turns=0, simulated=0.0, human=0.0),
        context_fit=fidelity.ContextFit(fitted_pairs=0, threshold=0.0, misfit_sim=sim, misfit_human=human, gap=gap,
                                        note="-"),
        wall_seconds=0.0,
    )  # fmt: skip


def test_chance_baselines_are_near_one_half() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([1, 0] * 150)
    groups = [f"d{i // 6}" for i in range(300)]
    separable = (labels + 0.2 * rng.normal(size=300))[:, None] * np.ones((1, 3))
    assert cv_auc(separable, labels, groups) > 0.99
    assert 0.4 < cv_auc(separable, np.random.default_rng(0).permutation(labels), groups) < 0.6
    human, simulated = rng.normal(size=(80, 4)) + 2.0, rng.normal(size=(80, 4))
    assert pair_accuracy(human, simulated) > 0.95
    assert 0.35 < pair_accuracy(human, simulated, shuffle=True) < 0.65


# -- the command -----------------------------------------------------------------------------

_SMALL = ["--dialogues", "6", "--personas", "star_annoyed,star_calm", "--personas", "annoyed", "--seed", "0"]


@pytest.fixture(scope="module")
def command_json(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    plots = tmp_path_factory.mktemp("plots")
    args = ["fidelity", "--json", *_SMALL, "--outcome-episodes", "1", "--plot-dir", str(plots)]
    result = CliRunner().invoke(app, args)  # in process: the split and the pool are read once
    assert result.exit_code == 0, result.output
    assert "targets (issue 19):" in result.stdout and ("PASS" in result.stdout or "FAIL" in result.stdout)
    assert "human reference (another held-out human's reply to the same agent turn): context AUC" in result.stdout
    payload: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return payload


def test_fidelity_command_json_carries_every_figure_and_target(command_json: dict[str, Any]) -> None:
    figures = command_json["personas"]
    assert set(figures) == {"star_annoyed", "star_calm", "annoyed"}
    assert figures["annoyed"]["category"] == "star_annoyed"  # a hand-written persona: its STAR category
    for name, f in figures.items():
        assert f["dialogues"] == 6 and f["human_turns"] > 0 and f["simulated_turns"] > 0
        assert f["context_auc"] is not None and 0 <= f["context_auc"] <= 1
        assert 0 <= f["copy_rate_sim"] <= 1 and 0 <= f["copy_rate_human"] <= 1
        assert 0 <= f["turn_auc"] <= 1 and 0 <= f["length_ks"] <= 1 and 0 <= f["lexical_js"] <= 1
        svg = ElementTree.parse(f["plot"]).getroot()
        assert svg.tag.endswith("svg") and f["plot"].endswith(f"{name}.svg")
    assert command_json["split_counts"]["templates_shared"] == 0
    assert command_json["dialogue_level"]["pairs"] >= 5 and command_json["dialogue_level"]["accuracy"] is not None
    assert command_json["context_fit"]["fitted_pairs"] > 10000 and "lower bound" in command_json["context_fit"]["note"]
    assert 0 <= command_json["copy_rate"]["simulated"] <= 1
    assert set(command_json["outcome_calibration"]["tau"]) == {"scripted", "transcript"}
    checks = {t["figure"]: t for t in command_json["targets"]}
    assert {"context_auc[star_annoyed]", "context_auc[annoyed]", "dialogue_accuracy", "misfit_gap", "tau[scripted]",
            "tau[transcript]", "copy_rate_sim", "copy_rate_human"} <= set(checks)  # fmt: skip
    assert checks["context_auc[star_calm]"]["passed"] == (checks["context_auc[star_calm]"]["value"] <= 0.65)
    assert checks["copy_rate_sim"]["passed"] is None and checks["copy_rate_sim"]["target"] == "reported"
    reference = command_json["human_reference"]  # where real people sit under the same measures
    assert set(reference["context_auc"]) == set(figures) and "another held-out human" in reference["note"]
    assert all(
        v is not None and 0 <= v <= 1 for v in [*reference["context_auc"].values(), reference["context_auc_all"]]
    )
    assert reference["dialogue_accuracy"] is not None and reference["dialogue_pairs"] >= 5
    kept = {n: f["context_pairs"] for n, f in figures.items()}
    assert reference["positions"] >= sum(kept.values()) > 0  # every kept position (the simulated side may end early)
    assert (
        reference["positions"] == reference["exact_matches"] + reference["act_fallbacks"] + reference["any_fallbacks"]
    )
    for figure in ("human_reference.context_auc[star_calm]", "human_reference.context_auc_all",
                   "human_reference.dialogue_accuracy"):  # fmt: skip
        assert checks[figure]["target"] == "reference" and checks[figure]["passed"] is None


def test_same_seed_same_figures(command_json: dict[str, Any], corpus: Path) -> None:
    again = evaluate(personas=["star_annoyed", "star_calm", "annoyed"], dialogues=6, seed=0, corpus=corpus)
    assert {n: {k: v for k, v in f.items() if k != "plot"} for n, f in command_json["personas"].items()} == {
        n: f.model_dump(mode="json", exclude={"plot"}) for n, f in again.personas.items()
    }
    for key in ("dialogue_level", "copy_rate", "context_fit", "split_counts", "human_reference"):
        assert command_json[key] == json.loads(again.model_dump_json())[key], key


def test_fidelity_without_corpus_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from envsim.cli import main; main()", "fidelity", "--corpus", str(tmp_path / "x")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such folder" in result.stderr


# -- the LLM user ----------------------------------------------------------------------------


def test_llm_user_path_and_a_constant_user_is_caught(corpus: Path) -> None:
    options = {"completion_options": {"mock_response": "Sure, go ahead please."}, "max_retries": 0}
    report = evaluate(
        "llm", model="openai/gpt-4o-mini", personas=["star_riddler"], dialogues=6, user_options=options, corpus=corpus
    )
    figures = report.personas["star_riddler"]
    assert report.model == "openai/gpt-4o-mini" and figures.simulated_turns > 0
    assert figures.turn_auc > 0.9 and figures.words_sim == 4.0  # the same line every turn: easy to tell apart
    assert figures.context_auc is not None and figures.context_auc > 0.9
    assert report.copy_rate.simulated == 0.0 and report.context_fit is not None
    assert "does not consult it" in report.context_fit.note


def test_llm_user_against_a_local_server_through_the_command(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "local-test")
    with start_server() as url:
        args = ["fidelity", "--json", "--user", "llm", "--user-model", "openai/envsim-user", "--api-base", url,
                "--personas", "star_riddler", "--dialogues", "5", "--outcome-episodes", "1",
                "--no-context-fit"]  # fmt: skip
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.splitlines()[-1])
    assert payload["user"] == "llm" and payload["model"] == "openai/envsim-user"
    assert payload["personas"]["star_riddler"]["simulated_turns"] > 0 and payload["context_fit"] is None
    checks = {t["figure"]: t for t in payload["targets"]}
    assert "tau[llm]" in checks and checks["misfit_gap"]["passed"] is None  # not measured: no pass, no fail
