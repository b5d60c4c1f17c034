"""Run reports: success, pass^k, reward components, outcomes, tokens and cost; a self-contained HTML page.

:func:`load_report` reads a run directory (without locking it: a run may still be generating)
and computes, per scenario, per persona and over the whole run:

- episodes stored, and the **trials** among them: episodes whose outcome carries a reward
  (success, failure, truncated); simulator faults, judge and infrastructure errors are counted
  under their outcome but are not trials of the agent;
- the success rate over trials, pass^k and pass@k (:mod:`envsim.reward.trials`; a scenario's
  trials are its episodes over every seed), the mean total reward and the mean score of each
  reward component over trials;
- outcome counts, tokens and cost (every role, retries included), mean turns.

The run's pass^k is the mean over scenarios with at least k trials (as tau-bench averages over
tasks).

:meth:`Report.html` renders a single HTML file with no external assets: the tables, inline SVG
charts drawn here (reward distribution, success by scenario and by persona, the mock user's
affect over the conversation) and every episode as a chat transcript with its tool calls and
reward breakdown, with a little inline JavaScript to filter them. Transcripts are untrusted
text: the page is rendered by a sandboxed jinja2 environment with autoescaping on, its templates
(``envsim/templates/report/``) never mark anything safe, and its script reads the page, never
writes markup.

Example:
    >>> stats = group_stats(pd.DataFrame({"outcome": ["success", "failure", "sim_fault"],
    ...                                   "carries_reward": [True, True, False], "reward": [1.0, 0.25, 1.0],
    ...                                   "total_tokens": [10, 20, 30], "cost": [0.0, 0.0, 0.0], "turns": [3, 4, 1]}),
    ...                     "all", ks=(1, 2))
    >>> stats.trials, stats.success_rate, stats.pass_hat_k, stats.mean_reward
    (2, 0.5, {'1': 0.5, '2': 0.0}, 0.625)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from envsim.batch.store import EpisodeRecord, Manifest, RunStore, record_row
from envsim.errors import EnvsimError
from envsim.errors import ReportError as ReportError  # envsim.report.ReportError (nothing here raises it)
from envsim.reward.trials import flakiness, pass_at_k, pass_hat_k

DEFAULT_KS = (1, 2, 4, 8)
"""The k of pass^k reported by default (those up to the largest number of trials of a scenario)."""

DEFAULT_MAX_EPISODES = 1000
"""Episodes rendered as transcripts in the HTML page by default (the tables count every episode)."""

OUTCOME_ORDER = ("success", "failure", "truncated", "judge_error", "reward_error", "sim_fault", "infra_error")
OUTCOME_COLORS = {
    "success": "#2e7d32",
    "failure": "#c62828",
    "truncated": "#ef6c00",
    "judge_error": "#6a1b9a",
    "reward_error": "#ad1457",
    "sim_fault": "#546e7a",
    "infra_error": "#8d6e63",
}
AFFECT_ORDER = ("relieved", "calm", "confused", "frustrated", "angry", "panicked")
"""Affects from at ease (bottom of the chart) to most upset (top)."""


class GroupStats(BaseModel):
    """The figures of a group of episodes: a scenario, a persona, or the whole run."""

    model_config = ConfigDict(extra="forbid")

    name: str
    persona: str | None = Field(None, description="The scenario's persona (scenario rows only).")
    episodes: int = Field(description="Stored episodes, every outcome.")
    trials: int = Field(description="Episodes whose outcome carries a reward.")
    successes: int
    success_rate: float | None = Field(description="Successes over trials.")
    pass_hat_k: dict[str, float | None] = Field(default_factory=dict, description="pass^k by k (None: too few trials).")
    pass_at_k: dict[str, float | None] = Field(default_factory=dict, description="pass@k by k.")
    flakiness: float | None = Field(None, description="Chance that two trials disagree (None: fewer than 2).")
    mean_reward: float | None = Field(description="Mean total reward over trials.")
    components: dict[str, float | None] = Field(default_factory=dict, description="Mean component score over trials.")
    outcomes: dict[str, int]
    tokens: int = Field(description="Tokens of every role (prompt + completion).")
    cost: float = Field(description="US dollars, every role.")
    mean_turns: float | None


class RunReport(BaseModel):
    """What ``envsim report --json`` prints: the run's figures by scenario, by persona and overall."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str
    created_at: str
    config: dict[str, Any]
    planned: int
    stored: int
    outcomes: dict[str, int]
    ks: list[int]
    components: list[str] = Field(description="Reward components seen in the run.")
    scenarios: list[GroupStats]
    personas: list[GroupStats]
    overall: GroupStats
    html: str | None = None


