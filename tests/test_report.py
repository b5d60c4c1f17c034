"""Run reports: the figures, the command, and the HTML page as headless Chromium loads and runs it.

The page test drives Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
fd 3 in, fd 4 out, NUL-terminated JSON), so it sees every console message and uncaught exception
and can query the live DOM. Without Chromium those tests are skipped, except under CI (``CI=true``), where
they fail: CI installs it (``apt-get install -y chromium``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from math import comb
from pathlib import Path
from typing import Any

import pytest

from envsim.batch.plan import GenerateConfig, RunOptions
from envsim.batch.session import execute, start_run
from envsim.batch.store import EpisodeRecord, RunStore, trajectory_hash
from envsim.report import load_report
from tests.conftest import REPO, TINY_SCENARIO

CLI = [sys.executable, "-c", "from envsim.cli import main; main()"]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> & <b>bold</b>'
EPISODES = 10


def envsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of two scenarios, plus copies with set affects, and stored episodes that broke (one with hostile text)."""
    root = tmp_path_factory.mktemp("report")
    (root / "tiny.yaml").write_text(TINY_SCENARIO, encoding="utf-8")
    out = root / "run"
    scenarios = [str(root / "tiny.yaml"), "MedicalSupplyPanicCaller"]
    execute(start_run(out, scenarios, GenerateConfig(error_rate=0.5), RunOptions(), episodes=EPISODES))
    with RunStore.open(out) as store:
        records = list(store.scan().records.values())
        extra: list[EpisodeRecord] = []
        for i, record in enumerate(records[:4]):  # the mock user's affect after each user turn
            users = sum(m["role"] == "user" for m in record.trajectory.messages)
            affects = (["panicked", "frustrated", "calm", "relieved", "angry"] * 3)[i : i + users]
            trajectory = record.trajectory.model_copy(update={"affects": affects})
            extra.append(record.model_copy(update={"trajectory": trajectory, "episode_id": f"affect-{i}"}))
        base = records[0]
        messages = [dict(m) for m in base.trajectory.messages]
        messages[1] = {"role": "user", "content": f"My name is {HOSTILE}"}
        call = {"name": "lookup_patient", "arguments": json.dumps({"phone": HOSTILE})}
        messages.append(
            {"role": "assistant", "content": None, "tool_calls": [{"id": "x1", "type": "function", "function": call}]}
        )
        hostile = base.trajectory.model_copy(update={"messages": messages, "fault": f"user said {HOSTILE}"})
        extra.append(
            base.model_copy(
                update={
                    "episode_id": "hostile",
                    "outcome": "sim_fault",
                    "trajectory": hostile,
                    "trajectory_hash": trajectory_hash(hostile),
                    "error": HOSTILE,
                }
            )
        )
        extra.append(base.model_copy(update={"episode_id": "down", "outcome": "infra_error", "reward": None}))
        store.append(extra)
    return out


def stored(run: Path) -> list[EpisodeRecord]:
    return list(RunStore.open(run, lock=False).scan().records.values())


# -- the figures ----------------------------------------------------------------------------------


def test_figures_match_the_stored_episodes(run: Path) -> None:
    records = stored(run)
    report = load_report(run, ks=(1, 2, 3))
    summary = report.summary
    assert summary.stored == len(records) and summary.planned == 2 * EPISODES
    assert summary.outcomes["sim_fault"] == 1 and summary.outcomes["infra_error"] == 1
    for stats in summary.scenarios:
        mine = [r for r in records if r.scenario_id == stats.name]
        trials = [r for r in mine if r.outcome in ("success", "failure", "truncated")]
        n, c = len(trials), sum(r.outcome == "success" for r in trials)
        assert (stats.episodes, stats.trials, stats.successes) == (len(mine), n, c)
        assert stats.success_rate == pytest.approx(c / n)
        for k in (1, 2, 3):
            assert stats.pass_hat_k[str(k)] == pytest.approx(comb(c, k) / comb(n, k))
        assert stats.mean_reward == pytest.approx(sum(r.reward or 0.0 for r in trials) / n)
        final = [r.breakdown.components["final_state"].score for r in trials if r.breakdown]
        assert stats.components["final_state"] == pytest.approx(sum(final) / len(final))
        assert stats.persona == "panicked_caller"  # both scenarios' user
    overall = summary.overall
    assert overall.pass_hat_k["2"] == pytest.approx(sum(s.pass_hat_k["2"] or 0 for s in summary.scenarios) / 2)
    assert overall.trials == sum(s.trials for s in summary.scenarios) == overall.episodes - 2
    assert [p.name for p in summary.personas] == ["panicked_caller"]


