"""The transcript user: replies retrieved from human-written transcripts, facts only when asked.

Most tests read the shared STAR corpus (``../shared/transcripts``; CI has it) and check replies
against it by reference (dialogue id, turn index), never by text kept here. A few use a tiny
made-up corpus written in STAR's format, and the rules are checked on made-up strings.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from envsim.calibrate import classify, is_heldout
from envsim.calibration_outcomes import shipped_scenarios
from envsim.cli import app
from envsim.loader import load_scenario
from envsim.registration import load_registered
from envsim.scenario import Fact, PersonaSpec, Scenario
from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
from envsim.transcripts.schema import Conversation
from envsim.user.affect import asking_text
from envsim.user.persona import Persona
from envsim.user.registry import make_user
from envsim.user.scripted import ScriptedUser
from envsim.user.transcript import user as user_module
from envsim.user.transcript.corpus import read_star
from envsim.user.transcript.index import TurnIndex, load_index
from envsim.user.transcript.text import (
    AGENT_ACTS,
    UNSURE,
    USER_ACTS,
    agent_act,
    answer_polarity,
    drop_span,
    entity_spans,
    fact_kind,
    tidy,
    user_act,
)
from envsim.user.transcript.user import REJECT_SHARE, TranscriptUser, TurnSource, keep_lengths, persona_group, say
from tests.conftest import REPO

AGENT_TURNS = (
    "Hello, thanks for reaching out. Let me pull up your account.",
    "Could you tell me your email address?",
    "Thanks. I am checking the order history now.",
    "And which order number is it about?",
    "I see. Give me a moment while I look into this.",
)


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The transcript corpus folder; fails (never skips) when it is missing."""
    folder = corpus_dir()
    assert folder is not None and folder.is_dir(), f"transcript corpus not found: set {CORPUS_ENV}"
    return folder


def _play(user: TranscriptUser, scenario: Scenario, seed: int, turns: tuple[str, ...] = AGENT_TURNS) -> list[str]:
    user.reset(scenario, np.random.default_rng(seed))
    messages: list[dict[str, Any]] = []
    replies = []
    for text in turns:
        messages.append({"role": "assistant", "content": text})
        reply = user.reply(text, messages)
        messages.append({"role": "user", "content": reply.text})
        replies.append(reply.text)
        if reply.done:
            break
    return replies


def _source_turns(corpus: Path, ids: set[str]) -> dict[str, Conversation]:
    return {c.id: c for c in read_star(corpus, lambda i: i in ids)}


# -- rules (made-up strings) -----------------------------------------------------------------


def test_agent_acts() -> None:
    assert agent_act("Hello, how can I help you today?") == "greet"
    assert agent_act("What is your date of birth?") == "ask_info"
    assert agent_act("Please provide the order number.") == "ask_info"
    assert agent_act("Would you like me to book it?") == "ask_yesno"
    assert agent_act("Unfortunately that room is not available.") == "apology"
    assert agent_act("Your table is booked for 7 pm.") == "inform"
    assert agent_act("Is there anything else I can do for you?") == "offer"
    assert agent_act("Can I help you with something else today?") == "offer"
    assert agent_act("You're welcome, goodbye!") == "close"


def test_user_acts() -> None:
    assert user_act("Thank you, bye!") == "thanks"
    assert user_act("Hello") == "greet"
    assert user_act("Yes please do that") == "affirm"
    assert user_act("No, not that one") == "deny"
    assert user_act("This is ridiculous, hurry up") == "complain"
    assert user_act("Can you also check the weather?") == "question"
    assert user_act("I need a table for two") == "inform"


def test_entity_spans_and_fact_kinds() -> None:
    text = "I'm Ann Lee, my PIN is 4321 and I arrive on May 9th at 5 pm with 3 guests, ann@x.org"
    spans = [(text[a:b], kind) for a, b, kind in entity_spans(text, frozenset({"ann", "lee"}))]
    assert spans == [
        ("Ann Lee", "name"),
        ("4321", "number"),
        ("May 9th", "date"),
        ("5 pm", "time"),
        ("3 guests", "quantity"),
        ("ann@x.org", "email"),
    ]
    values = ("x@y.org", "10:30", "2026-03-07", "#W0010", "Harbor Hotel", "no", "a few weeks")
    assert [fact_kind(v) for v in values] == [
        "email",
        "time",
        "date",
        "number",
        "name",
        "statement",
        "statement",
    ]


def test_a_name_ends_at_a_sentence_end() -> None:
    """A capitalised word after a full stop starts a sentence; it joins a name only after a title or an initial
    (a name span 'North Heights Venue. You' became a fact value said as an answer to any question with 'you')."""
    text = "The party is at North Heights Venue. You must bring Ann L. Lee. Thanks"
    names = frozenset({"north", "ann"})
    assert [text[a:b] for a, b, _ in entity_spans(text, names)] == ["North Heights Venue", "Ann L. Lee"]


def test_only_questions_and_requests_ask() -> None:
    assert asking_text("Your phone number is on file. Thanks!") == ""
    assert asking_text("Great. What's your phone number?") == "what's your phone number?"
    assert asking_text("I'll need your email to continue.") == "i'll need your email to continue."
    # a request without a question mark or a request verb still asks ("your PIN as well please")
    assert asking_text("Thanks. Right, and your PIN as well please.") == "right, and your pin as well please."
    assert asking_text("Your PIN was reset. Please hold.") == "please hold."


def test_dropped_spans_leave_no_dangling_connectors() -> None:
    text = "It was either 0314 or 1596, I think."
    first, second = [(a, b) for a, b, _ in entity_spans(text)]
    assert drop_span(text, *second) == "It was either 0314, I think."
    assert drop_span(text, *first) == "It was 1596, I think."
    text = "Someone took money at 5 pm from my account"
    (start, end, kind) = entity_spans(text)[0]
    assert kind == "time" and drop_span(text, start, end) == "Someone took money from my account"
    assert drop_span("My PIN is 4321.", 10, 14) == "My PIN is."  # only connectors go, never other words


def test_length_preserving_reweighting() -> None:
    base = np.ones(6)
    weights = np.array([1.0, 1.0, 0.01, 0.01, 0.01, 0.01])  # the fit prefers the two short turns
    bins = np.array([0, 0, 1, 1, 2, 2])
    kept = keep_lengths(weights, base, bins)
    mass = np.bincount(bins, weights=kept) / kept.sum()
    assert np.allclose(mass, [1 / 3, 1 / 3, 1 / 3])  # the lengths drawn follow the base distribution
    assert kept[0] / kept[1] == pytest.approx(1.0) and kept[2] / kept[0] < 1  # order within a bin is kept


# -- a made-up corpus in STAR's format -------------------------------------------------------

MADE_UP_USER_TURNS = (
    "hi, I need some help here",
    "it's 5521, now hurry up",
    "why is this taking so long?",
    "ok fine, thanks, bye",
)


