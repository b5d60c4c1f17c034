"""How often does the transcript user's reply not fit the agent turn it answers? (issue 19, item 1)

A coherence model (:class:`envsim.user.transcript.coherence.CoherenceModel`) is fitted on one half of the
*held-out* STAR dialogues (by a hash of the id), which the transcript user never retrieves from
and never fits on; its misfit rate is then measured on:

- ``human``: the human (agent turn, reply) pairs of the other held-out half (the baseline: about
  ``MISFIT_SHARE`` by construction of the threshold, up to the difference between the halves);
- ``live``: every (agent message, user reply) pair of episodes of the shipped scenarios played by
  the scripted agent at error rates 0 and 0.3 against the transcript user, seeds 0..SEEDS-1;
- ``probes``: the transcript user's reply to PROBES wizard turns of the other held-out half, each
  the first agent message of an episode of a shipped scenario (the agent turns of real dialogues,
  more varied than the scripted agent's).

Also prints the user's own rejection counts (``TranscriptUser.stats`` where it has them). Run:
``.venv/bin/python bench/user_fit.py [SEEDS] [PROBES]``.

Figures and their history: ``bench/README.md``, "Transcript user: context fit".
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import zlib
from collections import Counter

import numpy as np

from envsim.agents import ScriptedAgent
from envsim.calibrate import is_heldout
from envsim.calibration_outcomes import shipped_scenarios
from envsim.env import ScenarioEnv
from envsim.loader import load_scenario
from envsim.rollout import run_episode
from envsim.transcripts.corpus import corpus_dir
from envsim.user.transcript.coherence import CoherenceModel, corpus_pairs
from envsim.user.transcript.corpus import read_star
from envsim.user.transcript.user import TranscriptUser


def _pairs(messages: list[dict[str, object]]) -> list[tuple[str, str]]:
    out = []
    for before, after in itertools.pairwise(messages):
        if before.get("role") == "assistant" and after.get("role") == "user" and before.get("content"):
            out.append((str(before["content"]), str(after["content"])))
    return out


def main(seeds: int = 3, probes: int = 300) -> None:
    """Print the misfit rates (see the module docstring) as JSON."""
    folder = corpus_dir()
    assert folder is not None, "no transcript corpus"
    heldout = [c for c in read_star(folder) if is_heldout("star", c.id)]
    half = [zlib.crc32(c.id.encode()) % 2 for c in heldout]
    fit_side = [c for c, h in zip(heldout, half, strict=True) if h == 0]
    eval_side = [c for c, h in zip(heldout, half, strict=True) if h == 1]
    started = time.perf_counter()
    model = CoherenceModel.fit(corpus_pairs(fit_side), seed=0)
    human = corpus_pairs(eval_side)
    result: dict[str, object] = {"fit_seconds": round(time.perf_counter() - started, 1)}
    result["human"] = {"pairs": len(human), "misfit": round(model.misfit_rate(human), 4)}

    user = TranscriptUser(folder)
    scenarios = [load_scenario(f) for f in shipped_scenarios()]
    live: list[tuple[str, str]] = []
    started = time.perf_counter()
    for scenario in scenarios:
        env = ScenarioEnv(scenario, user=user)
        for rate in (0.0, 0.3):
            for seed in range(seeds):
                trajectory, _ = run_episode(env, ScriptedAgent(rate), seed=seed)
                live.extend(_pairs(trajectory.messages))
    flagged = [(a, r) for a, r in live if model.misfit(a, r)]
    result["live"] = {
        "episodes": len(scenarios) * 2 * seeds,
        "pairs": len(live),
        "misfit": round(len(flagged) / max(1, len(live)), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "examples": [f"{a[-80:]!r} -> {r[:80]!r}" for a, r in flagged[:8]],
    }
    wizard = [a for a, _ in human]
    rng = np.random.default_rng(0)
    chosen = [wizard[int(i)] for i in rng.choice(len(wizard), size=min(probes, len(wizard)), replace=False)]
    probe_pairs = []
    for i, agent_turn in enumerate(chosen):
        scenario = scenarios[i % len(scenarios)]
        user.reset(scenario, np.random.default_rng(i))
        probe_pairs.append((agent_turn, user.reply(agent_turn, [{"role": "assistant", "content": agent_turn}]).text))
    flagged = [(a, r) for a, r in probe_pairs if model.misfit(a, r)]
    result["probes"] = {
        "pairs": len(probe_pairs),
        "misfit": round(len(flagged) / max(1, len(probe_pairs)), 4),
        "examples": [f"{a[-80:]!r} -> {r[:80]!r}" for a, r in flagged[:8]],
    }
    stats = getattr(user, "stats", None)
    if stats is not None:
        result["user_stats"] = dict(Counter(stats))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", type=int, nargs="?", default=3, help="Episode seeds per scenario and error rate.")
    parser.add_argument("probes", type=int, nargs="?", default=300, help="Wizard turns probed.")
    parser.add_argument("--json", action="store_true", help="Accepted for scripts: the output is one JSON object.")
    args = parser.parse_args()
    main(args.seeds, args.probes)
