"""Step time for very long agent messages: 100,000, 1,000,000 and 10,000,000 characters.

A message goes to the mock user (the scripted user, which classifies the turn: affect, questions,
details asked for); a step should cost about the same whatever the message's length. For each
length and each shape of text (prose with questions and requests, one unbroken run of letters,
questions only) it prints the median milliseconds of one ``step()`` (fresh text each time, so
no per-message cache helps), the ratio to the 10 ms target, and the milliseconds of the reward
computed on the episode with that message (the claims checker reads every agent message in full).
A message longer than the action space (1,000,000 characters) is a malformed action. The last
line is one JSON object.

Run: ``python bench/long_message.py [--repeats N] [--lengths 100000,1000000,10000000]``
Target: step <= 10 ms at 100,000 characters (and flat beyond: the user reads the first 10,000).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from envsim.env import ScenarioEnv

TARGET_MS = 10.0
SCENARIO = "MedicalSupplyPanicCaller"

SHAPES: dict[str, Callable[[int], str]] = {
    "prose": lambda i: (
        f"I'm sorry to hear that ({i}). Could you confirm your phone number and date of birth? "
        "I need your account number as well please. Your order was refunded last week. "
    ),
    "unbroken": lambda i: f"a{i}",
    "questions": lambda i: f"what is item {i}? ",
}


def _message(shape: str, length: int, salt: int) -> str:
    """``length`` characters of ``shape``, different for each ``salt``."""
    unit = SHAPES[shape](salt)
    return (unit * (length // len(unit) + 1))[:length]


def _step_ms(env: ScenarioEnv, shape: str, length: int, repeats: int) -> tuple[float, float]:
    """Median milliseconds of a step with the message, and of the reward afterwards."""
    steps, rewards = [], []
    for salt in range(repeats):
        message = _message(shape, length, salt)
        env.reset(seed=salt)
        start = time.perf_counter()
        env.step(message)
        steps.append(1e3 * (time.perf_counter() - start))
        start = time.perf_counter()
        env.score()
        rewards.append(1e3 * (time.perf_counter() - start))
    return statistics.median(steps), statistics.median(rewards)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lengths", default="100000,1000000,10000000", help="comma-separated message lengths")
    parser.add_argument("--json", action="store_true", help="The last line is one JSON object (always).")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]

    env = ScenarioEnv(SCENARIO)
    env.reset(seed=0)
    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"{SCENARIO}, scripted user, median of {args.repeats} steps (target <= {TARGET_MS:g} ms per step)")
    print(f"{'characters':>12} {'shape':<10} {'step ms':>9} {'x target':>9} {'reward ms':>10}")
    for length in lengths:
        for shape in SHAPES:
            step_ms, reward_ms = _step_ms(env, shape, length, args.repeats)
            results.setdefault(str(length), {})[shape] = {
                "step_ms": round(step_ms, 3),
                "over_target": round(step_ms / TARGET_MS, 3),
                "reward_ms": round(reward_ms, 3),
            }
            print(f"{length:>12,} {shape:<10} {step_ms:9.2f} {step_ms / TARGET_MS:9.2f} {reward_ms:10.2f}")
    print(json.dumps({"target_ms": TARGET_MS, "scenario": SCENARIO, "repeats": args.repeats, "results": results}))


if __name__ == "__main__":
    main()