def _made_up_dialogue(dialogue_id: int) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        {"Agent": "UserGuide", "Action": "instruct", "Text": "(made up) be annoying/grumpy"}
    ]
    wizard = ("What is your account number?", "Let me check.", "Anything else?", "Goodbye.")
    for i, (user, agent) in enumerate(zip(MADE_UP_USER_TURNS, wizard, strict=True)):
        marker = "".join(chr(ord("a") + int(d)) for d in str(dialogue_id))  # "(ref bc)" marks dialogue 12
        events.append({"Agent": "User", "Action": "utter", "Text": f"{user} (ref {marker})", "UnixTime": 10 * i})
        events.append({"Agent": "Wizard", "Action": "utter", "Text": agent, "UnixTime": 10 * i + 5})
    return {
        "DialogueID": dialogue_id,
        "Scenario": {"Domains": ["bank"], "UserTask": "Check your balance."},
        "Events": events,
        "WizardQuestionnaire": [{"Question": "Did the user become aggressive or annoyed?", "Answer": True}],
    }


def _marker(source: TurnSource) -> str:
    assert source.ref is not None
    return "".join(chr(ord("a") + int(d)) for d in source.ref.dialogue_id)


def _position(source: TurnSource) -> int:
    assert source.ref is not None
    return (source.ref.turn_index - 1) // 2  # after the instruction: user, wizard, user, ...


@pytest.fixture
def made_up_corpus(tmp_path: Path) -> Path:
    """A transcripts folder with 12 made-up grumpy STAR dialogues (all in the fitting split)."""
    ids = [i for i in range(1, 200) if not is_heldout("star", str(i))][:12]
    folder = tmp_path / "transcripts" / "star"
    folder.mkdir(parents=True)
    with gzip.open(folder / "dialogues.jsonl.gz", "wt", encoding="utf-8") as handle:
        for i in ids:
            handle.write(json.dumps(_made_up_dialogue(i)) + "\n")
    return folder.parent


def test_made_up_corpus_is_indexed_and_retrieved(made_up_corpus: Path) -> None:
    index = load_index(made_up_corpus)
    assert index is not None and index.groups == ("star_annoyed",) and len(index) == 12 * 4
    user = TranscriptUser(made_up_corpus)
    banking = load_registered("BankingManagerAfterFailedFixes")  # a banking scenario: STAR's bank domain
    scenario = banking.model_copy(
        update={"user": banking.user.model_copy(update={"persona": PersonaSpec(ref="annoyed")})}
    )
    phone = next(f.value for f in scenario.user.facts if f.key == "phone")
    replies = _play(user, scenario, 0, ("What is your phone number?", "Let me look into it."))
    assert user.group == "star_annoyed" and user.uses_corpus
    assert all(s.ref is not None and s.ref.corpus == "star" for s in user.trace)
    assert replies[0] == f"it's {phone}, now hurry up (ref {_marker(user.trace[0])})"  # the number span filled
    assert replies[1] == f"{MADE_UP_USER_TURNS[_position(user.trace[1])]} (ref {_marker(user.trace[1])})"


# -- the shared corpus -----------------------------------------------------------------------


def test_index_is_compact_and_excludes_held_out_dialogues(corpus: Path) -> None:
    index = load_index(corpus)
    assert index is not None and len(index) > 5000
    assert not any(is_heldout("star", i) for i in set(index.dialogue_ids))
    assert set(index.groups) >= {"star_calm", "star_annoyed", "star_panicked", "star_confused"}
    assert load_index(corpus) is index  # built once per process


def test_replies_come_from_the_corpus(corpus: Path) -> None:
    user = TranscriptUser(corpus)
    scenario = load_registered("RetailAlreadyRefundedAnnoyed")
    replies = _play(user, scenario, 3)
    refs = [s.ref for s in user.trace if s.ref is not None]
    assert len(refs) == len(replies) and user.group == persona_group(user._persona)  # type: ignore[arg-type]
    sources = _source_turns(corpus, {r.dialogue_id for r in refs})
    facts = {f.value for f in scenario.user.facts}
    lines = {f.key: say(f) for f in scenario.user.facts}
    for reply, ref, source in zip(replies, refs, user.trace, strict=True):
        conversation = sources[ref.dialogue_id]
        human = conversation.turns[ref.turn_index]
        assert human.role == "user" and classify(conversation) == user.group
        assert not is_heldout("star", conversation.id)
        said = reply
        for key in source.appended:  # a fact with no span left is said after the turn, with its own line
            said = said.replace(lines[key], " ")
        for value in facts:
            said = said.replace(value, " ")
        source_words = set(re.findall(r"[a-z']+", human.text.lower()))
        assert set(re.findall(r"[a-z']+", said.lower())) <= source_words  # the human's words, spans aside


def test_facts_only_when_asked(corpus: Path) -> None:
    scenario = load_registered("BankingHotelHoldConfusedSenior")  # an answers_only persona
    facts = {f.key: f.value for f in scenario.user.facts}
    user = TranscriptUser(corpus)
    opening = user.reset(scenario, np.random.default_rng(1))
    assert opening == scenario.user.opening
    said: list[str] = []

    def reply(text: str) -> str:
        said.append(user.reply(text, []).text)
        return said[-1]

    for statement in ("Thank you for calling.", "I will look at your phone records and birth date later."):
        assert not any(v in reply(statement) for v in facts.values())
    answer = reply("What phone number are you calling from?")
    assert facts["phone"] in answer
    assert all(v not in answer for k, v in facts.items() if k != "phone")
    answer = reply("Thanks. And your date of birth, please?")
    assert "1942" in answer and facts["last4"] not in answer and facts["merchant"] not in " ".join(said)
    assert facts["last4"] in reply("What are the last four digits of the card?")


def test_quantities_kept_unless_the_scenario_has_its_own(corpus: Path) -> None:
    index = load_index(corpus)
    assert index is not None
    money = re.compile(r"\$\d+")
    rows = [
        i
        for i, text in enumerate(index.texts)
        if money.search(text) and [kind for _, _, kind in entity_spans(text, index.names)] == ["quantity"]
    ][:20]
    assert len(rows) >= 5
    user = TranscriptUser(corpus)
    user.reset(load_registered("BankingManagerAfterFailedFixes"), np.random.default_rng(0))  # no amount anywhere
    for row in rows:  # another customer's amount is a human detail that contradicts nothing: it stays
        adapted = user._adapt(row, ())
        assert adapted is not None
        text, _, _, dropped, _ = adapted
        assert dropped == 0 and money.search(text)
    user.reset(load_registered("BankingHotelHoldConfusedSenior"), np.random.default_rng(0))  # its goal says $300
    kept = 0
    for row in rows:  # it could contradict the scenario's own amount: it goes, or the turn is not used
        adapted = user._adapt(row, ())
        if adapted is not None:  # None: the amount cannot be dropped cleanly ('I paid $300 for it')
            text, _, _, dropped, _ = adapted
            assert dropped == 1 and not money.search(text)
            kept += 1
    assert kept >= 2


def test_same_seed_same_replies(corpus: Path) -> None:
    scenario = load_registered("RetailCancelPendingOrder")
    first, second = TranscriptUser(corpus), TranscriptUser(corpus)
    assert _play(first, scenario, 7) == _play(second, scenario, 7)
    assert first.trace == second.trace
    assert _play(first, scenario, 7) == _play(second, scenario, 7)  # reset starts afresh
    runs = {tuple(_play(first, scenario, seed)) for seed in range(4)}
    assert len(runs) > 1


