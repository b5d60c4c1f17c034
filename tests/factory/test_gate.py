"""The verification gate: every planted bad candidate is dropped with its reason; good ones are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.factory.draw import instances
from envsim.factory.family import load_family_text
from envsim.factory.gate import Gate, Verdict, forbidden_call_fails
from envsim.reward import Rubric

FAMILIES = Path(__file__).parent / "families" / "retail"
REFUSAL = (FAMILIES / "cancel_shipped_refusal.yaml").read_text(encoding="utf-8")
REFUND = (FAMILIES / "refund_damaged_unit.yaml").read_text(encoding="utf-8")


def _verdicts(text: str, count: int = 3) -> list[Verdict]:
    loaded = load_family_text(text, Path("planted.yaml"))
    gate = Gate()
    return [gate.verify(candidate) for candidate in instances(loaded, count, 0)]


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


def test_the_test_families_pass_the_gate() -> None:
    assert all(v.ok for v in _verdicts(REFUND)), _verdicts(REFUND)
    assert all(v.ok for v in _verdicts(REFUSAL)), _verdicts(REFUSAL)


def test_an_unsolvable_candidate_is_dropped() -> None:
    [verdict] = _verdicts(_edit(REFUND, "  max_turns: 12", "  max_turns: 2"), 1)
    assert verdict.reason == "unsolvable"
    assert verdict.detail.startswith("reference agent: truncated: final_state 0.00")


def test_a_near_duplicate_is_dropped() -> None:
    one_record = _edit(REFUSAL, "where: {status: shipped}", "where: {status: shipped, id: '#W0003'}")
    one_record = _edit(_edit(one_record, "seeds: [0, 1]", "seeds: [0]"), "[calm, annoyed]", "[calm, annoyed, confused]")
    verdicts = _verdicts(one_record, 3)  # three personas on one record: one opening, one final state
    assert [v.reason for v in verdicts] == [None, "near_duplicate", "near_duplicate"]


def test_a_do_nothing_solvable_candidate_is_dropped() -> None:
    [verdict] = _verdicts(_edit(REFUSAL, '    required_statements: ["already shipped"]\n', ""), 1)
    assert verdict == Verdict(False, "do_nothing_passes", "an agent that only sends non-committal text succeeds")


def test_a_refusal_without_its_trap_is_dropped() -> None:
    trapless = _edit(
        REFUSAL, '    forbidden_actions:\n      - {name: cancel_order, arguments: {order_id: "{{ order.id }}"}}\n', ""
    )
    [verdict] = _verdicts(trapless, 1)
    assert verdict == Verdict(False, "trap_missing", "a refusal instance needs a forbidden action")
    changing = _edit(REFUSAL, "    no_change: true\n", "")
    assert _verdicts(changing, 1)[0] == Verdict(
        False, "trap_missing", "a refusal instance needs expected.no_change: true"
    )


def test_a_candidate_whose_trap_passes_is_dropped() -> None:
    lenient = _edit(REFUND, "      - {name: refund_order}", "      - {name: get_customer}")
    lenient = _edit(
        lenient, "  max_turns: 12", "  max_turns: 12\n  reward: {gates: [final_state], components: {final_state: 1.0}}"
    )
    [verdict] = _verdicts(lenient, 1)
    assert verdict == Verdict(False, "trap_passes", "the reference plan plus forbidden get_customer succeeds")


def test_an_invalid_candidate_is_dropped_with_its_located_problem() -> None:
    [verdict] = _verdicts(_edit(REFUND, "quantity: 1}]", "quantity: 99}]"), 1)
    assert verdict.reason == "invalid"
    assert verdict.detail.startswith(
        "planted.yaml:50:9: scenario.expected.actions.2: expected action refund_items fails"
    )


def test_a_render_failure_is_dropped_as_invalid() -> None:
    [verdict] = _verdicts(_edit(REFUND, "{{ item.name }} from order", "{{ item.colour }} from order"), 1)
    assert verdict.reason == "invalid"
    assert verdict.detail == (
        "planted.yaml:39:11: scenario.user.goal: template line 1: the record has no attribute 'colour'"
    )


@pytest.mark.parametrize(
    ("weights", "gates", "threshold", "fails"),
    [
        ({"final_state": 0.5, "forbidden_actions": 0.15}, (), 1.0, True),
        ({"final_state": 0.5, "forbidden_actions": 0.15}, (), 0.7, False),
        ({"final_state": 1.0}, ("forbidden_actions",), 0.5, True),
        ({"final_state": 1.0}, (), 1.0, False),
    ],
)
def test_one_trap_episode_stands_for_all_only_when_any_forbidden_attempt_fails(
    weights: dict[str, float], gates: tuple[str, ...], threshold: float, fails: bool
) -> None:
    assert forbidden_call_fails(Rubric(weights, gates=list(gates), success_threshold=threshold)) is fails


def test_probe_episodes_the_rubric_decides_are_not_played_unless_thorough(monkeypatch: pytest.MonkeyPatch) -> None:
    import envsim.factory.gate as gate_module

    played: list[str] = []
    real = Gate.play

    def spy(self: Gate, env, agent, *, first=False):  # type: ignore[no-untyped-def]
        played.append(f"{type(agent).__name__}{getattr(agent, 'forbidden', '')}")
        return real(self, env, agent, first=first)

    monkeypatch.setattr(Gate, "play", spy)
    two = _edit(REFUND, "      - {name: refund_order}", "      - {name: refund_order}\n      - {name: cancel_order}")
    loaded = load_family_text(two, Path("planted.yaml"))
    [candidate] = instances(loaded, 1, 0)
    assert Gate().verify(candidate).ok
    # the refund changes the world and retail gates final_state and forbidden_actions: one trap, no idle episode
    assert played == ["ScriptedAgent", "TrapAgent0"]
    played.clear()
    assert Gate(thorough=True).verify(candidate).ok
    assert played == ["ScriptedAgent", "DoNothingAgent", "TrapAgent0", "TrapAgent1"]
    played.clear()
    monkeypatch.setattr(gate_module, "forbidden_call_fails", lambda rubric: False)
    monkeypatch.setattr(gate_module, "idle_fails", lambda rubric, expected, initial: False)
    assert Gate().verify(candidate).ok
    assert played == ["ScriptedAgent", "DoNothingAgent", "TrapAgent0", "TrapAgent1"]
    played.clear()
    [refusal] = instances(load_family_text(REFUSAL, Path("planted.yaml")), 1, 0)
    monkeypatch.undo()
    monkeypatch.setattr(Gate, "play", spy)
    assert Gate().verify(refusal).ok  # a refusal leaves the world as it was: the idle episode is played
    assert played == ["ScriptedAgent", "DoNothingAgent", "TrapAgent0"]


def test_the_episodes_left_out_would_have_failed(tmp_path: Path) -> None:
    """The gate's verdicts are the same with every probe episode played, on the test families, planted
    bad candidates and a sample of every shipped family."""
    from envsim.factory.family import load_family
    from envsim.factory.generate import family_dirs, family_files

    texts = [
        REFUND,
        REFUSAL,
        _edit(REFUSAL, '    required_statements: ["already shipped"]\n', ""),
        _edit(REFUND, "      - {name: refund_order}", "      - {name: get_customer}").replace(
            "  max_turns: 12", "  max_turns: 12\n  reward: {gates: [final_state], components: {final_state: 1.0}}"
        ),
    ]
    renamed = [text.replace("family: TestRetail", f"family: Planted{i}TestRetail") for i, text in enumerate(texts)]
    loaded = [load_family_text(text, Path("planted.yaml")) for text in renamed]

    loaded += [load_family(path) for folder in family_dirs() for path in family_files(folder)]
    quick, thorough = Gate(), Gate(thorough=True)
    verdicts = [(quick.verify(c), thorough.verify(c)) for family in loaded for c in instances(family, 2, 3)]
    assert len(verdicts) >= 2 * len(loaded)
    assert [q for q, _ in verdicts] == [t for _, t in verdicts]
    assert {q.reason for q, _ in verdicts} >= {None, "do_nothing_passes", "trap_passes"}
