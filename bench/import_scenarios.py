"""``import envsim`` with thousands of scenario files in ``ENVSIM_SCENARIOS``.

Writes ``--files`` copies of a shipped scenario (each with its own id, in folders of 500, as a
generated suite would) to a temporary folder, then times ``python -c "import envsim"`` in a fresh
interpreter with ``ENVSIM_SCENARIOS`` pointing there, and without it (the shipped scenarios
only), best of ``--repeats`` each. It checks that every file was registered and none was left
out. The last line is one JSON object.

Run: ``python bench/import_scenarios.py [--files N] [--repeats N]``
Target: ``import envsim`` with 5,000 scenario files <= 1 s (ratio <= 1.00).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.0
PROBE = (
    "import warnings, gymnasium as gym; warnings.simplefilter('error'); import envsim; "
    "print(sum(k.startswith('envsim/') for k in gym.registry))"
)


def _write_suite(folder: Path, files: int) -> None:
    """``files`` valid scenario files, identical but for their ids (copies of a shipped scenario)."""
    from envsim.registration import discover

    text = discover()["MedicalSupplyPanicCaller"][0].read_text(encoding="utf-8")
    original = next(line for line in text.splitlines() if line.startswith("id:"))
    for i in range(files):
        part = folder / f"part{i // 500:03d}"
        part.mkdir(exist_ok=True)
        (part / f"generated_{i:05d}.yaml").write_text(text.replace(original, f"id: Generated{i:05d}"), "utf-8")


def _best_import(env: dict[str, str], repeats: int) -> tuple[float, int]:
    """Best wall time of a fresh ``import envsim``, and how many envsim ids it registered."""
    best, registered = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        registered = int(result.stdout.strip())
    return best, registered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="The last line is one JSON object (always).")
    args = parser.parse_args()
    plain = {k: v for k, v in os.environ.items() if k != "ENVSIM_SCENARIOS"}
    with tempfile.TemporaryDirectory() as tmp:
        _write_suite(Path(tmp), args.files)
        baseline_s, shipped = _best_import(plain, args.repeats)
        suite_s, registered = _best_import({**plain, "ENVSIM_SCENARIOS": tmp}, args.repeats)
    if registered != shipped + args.files:
        raise SystemExit(f"registered {registered} scenarios, expected {shipped} shipped + {args.files} generated")
    ratio = suite_s / TARGET_S
    print(f"import envsim, shipped scenarios only ({shipped}): {baseline_s * 1000:.0f} ms")
    print(f"import envsim, + {args.files} scenario files: {suite_s * 1000:.0f} ms (target {TARGET_S:.1f} s)")
    print(f"ratio to target: {ratio:.2f} ({'meets' if ratio <= 1 else 'misses'} it)")
    print(
        json.dumps(
            {
                "files": args.files,
                "registered": registered,
                "baseline_s": round(baseline_s, 4),
                "import_s": round(suite_s, 4),
                "target_s": TARGET_S,
                "ratio": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