def test_satisfied_closes_and_patience_gives_up(corpus: Path) -> None:
    scenario = load_registered("RetailAlreadyRefundedAnnoyed")
    user = TranscriptUser(corpus)
    user.reset(scenario, np.random.default_rng(0))
    closing = user.reply("Refunds take 5-7 business days. Anything else?", [])
    assert closing.done and user.trace[-1].intent == "close"
    assert user.reply("Hello?", []).text == closing.text  # over: the same last line
    user.reset(scenario, np.random.default_rng(0))
    turns = [user.reply("Please hold.", []) for _ in range(10)]
    ended = [t.done for t in turns]
    assert any(ended) and ended.index(True) <= 3  # the annoyed persona's patience is 2
    assert user.trace[ended.index(True)].intent == "give_up"


UNKNOWN_ASKS = (
    "Could you provide your date of birth, please?",
    "What was your mother's maiden name?",
    "And what was the name of the pet you had as a child?",
    "Can you tell me your account number, please?",
    "May I have your social security number?",
    "What is your zip code?",
)


def test_asked_for_details_it_does_not_have_it_says_so_and_carries_on(corpus: Path) -> None:
    mug = load_registered("RetailRefundDamagedMug")  # facts: phone and order number only
    scenario = mug.model_copy(
        update={"user": mug.user.model_copy(update={"persona": PersonaSpec(ref="star_confused")})}
    )  # patience 3: fewer than the questions asked
    user, unsure = TranscriptUser(corpus), 0
    for seed in range(4):
        replies = _play(user, scenario, seed, UNKNOWN_ASKS)
        assert len(replies) == len(UNKNOWN_ASKS) and [s.intent for s in user.trace] == ["unknown"] * len(replies)
        assert user.affect_state is not None and user.affect_state.unhelpful_streak == 0
        unsure += sum(bool(UNSURE.search(r.lower())) for r in replies)
    assert unsure >= len(UNKNOWN_ASKS) * 4 // 2  # mostly 'I don't know', 'I forgot' (humans also ramble)
    # asked again for one already answered: that frustrates, as a repeated question does
    user.reset(scenario, np.random.default_rng(0))
    messages: list[dict[str, Any]] = []
    for text in (UNKNOWN_ASKS[0], "I need your DOB."):
        messages.append({"role": "assistant", "content": text})
        messages.append({"role": "user", "content": user.reply(text, messages).text})
    assert user.affect_state is not None and user.affect_state.unhelpful_streak == 1


def test_registry_makes_a_transcript_user() -> None:
    assert isinstance(make_user("transcript"), TranscriptUser)


def test_fallback_without_corpus_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_module, "_warned", False)  # the one warning per process, given again
    scenario = load_registered("RetailRefundDamagedMug")
    missing = tmp_path / "no-such-folder"
    with caplog.at_level(logging.WARNING, logger="envsim.user.transcript"):
        users = [TranscriptUser(missing), TranscriptUser(missing)]
        replies = [_play(u, scenario, 5) for u in users]
    lines = [r.getMessage() for r in caplog.records if r.name == "envsim.user.transcript"]
    assert len(lines) == 1 and "\n" not in lines[0] and "template lines" in lines[0]
    assert not users[0].uses_corpus and users[0].trace == []
    scripted = ScriptedUser(typos=False)
    scripted.reset(scenario, np.random.default_rng(5))
    expected = [scripted.reply(t, []).text for t in AGENT_TURNS]
    assert replies[0] == replies[1] == expected[: len(replies[0])]


