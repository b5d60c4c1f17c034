"""Scenario factory throughput: verified scenarios per second per core, from every shipped family.

Runs ``envsim scenarios generate`` in-process over all shipped families (``--count`` verified
instances each, into a temporary folder), and reports the verified scenarios per CPU-second
(this process and its worker processes: per core), the wall time, the counts per toolkit and
family and the gate's drops by reason. The figure includes everything one command does: loading
and checking the families, building their worlds (each fixture world once per process),
drawing, rendering, validating, the whole gate (lint and replay, the reference, do-nothing and
trap episodes) and writing the files atomically.

A second run in the same process with another seed (``warm``: the worlds already built) shows
the steady-state rate without the one-off world building.

The suite is written into a temporary folder (under ``--out-parent`` if given), removed afterwards.
Creating a file costs what the file system makes it cost at the time (on a shared virtual disk it
varies from tens to hundreds of microseconds of system CPU), and that CPU time is in the figure, so
the bench also reports ``file_create_us``: the CPU microseconds one atomic write of a small file
took in that folder just before the run.

Run: ``python bench/scenario_factory.py [--count 80] [--seed 0] [--workers 1] [--no-warm] [--out-parent DIR] [--json]``
Targets: >= 3,000 verified scenarios from one command; >= 200 verified scenarios per second per core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from envsim.factory.generate import SuiteResult, family_dirs, generate_suite, resolve_families
from envsim.fileio import write_atomic
from envsim.toolkits import toolkit_names

TARGET_PER_CORE = 200.0
TARGET_TOTAL = 3000


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _file_create_us(parent: Path, files: int = 300) -> float:
    """CPU microseconds per atomic write of a small file in a new folder under ``parent``."""
    with tempfile.TemporaryDirectory(prefix=".bench-files-", dir=parent) as tmp:
        cpu = _cpu()
        for i in range(files):
            write_atomic(Path(tmp) / f"f{i}.yaml", "x" * 2000, durable=False)
        return (_cpu() - cpu) / files * 1e6


def _run(families: list[Path], count: int, seed: int, workers: int, parent: Path) -> tuple[SuiteResult, float, float]:
    with tempfile.TemporaryDirectory(prefix=".bench-factory-", dir=parent) as tmp:
        cpu, wall = _cpu(), time.perf_counter()
        result = generate_suite(families, count=count, seed=seed, out=Path(tmp) / "suite", workers=workers)
        return result, _cpu() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=80, help="Verified instances per family.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-warm", action="store_true", help="Skip the second (warm) run.")
    parser.add_argument("--out-parent", type=Path, default=None, help="Where the temporary suite folder goes.")
    parser.add_argument("--json", action="store_true", help="The last line is one JSON object (always).")
    args = parser.parse_args()
    parent = args.out_parent or Path(tempfile.gettempdir())
    file_us = _file_create_us(parent)

    kits = [k for k in toolkit_names() if any((d / k).is_dir() for d in family_dirs())]
    families = resolve_families(kits)
    result, cpu, wall = _run(families, args.count, args.seed, args.workers, parent)
    data = result.manifest
    total = data["counts"]["total"]
    rate = total / cpu if cpu > 0 else 0.0
    print(f"families: {len(families)} over {', '.join(kits)}; --count {args.count}, --workers {args.workers}")
    print(f"suite written under {parent.resolve()}: {file_us:.0f} CPU-us per file written there")
    for family, info in data["families"].items():
        drops = ", ".join(f"{k} {v}" for k, v in info["drops"].items()) or "none"
        print(f"  {family:45s} {info['kept']:5d} kept / {info['draws']:5d} draws  drops: {drops}")
    print(f"per toolkit: {data['counts']['per_toolkit']}")
    print(f"drops: {{{', '.join(f'{k}: {v}' for k, v in data['drops'].items())}}}")
    print(
        f"one command: {total} verified scenarios in {wall:.1f} s wall, {cpu:.1f} CPU-s -> {rate:.0f} per second per "
        f"core (target {TARGET_PER_CORE:.0f}: ratio {rate / TARGET_PER_CORE:.2f}); ratio to {TARGET_TOTAL}: "
        f"{total / TARGET_TOTAL:.2f}"
    )
    payload: dict[str, Any] = {
        "families": len(families),
        "count": args.count,
        "workers": args.workers,
        "scenarios": total,
        "per_toolkit": data["counts"]["per_toolkit"],
        "per_family": data["counts"]["per_family"],
        "drops": data["drops"],
        "wall_s": round(wall, 2),
        "out_parent": str(parent.resolve()),
        "file_create_us": round(file_us, 1),
        "cpu_s": round(cpu, 2),
        "per_second_per_core": round(rate, 1),
        "ratio_per_core": round(rate / TARGET_PER_CORE, 3),
        "ratio_total": round(total / TARGET_TOTAL, 3),
    }
    if not args.no_warm:
        warm, warm_cpu, warm_wall = _run(families, args.count, args.seed + 1, args.workers, parent)
        warm_total = warm.manifest["counts"]["total"]
        warm_rate = warm_total / warm_cpu if warm_cpu > 0 else 0.0
        print(
            f"warm (worlds built): {warm_total} in {warm_wall:.1f} s wall, {warm_cpu:.1f} CPU-s -> {warm_rate:.0f} per "
            f"second per core (ratio {warm_rate / TARGET_PER_CORE:.2f})"
        )
        payload["warm_per_second_per_core"] = round(warm_rate, 1)
        payload["warm_ratio_per_core"] = round(warm_rate / TARGET_PER_CORE, 3)
    print(json.dumps(payload, sort_keys=True))


if __name__ == "__main__":
    main()
