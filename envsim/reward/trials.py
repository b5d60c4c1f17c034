"""Repeated trials: pass@k, pass^k and flakiness over k trials per scenario.

With ``n`` trials of a scenario of which ``c`` succeeded, the unbiased estimators over the
k-subsets of those trials are

- ``pass@k = 1 - C(n-c, k) / C(n, k)``: the chance that at least one of k trials succeeds
  (can the agent do it at all?);
- ``pass^k = C(c, k) / C(n, k)``: the chance that all k trials succeed (does it do it every
  time? tau-bench's reliability measure);

and the **flakiness** of a scenario is the pairwise disagreement rate ``2c(n-c) / (n(n-1))``:
the chance that two different trials disagree (0 when all agree, at most about 1/2); it is an
unbiased estimate of ``2p(1-p)``. Group by (scenario, seed) to measure how often *identical*
runs disagree.

Episodes whose outcome carries no reward (simulator faults, judge errors, infrastructure
errors) are not trials of the agent: :func:`trial_table` drops them, and a truncated episode
counts as a failure.

Example:
    >>> pass_at_k(10, 3, 1), pass_hat_k(10, 3, 1)
    (0.3, 0.3)
    >>> round(pass_at_k(10, 3, 5), 4), round(pass_hat_k(10, 3, 2), 4)
    (0.9167, 0.0667)
    >>> flakiness(4, 2)
    0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import pandas as pd

from envsim.reward.outcome import REWARD_CARRYING


def _check(n: int, c: int, k: int) -> None:
    if n < 1:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of trials n={n}, got k={k}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` trials with ``c`` successes: ``1 - C(n-c,k)/C(n,k)``."""
    _check(n, c, k)
    total = comb(n, k)
    return (total - comb(n - c, k)) / total


def pass_hat_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass^k from ``n`` trials with ``c`` successes: ``C(c,k)/C(n,k)``."""
    _check(n, c, k)
    return comb(c, k) / comb(n, k)


def flakiness(n: int, c: int) -> float:
    """The chance that two different trials of ``n`` (``c`` successes) disagree: ``2c(n-c) / (n(n-1))``."""
    if n < 2:
        raise ValueError(f"flakiness needs at least two trials, got n={n}")
    _check(n, c, 1)
    return 2 * c * (n - c) / (n * (n - 1))


def trial_table(frame: pd.DataFrame, *, outcome: str = "outcome", success: str = "success") -> pd.DataFrame:
    """``frame`` with the episodes that are trials of the agent, and a boolean ``success`` column.

    Episodes whose outcome carries no reward are dropped; success is ``outcome == "success"``.
    A frame that already has a ``success`` column (and no outcome column) is returned as is.

    Example:
        >>> frame = pd.DataFrame({"scenario_id": ["A", "A", "A"], "outcome": ["success", "sim_fault", "truncated"]})
        >>> trial_table(frame)[["outcome", "success"]].to_dict("list")
        {'outcome': ['success', 'truncated'], 'success': [True, False]}
    """
    if outcome not in frame.columns:
        if success not in frame.columns:
            raise ValueError(f"the table needs an {outcome!r} or a {success!r} column")
        return frame
    kept = frame[frame[outcome].isin(sorted(REWARD_CARRYING))].copy()
    kept[success] = kept[outcome] == "success"
    return kept


def summarize_trials(
    frame: pd.DataFrame,
    ks: Sequence[int] = (1,),
    *,
    by: str | Sequence[str] = "scenario_id",
    success: str = "success",
) -> pd.DataFrame:
    """Per group (by default per scenario): trials, successes, pass@k and pass^k for each k, flakiness.

    ``frame`` has one row per trial (e.g. columns scenario_id, seed or trial, success); an
    ``outcome`` column instead of ``success`` goes through :func:`trial_table` first. A k larger
    than a group's trials gives NaN there, and so does flakiness with fewer than two trials.

    Example:
        >>> frame = pd.DataFrame({"scenario_id": ["A"] * 4 + ["B"] * 4,
        ...                       "success": [True, True, False, True, True, True, True, True]})
        >>> summary = summarize_trials(frame, ks=(1, 2))
        >>> list(summary.columns)
        ['trials', 'successes', 'pass@1', 'pass^1', 'pass@2', 'pass^2', 'flakiness']
        >>> summary.loc["A", ["pass@2", "pass^2", "flakiness"]].to_dict()
        {'pass@2': 1.0, 'pass^2': 0.5, 'flakiness': 0.5}
    """
    if success not in frame.columns:
        frame = trial_table(frame, success=success)
    keys = [by] if isinstance(by, str) else list(by)
    if frame[success].dtype != bool:
        raise ValueError(f"column {success!r} must be boolean, got {frame[success].dtype}")
    grouped = frame.groupby(keys, sort=True)[success].agg(trials="size", successes="sum")
    rows: list[dict[str, float]] = []
    for n, c in zip(grouped["trials"].astype(int), grouped["successes"].astype(int), strict=True):
        row: dict[str, float] = {}
        for k in ks:
            row[f"pass@{k}"] = pass_at_k(n, c, k) if k <= n else float("nan")
            row[f"pass^{k}"] = pass_hat_k(n, c, k) if k <= n else float("nan")
        row["flakiness"] = flakiness(n, c) if n >= 2 else float("nan")
        rows.append(row)
    stats = pd.DataFrame(rows, index=grouped.index)
    return pd.concat([grouped.astype(int), stats], axis=1)


def overall(summary: pd.DataFrame) -> pd.Series:
    """The mean over groups (scenarios) of every figure of :func:`summarize_trials` but the counts.

    Example:
        >>> frame = pd.DataFrame({"scenario_id": ["A", "A", "B", "B"], "success": [True, False, True, True]})
        >>> overall(summarize_trials(frame, ks=(2,))).to_dict()
        {'pass@2': 1.0, 'pass^2': 0.5, 'flakiness': 0.5}
    """
    return summary.drop(columns=["trials", "successes"]).mean()