def test_fallback_line_on_the_command_line(tmp_path: Path) -> None:
    env = {"PATH": "", CORPUS_ENV: str(tmp_path / "none"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", "from envsim.cli import main; main()", "run", "RetailRefundDamagedMug",
         "RetailCancelPendingOrder", "--user", "transcript", "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"transcript user: no star transcripts at {tmp_path / 'none'}; replying with the persona's template lines "
        "(set ENVSIM_TRANSCRIPTS or pass corpus=)"
    ]
    assert json.loads(result.stdout.splitlines()[-1])["mean_reward"] == 1.0


def test_reference_agent_still_succeeds_on_every_shipped_scenario(corpus: Path) -> None:
    result = CliRunner().invoke(app, ["run", "all", "--user", "transcript", "--json"], env={CORPUS_ENV: str(corpus)})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["mean_reward"] == 1.0 and summary["success_rate"] == 1.0


# -- replies that answer what was asked (issue 19) ---------------------------------------------

OFFER = "Is there anything else I can help you with?"
_REQUEST_FORM = re.compile(
    r"\b(?:can|could|would|will) you\b|\bplease\b|\bi (?:need|want|would like|'d like)\b|\bis it possible\b", re.I
)


def _ask(fact_words: str) -> str:
    return f"Could you give me your {fact_words}?"


def test_a_planted_misfit_reply_is_rejected(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = load_registered("RetailCancelPendingOrder")
    user = TranscriptUser(corpus)
    user.reset(scenario, np.random.default_rng(0))
    index, model = user._index, user._index.coherence() if user._index else None
    assert index is not None and model is not None
    adapted = {row: user._adapt(row, ()) for row in range(0, len(index), 7)}
    texts = {row: a[0] for row, a in adapted.items() if a is not None and a[0]}
    reject = model.quantile(REJECT_SHARE)  # a clear misfit: below the user's rejection quantile
    misfit = next(row for row, text in texts.items() if model.score(OFFER, text) < reject)
    offer = AGENT_ACTS.index("offer")
    fitting = next(row for row, t in texts.items() if index.context[row] == offer and not model.misfit(OFFER, t))
    drawn = user._candidates

    def planted(row: int) -> Any:
        def candidates(*args: Any) -> Any:
            yield row
            yield from drawn(*args)

        return candidates

    user.attach_goal(lambda: False)  # the goal is not met: the user does not close on 'anything else'
    monkeypatch.setattr(user, "_candidates", planted(misfit))
    before = user.stats["rejected_misfit"]
    user.reset(scenario, np.random.default_rng(0))
    user.reply(OFFER, [])
    assert user.trace[-1].intent == "insist" and user.trace[-1].rejected >= 1
    assert user.trace[-1].ref != index.ref(misfit) and user.stats["rejected_misfit"] > before
    unclean = next(row for row, a in adapted.items() if a is None)  # its slots cannot be adapted cleanly
    monkeypatch.setattr(user, "_candidates", planted(unclean))
    before = user.stats["rejected_unclean"]
    user.reset(scenario, np.random.default_rng(0))
    user.reply(OFFER, [])
    assert user.trace[-1].ref != index.ref(unclean) and user.stats["rejected_unclean"] > before
    monkeypatch.setattr(user, "_candidates", planted(fitting))  # the control: a reply that fits is taken
    user.reset(scenario, np.random.default_rng(0))
    user.reply(OFFER, [])
    assert user.trace[-1].ref == index.ref(fitting) and user.trace[-1].rejected == 0


@pytest.mark.parametrize(
    ("scenario_id", "key", "words"),
    [
        ("RetailCancelPendingOrder", "email", "email address"),
        ("RetailCancelPendingOrder", "order_id", "order number"),
        ("RetailRefundDamagedMug", "phone", "phone number"),
        ("BankingLostCardReplacement", "phone", "phone number"),
        ("BankingLostCardReplacement", "date_of_birth", "date of birth"),
    ],
)
def test_a_request_for_a_detail_gets_its_value(corpus: Path, scenario_id: str, key: str, words: str) -> None:
    scenario = load_registered(scenario_id)
    fact = next(f for f in scenario.user.facts if f.key == key)
    said = (fact.value, say(fact).rstrip("."))  # in a span of a human turn, or the scenario's line
    user = TranscriptUser(corpus)
    for seed in range(6):
        replies = _play(user, scenario, seed, ("Hello, thanks for contacting us.", _ask(words)))
        assert any(s in replies[-1] for s in said), replies[-1]
        assert user.trace[-1].intent in ("answer", "reanswer")  # a calm user volunteers one in its opening
        others = [f.value for f in scenario.user.facts if f.key != key]
        assert not any(v in replies[-1] for v in others)  # nothing it was not asked for


def test_anything_else_gets_a_closing_or_a_new_request(corpus: Path) -> None:
    user = TranscriptUser(corpus)
    index = load_index(corpus)
    model = index.coherence() if index is not None else None
    assert model is not None
    seen = 0
    for scenario_id in ("RetailCancelPendingOrder", "BankingLostCardReplacement", "MedicalSupplyOxygenRefill"):
        scenario = load_registered(scenario_id)
        asks = tuple(_ask(f.asked_by[0]) for f in scenario.user.facts)
        for seed in range(8):
            replies = _play(user, scenario, seed, (*asks, OFFER))
            reply = replies[-1]
            act = user_act(reply)
            assert act != "greet" and (act != "question" or _REQUEST_FORM.search(reply)), reply
            assert user.trace[-1].intent in ("insist", "close", "nudge", "give_up")
            if user.trace[-1].ref is not None:  # no clear misfit
                assert model.score(OFFER, reply) >= model.quantile(REJECT_SHARE), reply
            seen += 1
    assert seen == 24


PERSONAS = ("calm", "annoyed", "confused", "panicked_caller", "star_typo_prone", "star_riddler", "star_hurried")
_SPAN_GLUE = re.compile(r"(?<![\d\s])%|[A-Za-z]%|%[A-Za-z]")
_ARTICLE_END = re.compile(r"\b(?:the|a|an|my|your|our|their)\s*(?:[.,!?;:]|$)", re.I)
_NAME_AFTER = re.compile(r"\s+[A-Z][a-z]+")
_DOUBLED = re.compile(r"\b([A-Za-z]{2,})\s+\1\b", re.IGNORECASE)


def _garbles(reply: str, source: str, values: list[str]) -> list[str]:
    """Garbled tokens in ``reply`` that its source human turn does not have (an independent check)."""
    found = [m.group() for m in _SPAN_GLUE.finditer(reply) if not _SPAN_GLUE.search(source)]
    found += [m.group() for m in _ARTICLE_END.finditer(reply) if not _ARTICLE_END.search(source)]
    found += [m.group() for m in _DOUBLED.finditer(reply) if not _DOUBLED.search(source)]  # 'the Hyatt Hotel hotel'
    for value in values:
        for m in re.finditer(re.escape(value), reply):
            before, after = reply[m.start() - 1 : m.start()] or " ", reply[m.end() : m.end() + 1] or " "
            if before.isalnum() or after.isalnum() or after in "%-/@" or before in "%-/@":
                found.append(reply[max(0, m.start() - 3) : m.end() + 3])  # glued to a word
            if fact_kind(value) == "name" and _NAME_AFTER.match(reply[m.end() :]):
                found.append(reply[m.start() : m.end() + 12])  # half of another name left after it
    return found


def test_no_garbled_slot_fill_in_1000_replies(corpus: Path) -> None:
    user = TranscriptUser(corpus)
    replies = 0
    garbled: list[str] = []
    refs: list[tuple[str, Any, list[str]]] = []
    generic = ("Let me check that for you.", "Sorry, that is not possible.", OFFER)
    shipped = [load_scenario(f) for f in shipped_scenarios()]
    for seed in range(12):
        for n, base in enumerate(shipped):
            if not base.user.facts:
                continue
            persona = PERSONAS[(seed + n) % len(PERSONAS)]
            scenario = base.model_copy(
                update={"user": base.user.model_copy(update={"persona": PersonaSpec(ref=persona)})}
            )
            user.attach_goal(lambda: False)
            asks = tuple(_ask(f.asked_by[0]) for f in scenario.user.facts)
            texts = _play(user, scenario, seed, (generic[seed % 3], *asks, *generic))
            values = [f.value for f in scenario.user.facts]
            for text, source in zip(texts, user.trace, strict=False):
                replies += 1
                if source.ref is not None:
                    refs.append((text, source.ref, values))
        if replies >= 1000:
            break
    assert replies >= 1000
    sources = _source_turns(corpus, {ref.dialogue_id for _, ref, _ in refs})
    for text, ref, values in refs:
        garbled += _garbles(text, sources[ref.dialogue_id].turns[ref.turn_index].text, values)
    assert garbled == [], sorted(set(garbled))[:60]


def _with_persona(scenario_id: str, **traits: Any) -> Scenario:
    base = load_registered(scenario_id)
    persona = Persona.model_validate({"name": "made_up", "initial_affect": "calm", **traits})
    return base.model_copy(update={"user": base.user.model_copy(update={"persona": PersonaSpec(inline=persona)})})


_TALK = ("Let me check that for you.", "Could you give me your email address?", "One moment please.", OFFER)


def _retrieved(user: TranscriptUser, scenario: Scenario, seeds: range) -> list[tuple[str, Any]]:
    out = []
    for seed in seeds:
        user.attach_goal(lambda: False)
        texts = _play(user, scenario, seed, _TALK)
        out += [(t, s.ref) for t, s in zip(texts, user.trace, strict=False) if s.ref is not None and not s.appended]
    return out


def test_persona_traits_are_applied_to_retrieved_text(corpus: Path) -> None:
    user = TranscriptUser(corpus)
    words = re.compile(r"[a-z]+")

    def new_words(scenario: Scenario) -> float:
        replies = _retrieved(user, scenario, range(6))
        sources = _source_turns(corpus, {ref.dialogue_id for _, ref in replies})
        facts = " ".join(f.value for f in scenario.user.facts).lower()
        said = [w for text, _ in replies for w in words.findall(text.lower()) if w not in facts]
        known = {w for _, r in replies for w in words.findall(sources[r.dialogue_id].turns[r.turn_index].text.lower())}
        return sum(w not in known for w in said) / max(1, len(said))

    # typos at the persona's rate over its category's (star_calm's): none at or below it, many above
    assert new_words(_with_persona("RetailCancelPendingOrder", typo_rate=0.0)) == 0.0
    assert new_words(_with_persona("RetailCancelPendingOrder", typo_rate=0.6)) > 0.2
    typist = _with_persona("RetailCancelPendingOrder", typo_rate=0.6)
    assert _play(TranscriptUser(corpus), typist, 3) == _play(TranscriptUser(corpus), typist, 3)  # seeded
    # register: formal sentences start with a capital and end with a stop
    formal = _retrieved(user, _with_persona("RetailCancelPendingOrder", register="formal"), range(6))
    assert formal and all(t[0].isupper() and t[-1] in ".!?" for t, _ in formal if t[0].isalpha())
    # verbosity: a wordy persona draws longer human turns than a terse one
    lengths = {
        mean: np.mean([len(t.split()) for t, _ in _retrieved(user, _with_persona("RetailCancelPendingOrder",
                       verbosity={"mean_words": mean, "std_words": mean / 2}), range(10))])
        for mean in (4.0, 30.0)
    }  # fmt: skip
    assert lengths[30.0] > 1.5 * lengths[4.0]


def test_dates_and_times_kept_unless_the_scenario_has_its_own(corpus: Path) -> None:
    index = load_index(corpus)
    assert index is not None
    rows = [i for i in range(len(index)) if [kind for _, _, kind in index.spans(i)] == ["date"]][:20]
    assert len(rows) >= 5
    user = TranscriptUser(corpus)
    user.reset(load_registered("RetailCancelPendingOrder"), np.random.default_rng(0))  # no date or time anywhere
    user.reply("When would you like it?", [])
    for row in rows:  # asked when, another customer's day contradicts nothing: it stays
        adapted = user._adapt(row, ())
        assert adapted is not None and adapted[0] == tidy(index.texts[row]) and adapted[3] == 0
    user.reply("Let me check that.", [])
    for row in rows:  # not asked when: it goes, or the turn is not used
        adapted = user._adapt(row, ())
        assert adapted is None or adapted[3] == 1
    user.reset(load_registered("BankingLostCardReplacement"), np.random.default_rng(0))  # a date of birth to give
    for row in rows:  # it could be taken for the user's own date: it goes, or the turn is not used
        adapted = user._adapt(row, ())
        assert adapted is None or adapted[3] == 1


def _episode_mean_lengths(user: TranscriptUser, scenario: Scenario, seeds: range) -> np.ndarray:
    return np.array([np.mean([np.log(max(1, len(t.split()))) for t in _play(user, scenario, s)]) for s in seeds])


def test_each_conversation_keeps_a_length_of_its_own(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A person writes long or short turns throughout one conversation: episodes differ in their mean length
    by more than drawing each turn independently from the category's lengths makes them differ."""
    scenario = load_registered("RetailCancelPendingOrder")
    user = TranscriptUser(corpus)
    own = _episode_mean_lengths(user, scenario, range(60))
    monkeypatch.setattr(user_module, "talkativeness", lambda rng: 0.0)  # every turn drawn from the same lengths
    independent = _episode_mean_lengths(user, scenario, range(60))
    assert own.std() > 1.5 * independent.std()
    assert abs(own.mean() - independent.mean()) < 0.25  # a spread around the category's lengths, not a shift


# -- what a person says unasked, and what it never says (issue 19, fit to the agent turn) ----------


def test_a_turn_holding_a_detail_not_yet_given_is_not_used(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A human turn that happens to hold a value of the scenario not yet given is passed over, not cut: cutting
    it out garbled the turn ('I would like to RSVP to a party' with an unrevealed 'RSVP' became 'to to')."""
    base = load_registered("RetailCancelPendingOrder")
    user = TranscriptUser(corpus)
    user.reset(base, np.random.default_rng(0))
    index, model = user._index, user._index.coherence() if user._index else None
    assert index is not None and model is not None
    offer = AGENT_ACTS.index("offer")
    word = re.compile(r"\b([a-z]{5,})\b(?= [a-z])")  # a word in mid-sentence
    row = next(
        r
        for r in range(len(index))
        if index.context[r] == offer and word.search(index.texts[r]) and (a := user._adapt(r, ())) is not None
        and a[3] == 0 and word.search(a[0]) and not model.misfit(OFFER, a[0])
    )  # fmt: skip
    value = word.search(index.texts[row]).group(1)  # type: ignore[union-attr]
    secret = Fact(key="code_word", value=value, asked_by=["code word"])
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [*base.user.facts, secret]})})
    drawn = user._candidates

    def planted(*args: Any) -> Any:
        yield row
        yield from drawn(*args)

    monkeypatch.setattr(user, "_candidates", planted)
    user.attach_goal(lambda: False)
    before = user.stats["rejected_unclean"]
    user.reset(scenario, np.random.default_rng(0))
    reply = user.reply(OFFER, []).text
    assert user.trace[-1].ref != index.ref(row) and user.stats["rejected_unclean"] > before
    assert not re.search(rf"\b{value}\b", reply, re.IGNORECASE), reply


def _with_account(scenario: Scenario) -> Scenario:
    """``scenario`` with a name and an account number to give (STAR's role-players say theirs: 'my name is ... and my
    account number is ...')."""
    name = Fact(key="full_name", value="Dana Whitfield", asked_by=["your name"])
    account = Fact(key="account_number", value="85731890", asked_by=["account number", "account"])
    return scenario.model_copy(
        update={"user": scenario.user.model_copy(update={"facts": [*scenario.user.facts, name, account]})}
    )


def test_a_persona_that_volunteers_says_a_detail_where_the_turn_names_it(corpus: Path) -> None:
    """A persona with ``disclosure: volunteers`` says an unasked fact in the span of a turn that names it ('my
    account number is ...'), as STAR's role-players of those categories state their details with their request;
    one that answers only drops the span or passes the turn over."""
    scenario = _with_account(load_registered("RetailRefundDamagedMug"))  # calm: volunteers
    account = scenario.user.facts[-1]
    user = TranscriptUser(corpus)
    user.reset(scenario, np.random.default_rng(0))
    index = user._index
    assert index is not None
    named = re.compile(r"\baccount(?: number)? is\s*$", re.IGNORECASE)
    rows = [
        r
        for r in range(len(index))
        if any(k == "number" and named.search(index.texts[r][:s]) for s, _, k in index.spans(r))
    ][:20]
    assert len(rows) >= 5
    said = 0
    for row in rows:
        offered = user._adapt(row, (), volunteer=True)
        kept = user._adapt(row, ())
        assert kept is None or account.value not in kept[0]
        if offered is not None:
            assert "account_number" in offered[4] and account.value in offered[0]
            said += 1
    assert said >= 3
    greeting = ("Hello, how can I help you today?",)
    volunteered: dict[str, int] = {}
    for disclosure in ("volunteers", "answers_only"):
        persona = _with_account(_with_persona("RetailRefundDamagedMug", disclosure=disclosure))
        volunteered[disclosure] = 0
        for seed in range(40):
            reply = _play(user, persona, seed, greeting)[0]
            assert user.trace[-1].intent == "greet"  # a greeting asks what the user needs: not a nudge
            keys = user.trace[-1].volunteered
            volunteered[disclosure] += len(keys)
            for fact in persona.user.facts[1:]:  # said only when volunteered (the first: in a volunteering opening)
                assert (fact.value in reply) == (fact.key in keys), reply
                assert fact.key not in keys or fact.key in user._revealed
    assert volunteered["volunteers"] >= 1 and volunteered["answers_only"] == 0


def test_a_yes_no_question_naming_a_detail_does_not_ask_for_it(corpus: Path) -> None:
    """'Do you require parking at the venue?' asks for a yes or a no: the user does not say the venue again
    ('Yes please. West Bay Venue'), as people do not; a question about the detail itself still gets it."""
    venue = Fact(key="venue", value="West Bay Venue", asked_by=["venue"])
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [venue]})})
    user = TranscriptUser(corpus)
    for seed in range(5):
        user.attach_goal(lambda: False)
        proposal, about_it = _play(
            user, scenario, seed, ("Do you require parking at the venue?", "Do you know the venue?")
        )
        assert venue.value not in proposal and user.trace[0].intent != "answer", proposal
        assert venue.value in about_it and user.trace[1].intent == "answer", about_it


def test_a_rejected_candidate_is_replaced_by_one_of_the_same_length(corpus: Path) -> None:
    """Retries stay in the first draw's length and question stratum: rejections (more likely for a long turn, with
    more spans to adapt) do not make the replies taken shorter than the turns people write."""
    user = TranscriptUser(corpus)
    index = load_index(corpus)
    assert index is not None
    same = pairs = 0
    for seed in range(20):
        user.reset(load_registered("RetailCancelPendingOrder"), np.random.default_rng(seed))
        user.reply("Let me check that for you.", [])
        state = user.affect_state
        assert state is not None
        drawn = list(itertools.islice(user._candidates("react", "inform", 0, state, ()), 3))
        strata = [int(index.stratum[row]) for row in drawn]
        same += sum(s == strata[0] for s in strata[1:])
        pairs += len(strata) - 1
    assert pairs >= 30 and same >= 0.9 * pairs  # drawn regardless of length: about one in five


def test_stating_the_need_prefers_turns_that_read_like_the_goal(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked 'How can I help?', people state their own request: the greeting's answer shares the goal's words
    more often than a request drawn without the goal (GOAL_GAIN 0)."""
    scenario = load_registered("BankingLostCardReplacement")
    user = TranscriptUser(corpus)
    index = load_index(corpus)
    assert index is not None
    goal = index.said.similarity(scenario.user.goal)

    def fit() -> float:
        scores = []
        for seed in range(40):
            _play(user, scenario, seed, ("Hello, how can I help you today?",))
            ref = user.trace[-1].ref
            assert user.trace[-1].intent == "greet"
            if ref is not None:
                row = next(i for i in range(len(index)) if index.ref(i) == ref)
                scores.append(goal[row])
        return float(np.mean(scores))

    with_goal = fit()
    monkeypatch.setattr(user_module, "GOAL_GAIN", 0.0)
    assert with_goal > fit() + 0.02


def _weighing(corpus: Path, message: str) -> tuple[TranscriptUser, Any, Any, np.ndarray]:
    """A transcript user that has just heard ``message``, with its index, affect state and widest retrieval tier."""
    user = TranscriptUser(corpus)
    user.reset(load_registered("RetailCancelPendingOrder"), np.random.default_rng(0))
    user.reply(message, [])
    index, state = user._index, user.affect_state
    assert index is not None and state is not None
    return user, index, state, user._tiers[-1]


def test_a_reply_in_kind_asks_questions_as_often_as_people_replying_to_that_act(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lengths and question share kept for a reply in kind (``REPLY_INTENTS``) are those of every human reply
    to turns of the agent's act: an answer's preference for statements chooses among them, it does not make the
    user ask fewer questions than people do ('Could we do Thursday at 12pm?'). A closing keeps its own."""
    user, index, state, rows = _weighing(corpus, "Which day would suit you?")
    asks = index.stratum[rows] % 2 == 1

    def question_mass(intent: str) -> float:
        w = user._weights(rows, intent, "ask_info", 0, state, (), True)  # type: ignore[arg-type]
        return float(w[asks].sum() / w.sum())

    react = question_mass("react")
    assert react > 0.05
    assert question_mass("answer") == pytest.approx(react, abs=0.01)  # answers weigh questions 0.3, react 1
    assert question_mass("close") < 0.5 * react
    monkeypatch.setattr(user_module, "REPLY_INTENTS", frozenset())  # the intent's act weights in the lengths kept
    assert question_mass("answer") < 0.8 * question_mass("react")


def test_an_answer_never_says_it_does_not_know_and_then_the_value(corpus: Path) -> None:
    """A retrieved 'I forgot it! Is there any other way to verify it's me?' cannot carry the PIN said after it: a
    turn that says the user does not know (UNSURE) is passed over when the fact would be appended to it, and so is
    a question, greeting or thanks; so is one holding a number it cannot replace ('my PIN is either3941 or <PIN>')."""
    base = load_registered("BankingLostCardReplacement")
    pin = Fact(key="pin", value="7402", asked_by=["pin"])
    user_spec = base.user.model_copy(update={"facts": [pin], "persona": PersonaSpec(ref="star_worried")})
    scenario = base.model_copy(update={"user": user_spec, "domain": "bank", "tags": ["bank"]})
    user = TranscriptUser(corpus)
    answered = 0
    for seed in range(40):
        user.attach_goal(lambda: False)
        reply = _play(user, scenario, seed, ("Right, and your PIN as well please.",))[0]
        source = user.trace[-1]
        assert source.intent in ("answer", "reanswer") and pin.value in reply, reply
        assert not re.search(r"[a-z]\d{3,}", reply.lower()), reply  # no other number left ('either3941 or 7402')
        answered += 1
        if source.appended:
            said = reply[: reply.rindex(pin.value)]
            assert not UNSURE.search(said.lower()), reply
            assert user_act(said) not in ("question", "greet", "thanks"), reply  # not 'Can you lend me money? 7402'
    assert answered == 40


def test_a_span_led_to_by_another_facts_words_is_not_its_place(corpus: Path) -> None:
    """'a ride from X to Y': asked where to, the user's destination goes after 'to', never after 'from' (the word
    before a span that ends another fact's asked_by phrase marks that fact's place)."""
    origin = Fact(key="origin", value="Airport", asked_by=["leaving from", "depart"])
    destination = Fact(key="destination", value="Forbes and Murray", asked_by=["where to", "destination"])
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [origin, destination]})})
    user = TranscriptUser(corpus)
    user.reset(scenario, np.random.default_rng(0))
    assert user._led_to_another(origin, "to") and not user._led_to_another(origin, "from")
    assert user._led_to_another(destination, "from") and not user._led_to_another(destination, "at")
    index = user._index
    assert index is not None
    shape = re.compile(r"\bfrom (?:the )?$")
    rows = [
        r
        for r in range(len(index))
        if sum(k == "name" for _, _, k in index.spans(r)) == 2
        and shape.search(index.texts[r][: index.spans(r)[0][0]])
        and re.search(r"\bto (?:the )?$", index.texts[r][: index.spans(r)[1][0]])
    ]
    assert len(rows) >= 3
    for row in rows:
        adapted = user._adapt(row, [(destination, "name")])
        if adapted is not None and destination.key in adapted[1]:
            assert not re.search(r"\bfrom (?:the )?Forbes and Murray", adapted[0]), adapted[0]


