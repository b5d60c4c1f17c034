"""Environment overhead on a retail world of 500+ customers and 1,000+ orders.

Prints the median microseconds of ``reset()``, of a tool-call ``step()`` and of the reward at
the end of an episode (replaying the expected actions on a fresh world and comparing state
hashes, plus the other components), and, as a reference, the median of a plain
``copy.deepcopy`` reset of the same world's state model, with the ratio. The last line is one
JSON object.

It also times generating each toolkit's ``default`` fixture world from a seed (what a scenario
with ``world: {fixture: default}`` costs once per seed, before it is cached), median of
``--fixture-repeats`` seeds.

Run: ``python bench/env_overhead.py [--repeats N] [--fixture-repeats N]``
Targets: step <= 30 us, reset <= 500 us, reward <= 1000 us, a default fixture <= 500 ms.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from collections.abc import Callable

from envsim.env import ScenarioEnv
from envsim.scenario import Scenario
from envsim.toolkits import fixture_world, get_toolkit, toolkit_names


def _scenario(order_id: str, delivered_id: str) -> Scenario:
    return Scenario.model_validate(
        {
            "id": "BenchRetail",
            "domain": "retail",
            "description": "Cancel a pending order and refund a delivered one.",
            "toolkits": ["retail"],
            "world": {"fixture": "default", "seed": 0},
            "agent": {"guidelines": "Help the customer."},
            "user": {"goal": "Cancel and refund.", "opening": "Hi."},
            "expected": {
                "actions": [
                    {"name": "get_order", "arguments": {"order_id": order_id}},
                    {"name": "cancel_order", "arguments": {"order_id": order_id, "reason": "no_longer_needed"}},
                    {"name": "refund_order", "arguments": {"order_id": delivered_id, "reason": "damaged"}},
                ],
                "required_statements": ["cancelled"],
            },
            "max_turns": 500,
        }
    )


def _step_medians_us(env: ScenarioEnv, action: str, episodes: int, steps: int) -> float:
    """Median of single ``step()`` calls taken inside episodes of ``steps`` steps each."""
    samples = []
    for _ in range(episodes):
        env.reset(seed=0)
        for _ in range(steps):
            start = time.perf_counter_ns()
            env.step(action)
            samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def _median_us(fn: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None) -> float:
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def _fixture_ms(repeats: int) -> dict[str, float]:
    """Median milliseconds of generating each toolkit's ``default`` fixture (uncached), over ``repeats`` seeds."""
    timings = {}
    for name in toolkit_names():
        make = get_toolkit(name).fixtures.get("default")
        if make is None:
            continue
        runs = []
        for seed in range(repeats):
            start = time.perf_counter()
            make(seed)
            runs.append(1e3 * (time.perf_counter() - start))
        timings[name] = statistics.median(runs)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--fixture-repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="The last line is one JSON object (always).")
    args = parser.parse_args()

    base = fixture_world("retail", "default", 0)
    orders = base.to_dict()["orders"]
    pending = next(k for k, o in orders.items() if o["status"] == "pending")
    delivered = next(k for k, o in orders.items() if o["status"] == "delivered")
    n_customers, n_orders = len(base.to_dict()["customers"]), len(orders)
    assert n_customers >= 500 and n_orders >= 1000, (n_customers, n_orders)

    env = ScenarioEnv(_scenario(pending, delivered))
    env.reset(seed=0)
    get_order = json.dumps({"name": "get_order", "arguments": {"order_id": pending}})
    cancel = json.dumps({"name": "cancel_order", "arguments": {"order_id": pending, "reason": "no_longer_needed"}})

    reset_us = _median_us(lambda: env.reset(seed=0), args.repeats, setup=lambda: env.step(cancel))
    customer = orders[pending]["customer_id"]
    get_customer = json.dumps({"name": "get_customer", "arguments": {"customer_id": customer}})
    step_us = _step_medians_us(env, get_order, args.repeats // 20, 20)
    simple_step_us = _step_medians_us(env, get_customer, args.repeats // 20, 20)
    write_step_us = _median_us(lambda: env.step(cancel), args.repeats, setup=lambda: env.reset(seed=0))

    context = env._reward_context

    def finish_episode() -> None:
        env.reset(seed=0)
        env.step(cancel)
        context._expected_hash = None  # measure the replay too, not the per-scenario cache

    reward_us = _median_us(
        lambda: env.rubric.evaluate(env.trajectory(), context), args.repeats // 4, setup=finish_episode
    )

    def forget() -> None:
        context._expected_hash = None

    replay_us = _median_us(context.expected_final_hash, args.repeats // 4, setup=forget)

    state = get_toolkit("retail").fixtures["default"](0)
    deepcopy_us = _median_us(lambda: copy.deepcopy(state), 20)

    print(f"retail world: {n_customers} customers, {n_orders} orders ({args.repeats} repeats, medians)")
    print(f"reset()                      {reset_us:10.1f} us   (target <= 500)")
    print(f"step(), get_order (joins)    {step_us:10.1f} us   (target <= 30)")
    print(f"step(), get_customer         {simple_step_us:10.1f} us")
    print(f"step(), cancel_order (write) {write_step_us:10.1f} us")
    print(f"reward (all components)      {reward_us:10.1f} us   (target <= 1000)")
    print(f"  of which replay + hash     {replay_us:10.1f} us")
    print(f"deepcopy reset (reference)   {deepcopy_us:10.1f} us   = {deepcopy_us / reset_us:,.0f}x our reset")
    fixture_ms = _fixture_ms(args.fixture_repeats)
    for name, ms in fixture_ms.items():
        print(f"default fixture, {name:<16} {ms:10.1f} ms   (target <= 500)")
    print(
        json.dumps(
            {
                "fixture_ms": {name: round(ms, 1) for name, ms in fixture_ms.items()},
                "step_us": round(step_us, 2),
                "simple_step_us": round(simple_step_us, 2),
                "write_step_us": round(write_step_us, 2),
                "reset_us": round(reset_us, 2),
                "reward_us": round(reward_us, 2),
                "replay_us": round(replay_us, 2),
                "deepcopy_reset_us": round(deepcopy_us, 2),
                "deepcopy_over_reset": round(deepcopy_us / reset_us, 1),
                "customers": n_customers,
                "orders": n_orders,
            }
        )
    )


if __name__ == "__main__":
    main()