def _mean(values: pd.Series) -> float | None:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return float(numbers.mean()) if len(numbers) else None


def group_stats(
    frame: pd.DataFrame, name: str, *, ks: Sequence[int] = DEFAULT_KS, components: Sequence[str] = ()
) -> GroupStats:
    """The figures of the episodes in ``frame`` (columns of :func:`envsim.batch.store.record_row`)."""
    trials = frame[frame["carries_reward"].astype(bool)]
    n = len(trials)
    c = int((trials["outcome"] == "success").sum())
    counts = frame["outcome"].value_counts()
    outcomes = {o: int(counts[o]) for o in OUTCOME_ORDER if o in counts}
    return GroupStats(
        name=name,
        episodes=len(frame),
        trials=n,
        successes=c,
        success_rate=c / n if n else None,
        pass_hat_k={str(k): pass_hat_k(n, c, k) if 1 <= k <= n else None for k in ks},
        pass_at_k={str(k): pass_at_k(n, c, k) if 1 <= k <= n else None for k in ks},
        flakiness=flakiness(n, c) if n >= 2 else None,
        mean_reward=_mean(trials["reward"]) if n else None,
        components={
            comp: _mean(trials[f"reward_{comp}"]) if n and f"reward_{comp}" in trials else None for comp in components
        },
        outcomes=outcomes,
        tokens=int(pd.to_numeric(frame["total_tokens"], errors="coerce").fillna(0).sum()),
        cost=float(pd.to_numeric(frame["cost"], errors="coerce").fillna(0).sum()),
        mean_turns=_mean(frame["turns"]),
    )


def _personas(manifest: Manifest) -> dict[str, str]:
    """The persona of each scenario of the run (from its file; ``?`` when it cannot be read)."""
    from envsim.loader import load_scenario
    from envsim.registration import load_registered

    found: dict[str, str] = {}
    for source in manifest.scenarios:
        try:
            path = Path(source.path)
            scenario = load_scenario(path, lint=False) if path.is_file() else load_registered(source.id)
        except EnvsimError:
            found[source.id] = "?"
            continue
        spec = scenario.user.persona
        found[source.id] = spec.ref or (spec.inline.name if spec.inline is not None else "?")
    return found