def test_a_closing_may_be_any_last_human_turn_that_asks_for_nothing_more(corpus: Path) -> None:
    """People close with thanks, but also with a statement that ended their dialogue ('Great, I have a good feeling
    about my interview'): such a turn may close, wherever it was last; one that asks for more ('Yes, I'd like some
    room service') may not, nor a statement that did not end its dialogue."""
    user, index, state, rows = _weighing(corpus, "Is there anything else I can help you with?")
    w = user._weights(rows, "close", "offer", 0, state, (), False)
    inform = np.array([USER_ACTS[a] == "inform" for a in index.act[rows]])
    last = index.last[rows]
    asks = np.array([bool(user_module._REQUEST_FORM.search(index.texts[r])) for r in rows])
    assert (w[inform & last & ~asks] > 0).sum() >= 20
    assert not (w[inform & last & asks] > 0).any() and not (w[inform & ~last] > 0).any()


def test_a_detail_given_before_takes_a_span_that_is_its_own_kind_of_thing(corpus: Path) -> None:
    """Once the user has said its venue, a retrieved 'See you at the Southside Venue' says the user's own venue
    (the span's words are the fact's) rather than being dropped or kept as another customer's."""
    venue = Fact(key="venue", value="West Bay Venue", asked_by=["venue"])
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [venue]})})
    user = TranscriptUser(corpus)
    user.reset(scenario, np.random.default_rng(0))
    user._revealed.add("venue")
    index = user._index
    assert index is not None
    rows = [
        r
        for r in range(len(index))
        if len(index.spans(r)) == 1
        and index.spans(r)[0][2] == "name"
        and index.texts[r][index.spans(r)[0][0] : index.spans(r)[0][1]].endswith("Venue")
        and "West Bay" not in index.texts[r]
    ]
    assert len(rows) >= 5
    adapted = [a for a in (user._adapt(r, ()) for r in rows) if a is not None]
    assert len(adapted) >= 3 and all(venue.value in text for text, *_ in adapted)


