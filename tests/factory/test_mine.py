"""``envsim scenarios mine`` / ``review``: drafts from ABCD, STAR and an OpenAI-format production log.

The corpora are read from the folder :func:`envsim.transcripts.corpus.corpus_dir` names (``ENVSIM_TRANSCRIPTS``
or ``../shared/transcripts``); no corpus text is written here: expectations about it are read back from the
importers. Drafts go to ``tmp_path`` only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from envsim.cli import app
from envsim.env import ScenarioEnv
from envsim.factory.mining import Miner
from envsim.factory.slots import SLOTS
from envsim.loader import load_scenario
from envsim.scenario import Scenario
from envsim.transcripts.corpus import CORPUS_ENV, corpus_dir
from envsim.transcripts.importers import read
from envsim.transcripts.schema import Conversation, Turn
from tests.conftest import REPO

DATA = REPO / "tests" / "data"
LOG = DATA / "production_log.jsonl"
MAPPING = DATA / "production_mapping.yaml"
PERSONAS = {"calm", "annoyed", "confused", "panicked_caller"}


@pytest.fixture(scope="module")
def corpus() -> Path:
    """The transcript corpus folder: skipped when absent on a developer's machine, a failure in CI."""
    folder = corpus_dir()
    if folder is None or not folder.is_dir():
        message = f"transcript corpus not found: set {CORPUS_ENV} or check out ../shared/transcripts"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return folder


def envsim(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env)


def last_json(result: Result) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def drafts(folder: Path) -> dict[str, Scenario]:
    return {p.stem: load_scenario(p, lint=False) for p in sorted(folder.glob("*.yaml"))}