@dataclass
class Report:
    """A run's stored episodes and its figures; :meth:`html` renders the page."""

    summary: RunReport
    manifest: Manifest
    records: list[EpisodeRecord]
    personas: dict[str, str]
    frame: pd.DataFrame

    def html(self, *, max_episodes: int = DEFAULT_MAX_EPISODES) -> str:
        """The self-contained HTML report (at most ``max_episodes`` transcripts, in plan order)."""
        return render_html(self, max_episodes=max_episodes)

    def write_html(self, path: str | Path, *, max_episodes: int = DEFAULT_MAX_EPISODES) -> Path:
        """Write :meth:`html` to ``path`` (folders created); records the path in the summary."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(max_episodes=max_episodes), encoding="utf-8")
        self.summary.html = str(path)
        return path


def load_report(run_dir: str | Path, *, ks: Sequence[int] | None = None) -> Report:
    """Read ``run_dir`` and compute its figures (see the module docstring)."""
    with RunStore.open(Path(run_dir), lock=False) as store:
        manifest = store.read_manifest()
        plan = store.read_plan()
        records_by_id = store.scan().records
    order = {spec.episode_id: i for i, spec in enumerate(plan)}
    records = sorted(records_by_id.values(), key=lambda r: (order.get(r.episode_id, len(order)), r.episode_id))
    personas = _personas(manifest)
    rows = [record_row(r) for r in records]
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=["scenario_id", "outcome", "carries_reward", "reward", "total_tokens", "cost"])
        frame["turns"] = []
    frame["persona"] = [personas.get(r.scenario_id, "?") for r in records]
    components = sorted(c.removeprefix("reward_") for c in frame.columns if c.startswith("reward_"))
    trials_per_scenario = frame[frame["carries_reward"].astype(bool)].groupby("scenario_id").size()
    most = int(trials_per_scenario.max()) if len(trials_per_scenario) else 0
    chosen = sorted({k for k in (ks or DEFAULT_KS) if k >= 1})
    if ks is None:
        chosen = [k for k in chosen if k <= max(most, 1)]
    scenarios: list[GroupStats] = []
    for scenario_id in [s.id for s in manifest.scenarios] + sorted(set(frame["scenario_id"]) - set(personas)):
        part = frame[frame["scenario_id"] == scenario_id]
        stats = group_stats(part, scenario_id, ks=chosen, components=components)
        stats.persona = personas.get(scenario_id, "?")
        scenarios.append(stats)
    by_persona = [
        group_stats(frame[frame["persona"] == p], p, ks=chosen, components=components)
        for p in sorted(set(frame["persona"]))
    ]
    overall = group_stats(frame, "all", ks=chosen, components=components)
    for k in chosen:  # the run's pass^k and pass@k: the mean over scenarios with at least k trials
        hat = [s.pass_hat_k[str(k)] for s in scenarios if s.pass_hat_k.get(str(k)) is not None]
        at = [s.pass_at_k[str(k)] for s in scenarios if s.pass_at_k.get(str(k)) is not None]
        overall.pass_hat_k[str(k)] = sum(v for v in hat if v is not None) / len(hat) if hat else None
        overall.pass_at_k[str(k)] = sum(v for v in at if v is not None) / len(at) if at else None
    summary = RunReport(
        run_dir=str(Path(run_dir).resolve()),
        created_at=manifest.created_at,
        config=manifest.config.model_dump(),
        planned=len(plan),
        stored=len(records),
        outcomes=overall.outcomes,
        ks=chosen,
        components=components,
        scenarios=scenarios,
        personas=by_persona,
        overall=overall,
    )
    return Report(summary, manifest, records, personas, frame)


# -- charts (geometry here, drawing in the template) ---------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def histogram_chart(frame: pd.DataFrame, bins: int = 10) -> dict[str, Any]:
    """Reward distribution of the trials: ``bins`` bins over [0, 1], stacked by outcome."""
    width, height, left, bottom, top = 560.0, 220.0, 40.0, 30.0, 10.0
    right_margin = 24.0
    trials = frame[frame["carries_reward"].astype(bool)]
    rewards = pd.to_numeric(trials["reward"], errors="coerce")
    low = min(0.0, float(rewards.min())) if rewards.notna().any() else 0.0
    high = max(1.0, float(rewards.max())) if rewards.notna().any() else 1.0
    span = (high - low) or 1.0
    counts: list[dict[str, int]] = [{} for _ in range(bins)]
    for reward, outcome in zip(rewards, trials["outcome"], strict=True):
        if math.isnan(reward):
            continue
        index = min(bins - 1, int((reward - low) / span * bins))
        counts[index][outcome] = counts[index].get(outcome, 0) + 1
    peak = max([sum(c.values()) for c in counts] + [1])
    plot_w, plot_h = width - left - right_margin, height - bottom - top
    bar_w = plot_w / bins
    rects: list[dict[str, Any]] = []
    for i, bucket in enumerate(counts):
        y = top + plot_h
        lo, hi = low + span * i / bins, low + span * (i + 1) / bins
        for outcome in OUTCOME_ORDER:
            n = bucket.get(outcome, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            rects.append(
                {
                    "x": f"{left + i * bar_w + 1:.1f}",
                    "y": f"{y:.1f}",
                    "w": f"{bar_w - 2:.1f}",
                    "h": f"{h:.1f}",
                    "color": OUTCOME_COLORS[outcome],
                    "title": f"reward {lo:.2f}–{hi:.2f}: {n} {outcome}",
                }
            )
    x_ticks = [{"x": f"{left + plot_w * j / 4:.1f}", "label": f"{low + span * j / 4:.2f}"} for j in range(5)]
    y_ticks = [{"y": f"{top + plot_h - plot_h * v / peak:.1f}", "label": str(v)} for v in sorted({0, peak // 2, peak})]
    present = [o for o in OUTCOME_ORDER if any(o in c for c in counts)]
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": top + plot_h,
        "right": left + plot_w,
        "rects": rects,
        "x_ticks": x_ticks,
        "y_ticks": y_ticks,
        "legend": [{"label": o, "color": OUTCOME_COLORS[o]} for o in present],
        "empty": not rects,
    }


def bar_chart(groups: Sequence[GroupStats]) -> dict[str, Any]:
    """Success rate per group (horizontal bars, 0–100%), with successes/trials as text."""
    width, label_w, row_h = 560.0, 235.0, 24.0
    plot_w = width - label_w - 90
    rows: list[dict[str, Any]] = []
    for i, group in enumerate(groups):
        rate = group.success_rate
        label = group.name if len(group.name) <= 34 else group.name[:33] + "…"
        rows.append(
            {
                "y": f"{i * row_h + 4:.1f}",
                "text_y": f"{i * row_h + 17:.1f}",
                "label": label,
                "title": f"{group.name}: {group.successes}/{group.trials} trials succeeded",
                "w": f"{plot_w * (rate or 0.0):.1f}",
                "value": f"{_pct(rate)} ({group.successes}/{group.trials})",
            }
        )
    return {
        "width": width,
        "height": max(row_h * len(rows) + 8, 30),
        "label_w": label_w,
        "plot_w": plot_w,
        "value_x": f"{label_w + plot_w + 6:.1f}",
        "rows": rows,
        "empty": not rows,
    }


def _jitter(key: str) -> float:
    return (int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) / 0xFFFF - 0.5) * 0.3


def affect_chart(records: Sequence[EpisodeRecord], limit: int = 400) -> dict[str, Any]:
    """The mock user's affect after each user turn, one line per episode (coloured by outcome)."""
    width, height, left, top, bottom = 560.0, 220.0, 80.0, 10.0, 30.0
    right_margin = 16.0
    with_affects = [r for r in records if r.trajectory.affects][:limit]
    longest = max([len(r.trajectory.affects) for r in with_affects] + [2])
    plot_w, plot_h = width - left - right_margin, height - top - bottom
    levels = {a: i for i, a in enumerate(AFFECT_ORDER)}
    step_y = plot_h / (len(AFFECT_ORDER) - 1)

    def x_of(turn: int) -> float:
        return left + plot_w * turn / (longest - 1)

    lines: list[dict[str, Any]] = []
    for record in with_affects:
        jitter = _jitter(record.episode_id)
        points = [
            f"{x_of(t):.1f},{top + plot_h - step_y * (levels.get(a, 1) + jitter):.1f}"
            for t, a in enumerate(record.trajectory.affects)
        ]
        lines.append(
            {
                "points": " ".join(points),
                "color": OUTCOME_COLORS.get(record.outcome, "#555"),
                "title": f"{record.episode_id[:12]} {record.scenario_id}: {' → '.join(record.trajectory.affects)}",
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "bottom": top + plot_h,
        "right": left + plot_w,
        "levels": [{"y": f"{top + plot_h - step_y * i:.1f}", "label": a} for i, a in enumerate(AFFECT_ORDER)],
        "x_ticks": [{"x": f"{x_of(t):.1f}", "label": str(t)} for t in range(longest)],
        "lines": lines,
        "shown": len(lines),
        "total": sum(1 for r in records if r.trajectory.affects),
        "empty": not lines,
    }


# -- episodes as transcripts ---------------------------------------------------------------------


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        value = parsed
    return json.dumps(value, ensure_ascii=False, indent=2)


def episode_view(record: EpisodeRecord, persona: str) -> dict[str, Any]:
    """What the template shows of one episode (plain strings; the template escapes them)."""
    trajectory = record.trajectory
    names: dict[str, str] = {}
    messages: list[dict[str, Any]] = []
    user_turn = 0
    for message in trajectory.messages:
        role = str(message.get("role", "?"))
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            names[str(call.get("id", ""))] = str(function.get("name", ""))
            calls.append({"name": str(function.get("name", "")), "arguments": _pretty(function.get("arguments", ""))})
        content = message.get("content")
        view: dict[str, Any] = {"role": role, "content": "" if content is None else str(content)}
        view["calls"] = calls
        view["tool"] = names.get(str(message.get("tool_call_id", "")), "") if role == "tool" else ""
        view["affect"] = ""
        if role == "user":
            if user_turn < len(trajectory.affects):
                view["affect"] = trajectory.affects[user_turn]
            user_turn += 1
        messages.append(view)
    components: list[dict[str, Any]] = []
    breakdown = record.breakdown
    if breakdown is not None:
        for name, part in breakdown.components.items():
            components.append(
                {
                    "name": name,
                    "score": _fmt(part.score) if part.judged else part.shown(),
                    "weight": _fmt(part.weight),
                    "gate": "gate" if part.gate else "",
                    "held": ("held" if breakdown.gates.get(name, True) else "failed") if part.ran else "not applied",
                    "explanation": part.explanation,
                }
            )
    measured = breakdown.measures if breakdown is not None else {}
    measures = [(k, _fmt(v) if v is None or isinstance(v, float) else str(v)) for k, v in measured.items()]
    usage = [
        {"role": role, "tokens": u.total_tokens, "cost": f"{u.cost:.4f}", "calls": u.calls}
        for role, u in record.usage.items()
    ]
    return {
        "id": record.episode_id,
        "scenario": record.scenario_id,
        "persona": persona,
        "seed": record.seed,
        "outcome": record.outcome,
        "color": OUTCOME_COLORS.get(record.outcome, "#555"),
        "reward": _fmt(record.reward),
        "end_reason": trajectory.end_reason,
        "turns": trajectory.turns,
        "models": ", ".join(f"{k}: {v}" for k, v in record.models.items() if v) or "scripted",
        "messages": messages,
        "components": components,
        "measures": measures,
        "usage": usage,
        "error": record.error or "",
        "fault": trajectory.fault or "",
        "infra_error": trajectory.infra_error or "",
        "affects": " → ".join(trajectory.affects),
    }


def _stats_row(stats: GroupStats, ks: Sequence[int], components: Sequence[str]) -> dict[str, Any]:
    return {
        "name": stats.name,
        "persona": stats.persona or "",
        "episodes": stats.episodes,
        "trials": stats.trials,
        "success": _pct(stats.success_rate),
        "pass_hat": [_fmt(stats.pass_hat_k.get(str(k))) for k in ks],
        "reward": _fmt(stats.mean_reward),
        "components": [_fmt(stats.components.get(c)) for c in components],
        "outcomes": ", ".join(f"{k} {v}" for k, v in stats.outcomes.items()),
        "tokens": f"{stats.tokens:,}",
        "cost": f"${stats.cost:.4f}",
        "turns": _fmt(stats.mean_turns, 1),
    }


@lru_cache(maxsize=1)
def html_environment() -> SandboxedEnvironment:
    """The jinja2 environment of HTML reports: sandboxed, autoescaping everything, strict about names."""
    return SandboxedEnvironment(
        loader=PackageLoader("envsim", "templates/report"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report, *, max_episodes: int = DEFAULT_MAX_EPISODES) -> str:
    """The self-contained HTML page of ``report`` (see the module docstring)."""
    summary = report.summary
    shown = report.records[: max(0, max_episodes)]
    config = {k: v for k, v in summary.config.items() if v not in (None, "")}
    context = {
        "title": f"envsim report: {Path(summary.run_dir).name}",
        "summary": summary,
        "config": sorted((k, str(v)) for k, v in config.items() if k != "judge_rubric_hash"),
        "ks": summary.ks,
        "components": summary.components,
        "scenarios": [_stats_row(s, summary.ks, summary.components) for s in summary.scenarios],
        "personas": [_stats_row(s, summary.ks, summary.components) for s in summary.personas],
        "overall": _stats_row(summary.overall, summary.ks, summary.components),
        "histogram": histogram_chart(report.frame),
        "by_scenario": bar_chart(summary.scenarios),
        "by_persona": bar_chart(summary.personas),
        "affects": affect_chart(report.records),
        "episodes": [episode_view(r, report.personas.get(r.scenario_id, "?")) for r in shown],
        "episodes_total": len(report.records),
        "outcome_options": [o for o in OUTCOME_ORDER if o in summary.outcomes],
        "scenario_options": [s.name for s in summary.scenarios if s.episodes],
        "persona_options": [p.name for p in summary.personas],
        "outcome_colors": OUTCOME_COLORS,
    }
    return html_environment().get_template("report.html.j2").render(**context)