def test_a_value_is_not_put_where_the_words_after_it_name_another_detail(corpus: Path) -> None:
    """'<value> is my account number, and I forgot my PIN' is no place for the PIN (``_named_after``)."""
    pin = Fact(key="pin", value="7402", asked_by=["pin"])
    account = Fact(key="account_number", value="85731890", asked_by=["account number", "account"])
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [pin, account]})})
    user = TranscriptUser(corpus)
    user.reset(scenario, np.random.default_rng(0))
    user._revealed.add("account_number")
    index = user._index
    assert index is not None
    after = re.compile(r"^\s*is my account", re.IGNORECASE)
    rows = [r for r in range(len(index)) if any(after.match(index.texts[r][e:]) for _, e, _ in index.spans(r))]
    assert rows
    for row in rows:
        adapted = user._adapt(row, [(pin, "number")])
        assert adapted is None or not re.search(r"7402\s+is my account", adapted[0], re.IGNORECASE), adapted[0]


def test_unsure_reads_remember_as_people_type_it() -> None:
    """'I don't remeber my PIN' says the user does not know, as 'I don't remember' does: a retrieved turn with the
    typo cannot carry the PIN said after it either."""
    for text in ("i don't remember my pin", "i don't remeber my pin", "i can't remembr it", "i dont remamber"):
        assert UNSURE.search(text), text
    assert not UNSURE.search("i remember my pin now")