def mine_log(out: Path, *extra: str) -> Result:
    result = envsim("scenarios", "mine", str(LOG), "--toolkit", "retail", "--mapping", str(MAPPING), "--out", str(out),
                    "--json", *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return result


def check_provenance(scenario: Scenario, conversation: Conversation, corpus: str) -> None:
    """Provenance, status, opening, and facts that the customer really gave when asked."""
    assert scenario.status == "draft" and scenario.source is not None
    assert (scenario.source.corpus, scenario.source.conversation_id) == (corpus, conversation.id)
    turn = scenario.source.turn
    assert turn is not None and conversation.turns[turn].role == "user"
    assert all(t.role != "user" or not t.text.strip() for t in conversation.turns[:turn])
    assert scenario.user.opening == conversation.turns[turn].text.strip()
    assert scenario.user.persona.ref in PERSONAS
    assert set(scenario.source.affect) >= {"fear", "anger", "confusion"}
    asked = {s.key: s for s in SLOTS}
    for fact in scenario.user.facts:
        given = [i for i, t in enumerate(conversation.turns) if t.role == "user" and fact.value in t.text]
        assert given, fact
        assert any(t.role == "agent" and asked[fact.key].asked_in(t.text) for t in conversation.turns[: given[0]]), (
            fact
        )  # the agent asked for it before


# -- ABCD --------------------------------------------------------------------------------------------------------


def test_mine_abcd_sample_drafts_with_provenance(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "abcd"
    result = envsim("scenarios", "mine", "abcd", "--toolkit", "retail", "--corpus", str(corpus), "--out", str(out),
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    conversations = {c.id: c for c in read("abcd", corpus / "abcd")}
    assert (summary["format"], summary["conversations"], summary["drafts"]) == ("abcd", len(conversations), 3)
    found = drafts(out)
    assert set(found) == {f"MinedAbcd{i}" for i in conversations}
    for scenario in found.values():
        assert scenario.source is not None and scenario.source.file == "abcd"  # relative to the corpus folder
        conversation = conversations[str(scenario.source.conversation_id)]
        check_provenance(scenario, conversation, "abcd")
        assert scenario.tags == ["mined", "abcd"] and scenario.world.fixture == "default"
        assert "human-written, role-played" in scenario.description
        # ABCD's buttons are not retail tools: without a mapping the actions are left out, with the reason
        assert scenario.expected.actions == []
        assert any("no mapping for the logged action" in note for note in scenario.source.notes)
    keys = {f.key for f in found["MinedAbcd3592"].user.facts}
    assert {"name", "username", "email", "order_id", "phone"} <= keys
    # review finds each source conversation through the corpus setting (source.file is relative to it)
    shown = envsim("scenarios", "review", str(out), "--json", input="s\ns\ns\n", env={CORPUS_ENV: str(corpus)})
    assert shown.exit_code == 0, shown.output
    assert "not available" not in shown.stdout and shown.stdout.count("[0] ") == 3
    for scenario in found.values():
        assert scenario.source is not None
        conversation = conversations[str(scenario.source.conversation_id)]
        last = len(conversation.turns) - 1
        assert f"[{last}] {conversation.turns[last].role}:" in shown.stdout  # the whole conversation is shown
    # a draft without criteria is still an error for envsim validate (a draft is not a scenario yet)
    check = envsim("validate", str(out / "MinedAbcd3592.yaml"))
    assert check.exit_code == 2 and "expected: no criteria" in check.stderr


def test_mine_abcd_with_a_mapping_maps_actions_by_position(corpus: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "abcd.yaml"
    mapping.write_text(
        "toolkit: retail\n"
        "actions:\n"
        "  pull-up-account: {tool: null}\n"
        "  validate-purchase: {tool: get_order, arguments: {order_id: '2'}}\n"
        "  enter-details: {tool: null}\n"
        "  notify-team: {tool: transfer_to_human, arguments: {summary: '0'}, constants: {reason: complaint}}\n",
        encoding="utf-8",
    )
    out = tmp_path / "abcd"
    result = envsim("scenarios", "mine", str(corpus / "abcd"), "--toolkit", "retail", "--mapping", str(mapping),
                    "--out", str(out), "--mapped-only", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    conversations = {c.id: c for c in read("abcd", corpus / "abcd")}
    found = drafts(out)
    assert "MinedAbcd3592" in found
    scenario = found["MinedAbcd3592"]
    logged = [t.tool for t in conversations["3592"].turns if t.tool is not None]
    validate = next(t for t in logged if t.name == "validate-purchase")
    notify = next(t for t in logged if t.name == "notify-team")
    assert [(a.name, a.arguments) for a in scenario.expected.actions] == [
        ("get_order", {"order_id": validate.arguments["values"][2]}),
        ("transfer_to_human", {"summary": notify.arguments["values"][0], "reason": "complaint"}),
    ]
    assert scenario.expected.escalation == "required"
    assert scenario.source is not None and any("dropped: turn" in note for note in scenario.source.notes)
    # the corpus' order ids are not in the retail world: the replay fails, so the draft stays a draft
    review = envsim("scenarios", "review", str(out), "--accept-verified", "--json")
    assert review.exit_code == 0, review.output
    outcome = last_json(review)
    assert "MinedAbcd3592" in outcome["ids"]["kept"]
    assert "fails on the initial world" in outcome["reasons"]["MinedAbcd3592"]
    assert load_scenario(out / "MinedAbcd3592.yaml", lint=False).status == "draft"


# -- STAR --------------------------------------------------------------------------------------------------------

STAR_MAPPING = """\
toolkit: banking
actions:
  bank_fraud_report:
    tool: transfer_to_human
    arguments: {summary: FraudReport}
    constants: {reason: fraud_suspected}
"""


def test_mine_star_dialogues_with_provenance(corpus: Path, tmp_path: Path) -> None:
    mapping = tmp_path / "star.yaml"
    mapping.write_text(STAR_MAPPING, encoding="utf-8")
    out = tmp_path / "star"
    result = envsim("scenarios", "mine", "star", "--toolkit", "banking", "--mapping", str(mapping), "--out", str(out),
                    "--mapped-only", "--limit", "3", "--json", env={CORPUS_ENV: str(corpus)})  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["format"] == "star" and summary["drafts"] == summary["with_actions"] == 3
    assert summary["skipped"]["actions_not_mapped"] >= 1
    found = drafts(out)
    wanted = {s.source.conversation_id for s in found.values() if s.source is not None}
    conversations = {c.id: c for c in read("star", corpus / "star") if c.id in wanted}
    assert set(conversations) == wanted
    for scenario in found.values():
        assert scenario.source is not None
        conversation = conversations[str(scenario.source.conversation_id)]
        check_provenance(scenario, conversation, "star")
        instructions = conversation.labels["persona_instructions"]
        assert instructions and scenario.user.goal in instructions[0]  # the role-player's first instruction
        reports = [t.tool for t in conversation.turns if t.tool is not None]
        assert reports and all(t.name == "bank_fraud_report" for t in reports)
        assert [a.name for a in scenario.expected.actions] == ["transfer_to_human"] * len(reports)
        assert all(a.arguments["reason"] == "fraud_suspected" for a in scenario.expected.actions)


# -- the production log: mine -> review --accept-verified -> validate -> run ---------------------------------------


def test_production_log_recipe(tmp_path: Path) -> None:
    out = tmp_path / "regressions"
    summary = last_json(mine_log(out))
    assert summary["ids"] == ["MinedOpenaiProd2291", "MinedOpenaiProd2307"] and summary["with_actions"] == 2
    good = drafts(out)["MinedOpenaiProd2291"]
    assert [(a.name, a.arguments) for a in good.expected.actions] == [
        ("find_customer_by_email", {"email": "isabella.kim265@inbox.test"}),
        ("get_order", {"order_id": "#W0044"}),
        ("cancel_order", {"order_id": "#W0044", "reason": "ordered_by_mistake"}),
    ]
    assert [(f.key, f.value) for f in good.user.facts] == [
        ("email", "isabella.kim265@inbox.test"),
        ("order_id", "#W0044"),
    ]
    assert good.user.persona.ref == "confused"  # "Now I'm confused, is my gift card balance OK or not?"
    assert good.source is not None and good.source.file == str(LOG) and good.source.format == "openai"
    notes = " ".join(good.source.notes)
    assert "send_survey" in notes and "outcome: failed" in notes

    review = envsim("scenarios", "review", str(out), "--accept-verified", "--json")
    assert review.exit_code == 0, review.output
    outcome = last_json(review)
    assert outcome["ids"] == {"accepted": ["MinedOpenaiProd2291"], "rejected": [], "kept": ["MinedOpenaiProd2307"]}
    assert "cancel_order fails on the initial world" in outcome["reasons"]["MinedOpenaiProd2307"]
    assert load_scenario(out / "MinedOpenaiProd2291.yaml").status == "accepted"

    accepted = str(out / "MinedOpenaiProd2291.yaml")
    assert envsim("validate", accepted).exit_code == 0
    run = envsim("run", accepted, "--json")
    assert run.exit_code == 0, run.output
    assert last_json(run)["mean_reward"] == 1.0

    # mining again keeps the reviewed file, and rewrites nothing else that is unchanged
    again = last_json(mine_log(out))
    assert (again["kept_accepted"], again["unchanged"], again["written"]) == (1, 1, 0)
    assert load_scenario(out / "MinedOpenaiProd2291.yaml", lint=False).status == "accepted"


CATCH_THE_REFUND_PROMISE = """\
  required_statements:
  - any_of: ["won't be charged", "will not be charged", "hold on your gift card has been released"]
"""


def test_the_regression_scenario_fails_the_production_bots_reply(tmp_path: Path) -> None:
    out = tmp_path / "regressions"
    mine_log(out)
    path = out / "MinedOpenaiProd2291.yaml"  # the recipe's step 2: a criterion for what went wrong in words
    anchor = "      reason: ordered_by_mistake\n"
    path.write_text(path.read_text(encoding="utf-8").replace(anchor, anchor + CATCH_THE_REFUND_PROMISE), "utf-8")
    review = envsim("scenarios", "review", str(out), "--accept-verified", "--json")
    assert last_json(review)["ids"]["accepted"] == ["MinedOpenaiProd2291"]
    scenario = load_scenario(path)
    [log] = [c for c in read("openai", LOG) if c.id == "prod-2291"]

    def play(last_reply: str | None = None) -> tuple[float, float]:
        """The bot's own turns (its calls as mapped), the last reply replaced when given."""
        env = ScenarioEnv(scenario)
        env.reset(seed=0)
        calls = iter(scenario.expected.actions)
        replies = [t for t in log.turns if t.role == "agent"]
        for turn in log.turns:
            if turn.tool is not None and turn.tool.name != "send_survey":
                call = next(calls)
                action = json.dumps({"name": call.name, "arguments": call.arguments})
            elif turn.role == "agent":
                action = last_reply if last_reply is not None and turn is replies[-2] else turn.text
            else:
                continue
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        breakdown = env.score()
        return breakdown.total, breakdown.components["required_statements"].score

    assert play() == (pytest.approx(0.8), 0.0)  # the production bot promises a refund: caught
    fixed = "Done! Order #W0044 is cancelled; the hold on your gift card has been released, so you won't be charged."
    assert play(fixed) == (1.0, 1.0)


def test_review_interactive_with_piped_answers(tmp_path: Path) -> None:
    out = tmp_path / "drafts"
    mine_log(out)
    # the first draft: accept; the second (its cancel fails on the world): accept is refused, then reject
    result = envsim("scenarios", "review", str(out), "--json", input="a\na\nr\n")
    assert result.exit_code == 0, result.output
    assert "crm_lookup" in result.stdout and "[1] user:" in result.stdout  # the source conversation beside it
    assert "MinedOpenaiProd2307.yaml does not validate yet" in result.stderr
    outcome = last_json(result)
    assert outcome["ids"] == {"accepted": ["MinedOpenaiProd2291"], "rejected": ["MinedOpenaiProd2307"], "kept": []}
    assert sorted(p.name for p in out.iterdir()) == ["MinedOpenaiProd2291.yaml", "rejected.jsonl"]
    ledger = [json.loads(line) for line in (out / "rejected.jsonl").read_text(encoding="utf-8").splitlines()]
    assert ledger == [
        {"corpus": "openai", "conversation_id": "prod-2307", "file": str(LOG), "id": "MinedOpenaiProd2307"}
    ]
    # a rejected conversation is not mined again
    again = last_json(mine_log(out))
    assert again["skipped"] == {"rejected_before": 1} and not (out / "MinedOpenaiProd2307.yaml").exists()


def test_review_edit_then_accept(tmp_path: Path) -> None:
    out = tmp_path / "drafts"
    mine_log(out)
    (out / "MinedOpenaiProd2291.yaml").unlink()
    editor = tmp_path / "editor.py"  # the reviewer declares that the correct agent's cancel is refused
    editor.write_text(
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "t = p.read_text()\n"
        "t = t.replace('      reason: other\\n', '      reason: other\\n    expect_error: rule_violation\\n')\n"
        "p.write_text(t)\n",
        encoding="utf-8",
    )
    result = envsim("scenarios", "review", str(out), "--json", input="e\na\n",
                    env={"EDITOR": f"{sys.executable} {editor}", "VISUAL": ""})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert last_json(result)["ids"]["accepted"] == ["MinedOpenaiProd2307"]
    edited = load_scenario(out / "MinedOpenaiProd2307.yaml")
    assert edited.status == "accepted" and edited.expected.actions[-1].expect_error == "rule_violation"


def test_quit_and_skip_keep_drafts(tmp_path: Path) -> None:
    out = tmp_path / "drafts"
    mine_log(out)
    result = envsim("scenarios", "review", str(out), "--json", input="s\nq\n")
    assert result.exit_code == 0, result.output
    assert last_json(result)["ids"]["kept"] == ["MinedOpenaiProd2291", "MinedOpenaiProd2307"]
    assert {s.status for s in drafts(out).values()} == {"draft"}


# -- drafting details --------------------------------------------------------------------------------------------


def test_persona_follows_the_customers_affect() -> None:
    def conversation(text: str, **labels: Any) -> Conversation:
        turns = [Turn(role="user", text=text), Turn(role="agent", text="ok")]
        return Conversation(corpus="plain", id="1", turns=turns, labels=labels)

    miner = Miner("retail")

    def persona(c: Conversation) -> str | None:
        scenario, _ = miner.draft(c)
        assert scenario is not None
        return scenario.user.persona.ref

    assert persona(conversation("Thanks, that works for me.")) == "calm"
    assert persona(conversation("This is ridiculous, I am so angry. Stop wasting my time!")) == "annoyed"
    assert persona(conversation("I am so confused, what do you mean?")) == "confused"
    assert persona(conversation("Thanks, that works for me.", annoyed=True)) == "annoyed"  # STAR's questionnaire


def test_conversation_without_customer_turn_is_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [{"id": "x", "messages": [{"role": "assistant", "content": "Hello?"}]},
             {"id": "y", "messages": [{"role": "user", "content": "I need help"}]}]  # fmt: skip
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = envsim("scenarios", "mine", str(log), "--toolkit", "retail", "--out", str(tmp_path / "o"), "--json")
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["skipped"] == {"no_customer_turn": 1} and summary["ids"] == ["MinedOpenaiY"]
    [draft] = drafts(tmp_path / "o").values()
    assert draft.source is not None and "no tool calls" in draft.source.notes[0]


# -- bad input ---------------------------------------------------------------------------------------------------


def test_mapping_naming_an_unknown_tool_is_located_and_nothing_is_written(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        MAPPING.read_text(encoding="utf-8")
        .replace("tool: find_customer_by_email", "tool: find_customer_by_mail")
        .replace("{order_id: order_number, reason: why}", "{order_id: order_number, reasn: why}"),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = envsim("scenarios", "mine", str(LOG), "--toolkit", "retail", "--mapping", str(mapping), "--out", str(out))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        f"{mapping}:7:11: actions.crm_lookup.tool: unknown tool 'find_customer_by_mail' in toolkit retail "
        "(did you mean 'find_customer_by_email'?)"
    )
    assert lines[1].startswith(
        f"{mapping}:14:41: actions.order_cancel.arguments.reasn: cancel_order has no argument 'reasn' (did you mean "
        "'reason'?)"
    )
    assert not out.exists()


def test_mapping_schema_errors_and_another_toolkit(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("toolkit: banking\nactoins: {}\n", encoding="utf-8")
    result = envsim("scenarios", "mine", str(LOG), "--toolkit", "retail", "--mapping", str(mapping),
                    "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 2
    assert f"{mapping}:2:1: actoins: unknown field (did you mean 'actions'?)" in result.stderr
    mapping.write_text("toolkit: banking\n", encoding="utf-8")
    result = envsim("scenarios", "mine", str(LOG), "--toolkit", "retail", "--mapping", str(mapping),
                    "--out", str(tmp_path / "o"))  # fmt: skip
    assert result.exit_code == 2
    assert f"{mapping}:1:10: toolkit: the mapping is for toolkit 'banking', not 'retail'" in result.stderr


def test_log_line_that_is_not_json_is_located_and_nothing_is_written(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    first = LOG.read_text(encoding="utf-8").splitlines()[0]
    log.write_text(first + "\n" + '{"id": "b", "messages": [}\n', encoding="utf-8")
    out = tmp_path / "out"
    # as a user runs it: a located message, no traceback, and not even the good first line's draft
    process = subprocess.run(
        [sys.executable, "-c", "from envsim.cli import main; main()", "scenarios", "mine", str(log), "--toolkit",
         "retail", "--mapping", str(MAPPING), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert process.returncode == 2, process.stderr
    assert process.stderr.strip() == f"{log}:2:26: invalid JSON: Expecting value"
    assert "Traceback" not in process.stderr and not out.exists()


def test_unknown_toolkit_format_and_missing_log(tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    result = envsim("scenarios", "mine", str(LOG), "--toolkit", "retial", "--out", out)
    assert result.exit_code == 2 and "unknown toolkit 'retial' (did you mean 'retail'?)" in result.stderr
    result = envsim("scenarios", "mine", str(LOG), "--toolkit", "retail", "--format", "opena", "--out", out)
    assert result.exit_code == 2 and "(did you mean 'openai'?)" in result.stderr
    result = envsim("scenarios", "mine", str(tmp_path / "nope.jsonl"), "--toolkit", "retail", "--out", out)
    assert result.exit_code == 2 and "nope.jsonl: no such file or folder" in result.stderr
    result = envsim("scenarios", "review", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "nowhere: no such folder" in result.stderr
