"""The live progress bar of ``envsim generate``: episodes done, in flight, success, reward, tokens, cost, ETA.

The bar is redrawn a few times a second from :class:`~envsim.batch.runner.RunStats` and the
model-call totals (:class:`~envsim.batch.cache.CallStats`) by a task of the run's event loop, so
its cost does not grow with the number of episodes. It is shown on a terminal only.

Example:
    >>> from envsim.batch.cache import CallStats
    >>> from envsim.llm import UsageMeter
    >>> from envsim.batch.runner import RunStats
    >>> stats = RunStats(planned=10, todo=10, stored=4, in_flight=2)
    >>> stats.outcomes.update({"success": 3, "failure": 1}); stats.reward_sum, stats.reward_count = 3.5, 4
    >>> status_line(stats, CallStats(usage=UsageMeter(prompt_tokens=1200, completion_tokens=300, cost=0.0123)))
    'in flight 2 · success 75.0% · reward 0.875 · tokens 1.5k · $0.0123'
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from envsim.batch.cache import CallStats
from envsim.batch.runner import RunStats


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_line(stats: RunStats, calls: CallStats) -> str:
    """The figures after the bar: in flight, success rate, mean reward, tokens and cost so far."""
    success = "-" if stats.success_rate is None else f"{stats.success_rate:.1%}"
    reward = "-" if stats.mean_reward is None else f"{stats.mean_reward:.3f}"
    tokens = _human(calls.usage.prompt_tokens + calls.usage.completion_tokens)
    cost = calls.usage.cost
    return f"in flight {stats.in_flight} · success {success} · reward {reward} · tokens {tokens} · ${cost:.4f}"


@contextlib.asynccontextmanager
async def live_progress(
    stats: RunStats, calls: CallStats, console: Console, *, enabled: bool, interval: float = 0.25
) -> AsyncIterator[None]:
    """Show the bar while the body runs (nothing when ``enabled`` is false)."""
    if not enabled:
        yield
        return
    progress = Progress(
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]} · ETA {task.fields[eta]}", markup=False),
        console=console,
        auto_refresh=False,
        transient=False,
    )
    task = progress.add_task("episodes", total=stats.planned, completed=stats.done, status="", eta="?")

    def draw() -> None:
        progress.update(task, completed=stats.done, status=status_line(stats, calls), eta=_duration(stats.eta()))
        progress.refresh()

    async def tick() -> None:
        while True:
            draw()
            await asyncio.sleep(interval)

    with progress:
        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            draw()