def test_answer_polarity_reads_a_yes_or_a_no_at_any_length() -> None:
    assert [answer_polarity(t) for t in ("Yes, please. Also, I'm strictly vegetarian too!", "Yeah", "Sure thing")] == [
        "affirm"
    ] * 3
    assert [answer_polarity(t) for t in ("We do not.", "Nah we got it. Thanks", "No parking, I will take a taxi.")] == [
        "deny"
    ] * 3
    assert [answer_polarity(t) for t in ("Great, book it", "Nobody told me", "I do need it")] == [None, None, "affirm"]


@pytest.mark.parametrize("value", ["yes", "no"])
def test_a_yes_or_no_fact_is_given_by_a_turn_of_that_answer(corpus: Path, value: str) -> None:
    """'Do you require parking?' with the scenario's answer a no gets a human no ('Nope, we got it'), never a turn
    of the other answer or one about something else, and never 'My parking is no.' said after it."""
    parking = Fact(key="parking", value=value, asked_by=["parking"])
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [parking]})})
    user = TranscriptUser(corpus)
    index = load_index(corpus)
    assert index is not None
    want = "affirm" if value == "yes" else "deny"
    for seed in range(8):
        user.attach_goal(lambda: False)
        (reply,) = _play(user, scenario, seed, ("Do you require parking at the venue?",))
        source = user.trace[0]
        assert source.ref is not None and source.intent == "answer", (reply, source)
        assert answer_polarity(reply) == want and "parking is" not in reply.lower(), reply
        assert source.filled == ("parking",) and not source.appended, source


def test_a_statement_fact_is_said_in_its_own_words(corpus: Path) -> None:
    """What happened ('a cough and a sore throat') has no place in another person's turn: said after one, it would
    follow that turn's own symptoms ('Runny nose. I have had a cough...'); the user says the fact's line."""
    line = "I have had a cough and a sore throat for two days now."
    symptoms = Fact(key="symptoms", value="a cough and a sore throat", asked_by=["symptom"], say=line)
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    scenario = base.model_copy(update={"user": base.user.model_copy(update={"facts": [symptoms]})})
    user = TranscriptUser(corpus)
    before = user.stats["fact_line"]
    for seed in range(3):
        user.attach_goal(lambda: False)
        (reply,) = _play(user, scenario, seed, ("Could you describe your symptoms, please?",))
        assert reply == line and user.trace[0].appended == ("symptoms",) and user.trace[0].ref is None, reply
    assert user.stats["fact_line"] == before + 3


def _reset_with(corpus: Path, *facts: Fact) -> tuple[TranscriptUser, TurnIndex]:
    """A transcript user reset (seed 0) on a scenario whose only facts are ``facts``, and its turn index."""
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    user = TranscriptUser(corpus)
    user.reset(
        base.model_copy(update={"user": base.user.model_copy(update={"facts": list(facts)})}), np.random.default_rng(0)
    )
    assert user._index is not None
    return user, user._index


def test_a_persons_name_never_goes_where_a_place_does(corpus: Path) -> None:
    """Asked for their name, the user does not put it after 'in', 'at' or an article ('check the weather in <name>',
    'the <name> is nice'); a turn with a name span after 'my name is' still takes it."""
    name = Fact(key="name", value="Ben", asked_by=["your name", "full name"])
    user, index = _reset_with(corpus, name)
    place = re.compile(r"\b(?:(?:in|at|from|near) (?:the )?|the |an? )$", re.IGNORECASE)
    rows = [
        r
        for r in range(len(index))
        if [k for _, _, k in index.spans(r)] == ["name"] and place.search(index.texts[r][: index.spans(r)[0][0]])
    ]
    assert len(rows) >= 20
    filled = [adapted for r in rows if (adapted := user._adapt(r, [(name, "name")])) is not None and adapted[1]]
    assert not filled, filled[:3]
    named = [r for r in range(len(index)) if re.search(r"\bmy name is [A-Z]\w+\.?$", index.texts[r])][:20]
    assert named and any((a := user._adapt(r, [(name, "name")])) is not None and a[1] == ["name"] for r in named)