def test_report_command_prints_the_table_and_json(run: Path, tmp_path: Path) -> None:
    page = tmp_path / "out" / "report.html"
    result = envsim("report", str(run), "--html", str(page), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["html"] == str(page) and page.is_file()
    assert "TinyEmergency" in result.stdout and "pass^" in result.stdout and "final_state" in result.stdout
    assert {s["name"] for s in summary["scenarios"]} == {"TinyEmergency", "MedicalSupplyPanicCaller"}
    assert summary["ks"] == [1, 2, 4, 8]  # the defaults up to the most trials of a scenario (10)
    missing = envsim("report", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a run directory" in missing.stderr and "Traceback" not in missing.stderr


def test_page_escapes_everything_and_has_no_external_assets(run: Path) -> None:
    page = load_report(run).html()
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the report's own, and nothing from a transcript
    for external in ("http://", "https://", "src=", "@import", "url("):
        assert external not in page.replace("&#34;", '"').split("<script>")[0].split('id="episode-list"')[0]
    assert '<link rel="icon" href="data:,">' in page  # no favicon request either


# -- the page in Chromium -------------------------------------------------------------------------


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_INSTALL = "apt-get install -y chromium"


def chromium_or_skip() -> str:
    """The Chromium executable; if there is none, skip the calling test, or fail it under CI (``CI`` set and true).

    A fresh machine with only python3 passes the README's test command; CI, which installs Chromium
    (``.ci/run``), cannot pass without running the page tests.
    """
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    reason = f"Chromium is not installed: the report page test needs it ({CHROMIUM_INSTALL})"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; CI={os.environ['CI']} requires it")
    pytest.skip(reason)


@pytest.mark.parametrize("ci", [None, "", "0", "false", "true", "1", "TRUE"])
def test_missing_chromium_skips_outside_ci_and_fails_under_ci(
    ci: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no browser on it
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci in ("true", "1", "TRUE") else pytest.skip.Exception
    with pytest.raises(outcome, match=r"Chromium is not installed.*\(apt-get install -y chromium\)"):
        chromium_or_skip()


def test_chromium_on_the_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = tmp_path / "chromium-browser"
    browser.write_text("#!/bin/sh\n", encoding="utf-8")
    browser.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert chromium_or_skip() == str(browser)


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe."""

    def __init__(self, executable: str, user_data_dir: Path, log: Path) -> None:
        to_chrome_r, self._out = os.pipe()
        self._in, from_chrome_w = os.pipe()
        remap = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"]
        with log.open("wb") as err:
            self.process = subprocess.Popen(
                ["bash", "-c", remap, executable, *args],
                pass_fds=(to_chrome_r, from_chrome_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if ready:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit {self.process.poll()})")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, event: str, *, timeout: float = 30) -> dict[str, Any]:
        for seen in self.events:
            if seen.get("method") == event:
                return seen
        deadline = time.monotonic() + timeout
        while True:
            message = self._read(deadline)
            self.events.append(message)
            if message.get("method") == event:
                return message

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self) -> list[dict[str, Any]]:
        """Uncaught exceptions, console errors and warnings, and browser log errors seen so far."""
        bad = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if (
                method == "Runtime.exceptionThrown"
                or (method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"))
                or (method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"))
            ):
                bad.append(event)
        return bad

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self._in)
        os.close(self._out)


def test_page_loads_cleanly_in_chromium_and_filters(run: Path, tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    page = tmp_path / "report.html"
    report = load_report(run)
    report.write_html(page)
    records = stored(run)
    shown_record = next(r for r in records if r.scenario_id == "TinyEmergency" and r.outcome == "success")
    opening = shown_record.trajectory.messages[1]["content"]
    failures = sum(r.outcome == "failure" for r in records)

    browser = DevTools(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        browser.open(page.as_uri())
        ids = browser.js("Array.from(document.querySelectorAll('details.episode')).map(e => e.dataset.episodeId)")
        assert sorted(ids) == sorted(r.episode_id for r in records)
        # the expected episode, with a line of its transcript and its reward breakdown
        selector = f"document.querySelector('[data-episode-id=\"{shown_record.episode_id}\"]')"
        text = browser.js(f"{selector}.textContent")
        assert shown_record.episode_id in text and opening in text and "final_state" in text
        assert browser.js(f"{selector}.querySelectorAll('.msg.user').length") >= 1
        # hostile text is shown as text and never runs
        assert browser.js("window.__pwned === undefined") is True
        hostile = "document.querySelector('[data-episode-id=\"hostile\"]')"
        assert HOSTILE in browser.js(f"{hostile}.textContent")
        assert browser.js(f"{hostile}.querySelectorAll('img, script').length") == 0
        assert browser.js("document.querySelectorAll('script').length") == 1
        # charts: bars for every scenario, a histogram, one affect line per episode with affects
        assert browser.js("document.querySelectorAll('svg').length") == 4
        with_affects = sum(bool(r.trajectory.affects) for r in records)
        assert with_affects >= 4 and browser.js("document.querySelectorAll('polyline').length") == with_affects
        # filtering
        browser.js(
            "{ const o = document.getElementById('f-outcome'); o.value = 'failure';"
            " o.dispatchEvent(new Event('change')) }"
        )
        visible = browser.js(
            "Array.from(document.querySelectorAll('details.episode')).filter(e => !e.hidden)"
            ".map(e => e.dataset.outcome)"
        )
        assert visible == ["failure"] * failures and browser.js(
            "document.getElementById('shown-count').textContent"
        ) == str(failures)
        browser.js(
            "{ const o = document.getElementById('f-outcome'); o.value = '';"
            " o.dispatchEvent(new Event('change'));"
            " const t = document.getElementById('f-text'); t.value = 'window.__PWNED';"
            " t.dispatchEvent(new Event('input')) }"
        )
        assert browser.js(
            "Array.from(document.querySelectorAll('details.episode')).filter(e => !e.hidden)"
            ".map(e => e.dataset.episodeId)"
        ) == ["hostile"]
        browser.js("document.getElementById('expand').click()")
        assert browser.js(f"{hostile}.open") is True
        assert browser.problems() == [], browser.problems()
    finally:
        browser.close()


def test_the_harness_sees_console_errors_and_exceptions(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><link rel="icon" href="data:,"><p>x</p><script>console.error("boom"); notDefined();</script>',
        encoding="utf-8",
    )
    browser = DevTools(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        browser.open(page.as_uri())
        assert browser.js("document.querySelector('p').textContent") == "x"
        kinds = sorted(str(event["method"]) for event in browser.problems())
        assert kinds == ["Runtime.consoleAPICalled", "Runtime.exceptionThrown"], browser.problems()
    finally:
        browser.close()
