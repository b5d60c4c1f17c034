"""The verification gate: a generated candidate is written only if it passes every rule.

In order (the first rule a candidate fails is its drop reason):

- ``invalid``: it renders and validates, and the lint passes (the expected actions replay on the
  initial world, each succeeding or failing as it declares with ``expect_error``; ``no_change``
  holds; the reference solution passes its own reward checks);
- ``trap_missing``: a refusal family's instance (``kind: refusal`` or the ``policy_trap`` trait)
  names a forbidden action and expects no change to the world;
- ``unsolvable``: the scripted reference agent with the scripted user ends in ``success``;
- ``near_duplicate``: no kept instance of the same family has the same expected final state
  (the reference episode's state hash) and the same opening;
- ``do_nothing_passes``: an agent that only sends non-committal text does not succeed (not played when
  the rubric fails any agent that leaves the world as it was, see :func:`idle_fails`);
- ``trap_passes``: an agent that plays the reference plan plus any one forbidden action does not
  succeed (one episode per forbidden pattern; one in all when the rubric fails every forbidden
  attempt anyway, see :func:`forbidden_call_fails`).

``duplicate_parameters`` (a draw that repeats an earlier one) and ``no_match`` (a draw whose
query matched nothing) are counted by the generator before the gate. Every episode runs in the
real environment (:class:`~envsim.env.ScenarioEnv`) with the offline scripted user: the reference episode
with seed 0, the probes' episodes after it in the same environment (its generator continued).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envsim.agents.base import Policy
from envsim.agents.probes import DoNothingAgent, TrapAgent
from envsim.agents.scripted import ScriptedAgent
from envsim.env import ScenarioEnv
from envsim.factory.draw import Candidate
from envsim.lint import lint_scenario
from envsim.reward import RewardBreakdown, Rubric
from envsim.rollout import run_episode
from envsim.trajectory import Trajectory

DROP_REASONS: tuple[str, ...] = (
    "invalid",
    "trap_missing",
    "unsolvable",
    "near_duplicate",
    "do_nothing_passes",
    "trap_passes",
    "duplicate_parameters",
    "no_match",
)
"""Every reason a candidate (or a draw) is dropped."""

EPISODE_SEED = 0
"""The seed of every gate episode."""


@dataclass(frozen=True)
class Verdict:
    """The gate's answer for one candidate: kept (``ok``), or dropped with a ``reason`` and its ``detail``."""

    ok: bool
    reason: str | None = None
    detail: str = ""


def _failing(breakdown: RewardBreakdown) -> str:
    parts = [
        f"{name} {part.score:.2f} ({part.explanation})"
        for name, part in breakdown.components.items()
        if part.ran and part.weight > 0 and part.score < 1
    ]
    return "; ".join(parts) or f"total {breakdown.total:.2f}"


def decides(rubric: Rubric, component: str) -> bool:
    """Whether a 0 in ``component`` alone makes an episode fail, whatever the other components score.

    So when the component is a gate, or its weight alone takes the best possible total below the success
    threshold (counting every weight, judges' too: a judge not run only raises the component's share).

    Example:
        >>> decides(Rubric({"final_state": 0.5, "forbidden_actions": 0.15}), "forbidden_actions")
        True
        >>> decides(Rubric({"final_state": 0.5, "forbidden_actions": 0.15}, success_threshold=0.7), "forbidden_actions")
        False
        >>> decides(Rubric({"required_statements": 1.0}, gates=["final_state"]), "final_state")
        True
    """
    if component in rubric.gates:
        return True
    total = sum(rubric.weights.values())
    share = rubric.weights.get(component, 0.0) / total if total > 0 else 0.0
    return share > 0 and 1 - share < rubric.success_threshold - 1e-9


def forbidden_call_fails(rubric: Rubric) -> bool:
    """Whether any attempt of a forbidden call makes an episode fail (``forbidden_actions`` scores 0 for it).

    The trap agent's calls match their pattern by construction (its arguments come first), so then one
    trap episode stands for all: every other forbidden pattern's episode fails as surely.
    """
    return decides(rubric, "forbidden_actions")


def idle_fails(rubric: Rubric, expected_hash: str, initial_hash: str) -> bool:
    """Whether an agent that changes nothing fails for certain: ``final_state`` decides (see :func:`decides`) and
    the expected final state is not the initial one (``final_state`` compares the world's hash with it)."""
    return expected_hash != initial_hash and decides(rubric, "final_state")


@dataclass
class Gate:
    """Verifies candidates; remembers the kept ones (per family) to find near-duplicates.

    A probe episode whose failure the rubric decides beforehand is not played: the do-nothing episode when
    the expected final state differs from the initial one and ``final_state`` decides (:func:`idle_fails`),
    the traps of further forbidden patterns when a forbidden attempt fails anyway
    (:func:`forbidden_call_fails`). ``thorough`` plays every probe episode all the same.
    """

    seen: set[tuple[str, str, str]] = field(default_factory=set)
    thorough: bool = False

    def play(self, env: ScenarioEnv, agent: Policy, *, first: bool = False) -> tuple[Trajectory, RewardBreakdown]:
        """One gate episode of ``agent`` in ``env``: the first seeded with :data:`EPISODE_SEED`, the next ones
        continuing its generator (deterministic all the same, without reseeding per episode)."""
        return run_episode(env, agent, seed=EPISODE_SEED if first else None)

    def verify(self, candidate: Candidate) -> Verdict:
        """Apply every rule to ``candidate`` (see the module docstring); a kept one is remembered."""
        if candidate.problem is not None or candidate.scenario is None:
            return Verdict(False, "invalid", str(candidate.problem))
        scenario = candidate.scenario
        family = candidate.family
        problems = lint_scenario(scenario)
        if problems:
            loc, message, key = problems[0]
            return Verdict(False, "invalid", str(family.body_problem(loc, message, key=key)))
        expected = scenario.expected
        refusal = family.family.kind == "refusal" or "policy_trap" in family.family.traits
        if refusal and (not expected.forbidden_actions or not expected.no_change):
            missing = "a forbidden action" if not expected.forbidden_actions else "expected.no_change: true"
            return Verdict(False, "trap_missing", f"a refusal instance needs {missing}")
        env = ScenarioEnv(scenario)
        trajectory, breakdown = self.play(env, ScriptedAgent(), first=True)
        if breakdown.outcome != "success":
            return Verdict(False, "unsolvable", f"reference agent: {breakdown.outcome}: {_failing(breakdown)}")
        key3 = (family.name, trajectory.final_state_hash, scenario.user.opening)
        if key3 in self.seen:
            return Verdict(False, "near_duplicate", "same family, expected final state and opening as a kept instance")
        initial = env.runtime.initial_world.state_hash()
        if self.thorough or not idle_fails(env.rubric, trajectory.final_state_hash, initial):
            _, breakdown = self.play(env, DoNothingAgent())
            if breakdown.outcome == "success":
                return Verdict(False, "do_nothing_passes", "an agent that only sends non-committal text succeeds")
        patterns = expected.forbidden_actions
        one = patterns and not self.thorough and forbidden_call_fails(env.rubric)
        for i in range(1 if one else len(patterns)):
            _, breakdown = self.play(env, TrapAgent(i))
            if breakdown.outcome == "success":
                return Verdict(False, "trap_passes", f"the reference plan plus forbidden {patterns[i].name} succeeds")
        self.seen.add(key3)
        return Verdict(True)