def test_an_either_or_turn_never_keeps_either_without_its_or(corpus: Path) -> None:
    """'It's either 3100 or 1596' with one PIN to give: filling one span and dropping the other left 'It's either
    7402.' (seen in 7 of 40 sampled replies of star_worried); such a turn is not used, or keeps both halves."""
    pin = Fact(key="pin", value="7402", asked_by=["pin"])
    user, index = _reset_with(corpus, pin)
    rows = [r for r in range(len(index)) if re.search(r"\beither \d{4} or \d{4}\b", index.texts[r])]
    assert len(rows) >= 10
    adapted = [a[0] for r in rows if (a := user._adapt(r, [(pin, "number")])) is not None]
    assert not [t for t in adapted if re.search(r"\beither\b(?![^.!?]*\bor\b)", t)], adapted[:5]


def test_told_what_it_asked_for_cannot_be_had_it_asks_for_another(corpus: Path) -> None:
    """'Dr. Morgan has no appointment available at 5 pm' with the goal not met: the user asks for another option
    ('What about 6?'), it does not thank and leave (STAR's role-players were told to change the time until something
    works; a customer with a need does too)."""
    index = load_index(corpus)
    assert index is not None
    base = _with_persona("RetailCancelPendingOrder", disclosure="answers_only")
    user = TranscriptUser(corpus)
    acts = []
    for seed in range(12):
        user.attach_goal(lambda: False)
        (reply,) = _play(user, base, seed, ("Unfortunately Dr. Morgan has no appointment available at 5 pm.",))
        source = user.trace[0]
        assert source.intent == "other", source
        acts.append(user_act(reply))
    assert "thanks" not in acts and "greet" not in acts and acts.count("question") >= 3, acts
    user.attach_goal(lambda: False)
    (asked,) = _play(user, base, 0, ("That time is not available. Would you like to try another time?",))
    assert user.trace[0].intent != "other"  # asked something, it answers


def test_a_need_is_said_in_the_words_of_its_own_task(corpus: Path) -> None:
    """STAR dialogues of several tasks tag each turn with every task; a restaurant request never states its need
    with a turn about another task of such a dialogue ('Can I check my bank balance?')."""
    index = load_index(corpus)
    assert index is not None
    bank, restaurant = (1 << index.domain_names.index(d) for d in ("bank", "restaurant"))
    balance = [i for i, t in enumerate(index.texts) if re.search(r"\bbank balance\b", t.lower())]
    assert any(index.domains[i] & restaurant for i in balance)  # such turns exist, tagged with both tasks
    assert all(index.own_domains[i] & bank and not index.own_domains[i] & restaurant for i in balance)
    base = load_registered("RetailCancelPendingOrder")
    user_spec = base.user.model_copy(update={"goal": "Find a cheap Thai restaurant in the north of town.", "facts": []})
    scenario = base.model_copy(update={"user": user_spec, "domain": "restaurant", "tags": ["restaurant"]})
    user = TranscriptUser(corpus)
    rows = {index.ref(i): i for i in range(len(index))}
    for seed in range(30):
        _play(user, scenario, seed, ("Hello, how can I help?",))
        source = user.trace[-1]
        assert source.intent == "greet" and source.ref is not None
        row = rows[source.ref]
        assert index.own_domains[row] & restaurant or index.generic[row], index.texts[row]


def test_a_follow_up_is_said_in_its_own_words_before_closing(corpus: Path) -> None:
    """Where it would close ('anything else?' with the goal met), a user with a further request says a human turn
    that makes that request (a hotel's rating, never small talk) with the detail the request names in its place, then
    closes at the next 'anything else?'."""
    base = load_registered("RetailCancelPendingOrder")
    request = "Can you also tell me the rating of the Shadyside Inn?"
    user_spec = base.user.model_copy(
        update={
            "goal": "Find a hotel in the north of town.",
            "facts": [],
            "satisfied_by": ["anything else"],
            "follow_ups": [request],
        }
    )
    scenario = base.model_copy(update={"user": user_spec, "domain": "hotel", "tags": ["hotel"]})
    user = TranscriptUser(corpus)
    index = load_index(corpus)
    assert index is not None
    said, retrieved = [], 0
    for seed in range(20):
        replies = _play(user, scenario, seed, (OFFER, OFFER, OFFER))
        assert [s.intent for s in user.trace] == ["follow_up", "close"], replies
        retrieved += user.trace[0].ref is not None
        assert user.trace[0].ref is not None or replies[0] == request  # no turn fits: the request as written
        said.append(replies[0])
    assert retrieved >= 15
    assert all("rating" in r.lower() or "hotel" in r.lower() or "inn" in r.lower() for r in said), said  # no small talk
    assert all("Shadyside Inn" in r for r in said), said  # the detail it names, in the turn's place for it
    retail = base.model_copy(  # a business STAR has no turns of: the request as written, never a generic turn
        update={"user": base.user.model_copy(update={"satisfied_by": ["anything else"], "follow_ups": [request]})}
    )
    for seed in range(5):
        assert _play(user, retail, seed, (OFFER,)) == [request]


def test_a_value_that_says_the_word_beside_its_span_does_not_repeat_it(corpus: Path) -> None:
    """'the <Hyatt> hotel' filled with 'Hyatt Hotel' is 'the Hyatt Hotel', never 'the Hyatt Hotel hotel'; and a
    name is never dropped from 'my name is <name> and ...' ('Sure my name is my account number is ...')."""
    hotel = Fact(key="hotel", value="Hyatt Hotel", asked_by=["hotel"])
    user, index = _reset_with(corpus, hotel)
    rows = [
        r
        for r in range(len(index))
        if any(k == "name" and re.match(r"\s+hotel\b", index.texts[r][e:], re.I) for _, e, k in index.spans(r))
    ]
    assert len(rows) >= 3
    filled = [a[0] for a in (user._adapt(r, [(hotel, "name")]) for r in rows) if a is not None and a[1]]
    assert filled and all(not re.search(r"\bHotel\s+hotel\b", t, re.I) for t in filled), filled
    named = [
        r for r in range(len(index)) if re.search(r"\bmy name is [A-Z][a-z]+(?: [A-Z][a-z]+)? and\b", index.texts[r])
    ]
    assert named
    for row in named:
        adapted = user._adapt(row, ())
        assert adapted is None or not re.search(r"\bname is (?:and|my|i)\b", adapted[0], re.I), adapted


def test_a_number_goes_only_where_a_number_of_its_length_was_written(corpus: Path) -> None:
    """'I am 93, after all' is an age: no place for a phone number ('I am 720-555-0193, after all'); a PIN still
    takes the place of a PIN."""
    phone = Fact(key="phone", value="720-555-0193", asked_by=["phone"])
    user, index = _reset_with(corpus, phone)
    ages = [r for r in range(len(index)) if re.search(r"\bI am \d{2}\b(?! ?(?:am|pm))", index.texts[r])]
    assert len(ages) >= 2
    for row in ages:
        adapted = user._adapt(row, [(phone, "number")])
        assert adapted is None or not re.search(r"\bI am 720-555-0193", adapted[0]), adapted
    pin = Fact(key="pin", value="7402", asked_by=["pin"])
    pins = [r for r in range(len(index)) if re.search(r"\bmy pin is \d{4}\b", index.texts[r], re.I)]
    placed = [a for a in (user._adapt(r, [(pin, "number")]) for r in pins) if a is not None and a[1] == ["pin"]]
    assert placed and all("7402" in text for text, *_ in placed)
