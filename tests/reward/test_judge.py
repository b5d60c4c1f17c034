"""The LLM judge through litellm's real client: a custom provider plays the judge model.

``ScriptedJudgeLLM`` (registered as the litellm provider ``judgetest``) answers each request
from a script of moves: a reply text, an exception to raise, or a function of the request.
``HeuristicJudgeLLM`` is a crude but deterministic judge of the sample rubric, used by the
calibration tests and loadable from the CLI with ``--provider``.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from envsim.calls import CallEntry, ModelCalls
from envsim.env import ScenarioEnv
from envsim.errors import ScenarioError
from envsim.llm import Completion, litellm
from envsim.reward.base import RewardContext
from envsim.reward.judge import (
    CACHE_ENV,
    CallLog,
    Judge,
    JudgeError,
    JudgeRubric,
    default_cache_dir,
    judge_component,
    load_rubric,
    load_rubric_text,
)
from envsim.testing.fake_client import FakeClient
from envsim.trajectory import Trajectory
from tests.conftest import REPO

lib = litellm()


def _build_litellm_response_types() -> None:
    """Build litellm's response models once, ignoring the one warning pydantic raises about them.

    litellm 1.106's ``Message`` type uses ``ReadOnly`` TypedDict items; pydantic warns when it
    builds the schema (lazily, on the first response), which ``filterwarnings = error`` would turn
    into a failed call. That warning is about litellm's types, not about envsim.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is using the `ReadOnly` qualifier", category=UserWarning)
        lib.ModelResponse()


_build_litellm_response_types()

RUBRIC_YAML = """\
name: tiny
description: Is the agent helpful and polite?
model: judgetest/priced
max_attempts: 3
criteria:
  - id: resolution
    description: Did the agent resolve the request?
    scale: "1-5"
    levels: {1: Not at all., 5: Fully.}
    weight: 2
  - id: polite
    description: Was the agent polite?
    scale: pass_fail
    levels: {pass: Courteous., fail: Rude.}
    examples:
      - {excerpt: "agent: Whatever.", score: fail, rationale: Dismissive.}
"""

PRICE_IN = 1e-6
PRICE_OUT = 2e-6
PROMPT_TOKENS = 1000
COMPLETION_TOKENS = 100
CALL_COST = PROMPT_TOKENS * PRICE_IN + COMPLETION_TOKENS * PRICE_OUT


def reply(resolution: int | str = 4, polite: str = "pass") -> str:
    """A valid reply of the tiny rubric."""
    return json.dumps(
        {
            "resolution": {"rationale": f"resolution {resolution}", "score": resolution},
            "polite": {"rationale": f"polite {polite}", "score": polite},
        }
    )


Move = str | BaseException | Callable[[dict[str, Any]], str]


class ScriptedJudgeLLM(lib.CustomLLM):  # type: ignore[misc]
    """A judge model for tests: answers from a script of moves and records every request."""

    def __init__(self, script: list[Move] | None = None, default: Move | None = None) -> None:
        super().__init__()
        self.script = list(script or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _answer(self, model: str, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> Any:
        request = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "optional_params": dict(kwargs.get("optional_params") or {}),
            "timeout": kwargs.get("timeout"),
        }
        with self._lock:
            self.requests.append(request)
            move = self.script.pop(0) if self.script else self.default
        if move is None:
            raise AssertionError("the judge script ran out")
        if isinstance(move, BaseException):
            raise move
        text = move(request) if callable(move) else move
        return lib.ModelResponse(
            model=f"judgetest/{model}",
            choices=[{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            usage={
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        )

    def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        """Sync path of litellm.completion."""
        return self._answer(model, messages, kwargs)

    async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        """Async path of litellm.acompletion."""
        await asyncio.sleep(0)
        return self._answer(model, messages, kwargs)


def transcript_of(request: dict[str, Any]) -> str:
    """The transcript the judge prompt carries."""
    user = request["messages"][1]["content"]
    return user.split("<transcript>\n", 1)[1].split("\n</transcript>", 1)[0]


def heuristic_verdict(request: dict[str, Any]) -> str:
    """A crude judge of the sample rubric: any failed tool call means the request was not resolved."""
    failed = '\ntool: {"error"' in "\n" + transcript_of(request)
    return json.dumps(
        {
            "resolution": {
                "rationale": "a tool call failed" if failed else "every tool call succeeded",
                "score": 2 if failed else 5,
            },
            "policy": {"rationale": "no rule broken that I can see", "score": "pass"},
            "communication": {"rationale": "the agent closed the conversation", "score": 3},
        }
    )


class HeuristicJudgeLLM(ScriptedJudgeLLM):
    """The heuristic judge as a provider class (for ``envsim judge calibrate --provider``)."""

    def __init__(self) -> None:
        super().__init__(default=heuristic_verdict)


def install(monkeypatch: pytest.MonkeyPatch, provider: ScriptedJudgeLLM) -> ScriptedJudgeLLM:
    """Register ``provider`` as the litellm provider ``judgetest`` (with a price for ``judgetest/priced``)."""
    monkeypatch.setattr(lib, "model_cost", dict(lib.model_cost))
    lib.register_model(
        {
            "judgetest/priced": {
                "input_cost_per_token": PRICE_IN,
                "output_cost_per_token": PRICE_OUT,
                "litellm_provider": "judgetest",
                "mode": "chat",
            }
        }
    )
    monkeypatch.setattr(lib, "custom_provider_map", [{"provider": "judgetest", "custom_handler": provider}])
    return provider


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[[ScriptedJudgeLLM], ScriptedJudgeLLM]:
    """Install a provider for one test."""
    return lambda provider: install(monkeypatch, provider)


@pytest.fixture
def rubric() -> JudgeRubric:
    """The tiny two-criterion rubric."""
    return load_rubric_text(RUBRIC_YAML)


@pytest.fixture
def trajectory() -> Trajectory:
    """A short emergency call: a lookup, a dispatch, and the agent's reassurance."""
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "dispatch_emergency_services", "arguments": '{"patient_id": "PT-9001"}'},
    }
    return Trajectory(
        scenario_id="TinyEmergency",
        seed=0,
        messages=[
            {"role": "system", "content": "You are a customer-service agent for medical_supply."},
            {"role": "user", "content": "He collapsed, please help! My number is 555-0142."},
            {"role": "assistant", "content": "Help is on the way.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"dispatch_id": "EMS-1"}'},
        ],
        turns=1,
        end_reason="agent_ended",
    )


def make_judge(rubric: JudgeRubric, tmp_path: Path, **options: Any) -> Judge:
    """A judge with a fresh cache in ``tmp_path`` and no backoff."""
    options.setdefault("cache", CallLog(tmp_path / "cache"))
    return Judge(rubric, backoff=0.0, **options)


# -- the rubric -------------------------------------------------------------------------------


def test_sample_rubric_loads() -> None:
    rubric = load_rubric(REPO / "tests/data/judge_rubric.yaml")
    assert [c.id for c in rubric.criteria] == ["resolution", "policy", "communication"]
    assert rubric.criteria[0].bounds() == (1, 5) and rubric.criteria[1].pass_fail


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("scale: pass_fail", "scale: passfail"), "scale must be 'pass_fail' or a range 'LOW-HIGH'"),
        (("{1: Not at all., 5: Fully.}", "{1: Not at all., 6: Fully.}"), "'6' is not a score of scale '1-5'"),
        (("{pass: Courteous., fail: Rude.}", "{pass: Courteous.}"), "say what 'fail' mean"),
        (("score: fail, rationale", "score: 3, rationale"), "score 3 is not on scale 'pass_fail'"),
        (("max_attempts: 3", "max_attempt: 3"), "unknown field (did you mean 'max_attempts'?)"),
        (("  - id: polite", "  - id: resolution"), "criterion ids must be unique, repeated: resolution"),
    ],
)
def test_rubric_problems_are_located(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_rubric_text(RUBRIC_YAML.replace(*edit), Path("r.yaml"))
    problem = caught.value.problems[0]
    assert message in problem.message and problem.path == Path("r.yaml") and problem.line > 1


def test_prompt_carries_rubric_and_transcript(rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path) -> None:
    system, user = make_judge(rubric, tmp_path).messages(trajectory)
    assert '"polite": {"rationale": "<why>", "score": "pass" or "fail"}' in system["content"]
    assert "- 1: Not at all." in user["content"] and "- fail: Rude." in user["content"]
    assert "Example: agent: Whatever." in user["content"]
    assert "agent: Help is on the way. [calls dispatch_emergency_services(" in user["content"]
    assert '\ntool: {"dispatch_id": "EMS-1"}\n</transcript>' in user["content"]
    assert "system: You are a customer-service agent" in user["content"]  # the policy, include_system


# -- calls, retries, failures -----------------------------------------------------------------


def test_valid_reply_is_scored_and_costed(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM([reply(4, "pass")]))
    result = make_judge(rubric, tmp_path).judge(trajectory)
    assert result.criteria["resolution"].score == 0.75 and result.criteria["polite"].score == 1.0
    assert result.score == pytest.approx((2 * 0.75 + 1.0) / 3)
    assert result.cost == pytest.approx(CALL_COST) and result.calls == 1
    assert result.prompt_tokens == PROMPT_TOKENS and result.completion_tokens == COMPLETION_TOKENS
    assert provider.requests[0]["model"] == "priced" and provider.requests[0]["timeout"] == 60.0
    assert "response_format" not in provider.requests[0]["optional_params"]  # auto: litellm says unsupported


def test_json_schema_response_format_when_asked(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM(["```json\n" + reply(5) + "\n```"]))
    forced = rubric.model_copy(update={"structured_output": "json_schema"})
    assert make_judge(forced, tmp_path).judge(trajectory).score == 1.0  # a fenced reply is accepted
    sent = provider.requests[0]["optional_params"]["response_format"]
    schema = sent["json_schema"]["schema"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True
    assert schema["required"] == ["resolution", "polite"] and schema["additionalProperties"] is False
    verdict = schema["$defs"]["Verdict_resolution"]["properties"]["score"]
    assert (verdict["minimum"], verdict["maximum"]) == (1, 5)


def test_malformed_then_valid_succeeds_after_retry(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM(["Sure! The agent did well.", reply(5, "pass")]))
    result = make_judge(rubric, tmp_path).judge(trajectory)
    assert result.score == 1.0 and len(provider.requests) == 2
    assert result.calls == 2 and result.cost == pytest.approx(2 * CALL_COST)  # the bad attempt is paid too
    retry = provider.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Sure! The agent did well."}
    assert retry[-1]["content"].startswith("Your reply could not be used: not valid JSON")


def test_off_scale_and_missing_criteria_are_malformed(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    off_scale = reply(7, "pass")
    missing = json.dumps({"resolution": {"rationale": "ok", "score": 3}})
    provider = register(ScriptedJudgeLLM([off_scale, missing, reply(3, "PASS")]))
    result = make_judge(rubric, tmp_path).judge(trajectory)
    assert result.criteria["resolution"].raw == 3 and result.criteria["polite"].raw == "pass"
    problems = [r["messages"][-1]["content"] for r in provider.requests[1:]]
    assert "resolution.score: Input should be less than or equal to 5" in problems[0]
    assert "polite: Field required" in problems[1]


def test_always_malformed_is_a_judge_error(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path, tiny_env: ScenarioEnv
) -> None:
    provider = register(ScriptedJudgeLLM(default="{not json"))
    judge = make_judge(rubric, tmp_path)
    with pytest.raises(JudgeError) as caught:
        judge.judge(trajectory)
    assert caught.value.reason == "malformed" and caught.value.attempts == 3 == len(provider.requests)
    assert caught.value.cost == pytest.approx(3 * CALL_COST)
    score = judge.component(trajectory, RewardContext(tiny_env.runtime))
    assert math.isnan(score.score) and not score.judged  # never a silent 0
    assert score.explanation.startswith("judge_error (malformed)")
    assert score.usage is not None and score.usage.calls == 3
    assert judge.totals.judge_errors == 2 and judge.totals.calls == 6


def test_refusal_is_not_retried(register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path) -> None:
    provider = register(ScriptedJudgeLLM(["I'm sorry, but I can't help with evaluating this conversation."]))
    with pytest.raises(JudgeError) as caught:
        make_judge(rubric, tmp_path).judge(trajectory)
    assert caught.value.reason == "refusal" and len(provider.requests) == 1


def test_empty_reply_is_a_refusal(register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path) -> None:
    register(ScriptedJudgeLLM([""]))
    with pytest.raises(JudgeError, match=r"judge_error \(refusal\)"):
        make_judge(rubric, tmp_path).judge(trajectory)


def test_timeout_is_retried_then_a_judge_error(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    def slow(request: dict[str, Any]) -> str:
        time.sleep(request["timeout"])  # the model takes as long as the judge allows, then litellm gives up
        raise lib.Timeout(message=f"no reply within {request['timeout']}s", model="priced", llm_provider="judgetest")

    provider = register(ScriptedJudgeLLM(default=slow))
    quick = rubric.model_copy(update={"timeout": 0.05, "max_attempts": 2})
    with pytest.raises(JudgeError) as caught:
        make_judge(quick, tmp_path).judge(trajectory)
    assert caught.value.reason == "timeout" and "no reply within 0.05s" in caught.value.message
    assert [r["timeout"] for r in provider.requests] == [0.05, 0.05]


def test_provider_error_then_success(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    busy = lib.RateLimitError(message="slow down", llm_provider="judgetest", model="priced")
    provider = register(ScriptedJudgeLLM([busy, reply(2, "fail")]))
    result = make_judge(rubric, tmp_path).judge(trajectory)
    assert result.score == pytest.approx(2 * 0.25 / 3) and len(provider.requests) == 2


def test_provider_errors_every_time(register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path) -> None:
    register(ScriptedJudgeLLM(default=lib.APIConnectionError(message="down", llm_provider="judgetest", model="x")))
    with pytest.raises(JudgeError) as caught:
        make_judge(rubric, tmp_path).judge(trajectory)
    assert caught.value.reason == "provider_error" and caught.value.attempts == 3


def test_mock_response_through_litellm_prices_the_call(trajectory: Trajectory, tmp_path: Path) -> None:
    rubric = load_rubric_text(RUBRIC_YAML.replace("judgetest/priced", "openai/gpt-4o-mini"))
    judge = make_judge(rubric, tmp_path, completion_kwargs={"mock_response": reply(5, "pass")})
    assert judge.uses_json_schema()  # litellm knows gpt-4o-mini supports response schemas
    result = judge.judge(trajectory)
    assert result.score == 1.0 and result.cost > 0 and result.usage.calls == 1


# -- caching ----------------------------------------------------------------------------------


def test_same_judgement_is_never_paid_twice(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM(default=reply(4, "pass")))
    first = make_judge(rubric, tmp_path).judge(trajectory)
    again = make_judge(rubric, tmp_path)  # a new judge: fresh records read from the same cache directory
    second = again.judge(trajectory)
    assert len(provider.requests) == 1
    assert second.cached and second.cost == 0 and second.calls == 0 and second.score == first.score
    assert second.samples[0].cost == pytest.approx(CALL_COST)  # what the cached verdict once cost
    # weights and aggregation are not part of a verdict: changing them reuses the cache
    reweighted = rubric.model_copy(update={"criteria": [c.model_copy(update={"weight": 1}) for c in rubric.criteria]})
    assert make_judge(reweighted, tmp_path).judge(trajectory).score == pytest.approx(0.875)
    assert len(provider.requests) == 1
    # another model, another transcript: new judgements
    make_judge(rubric, tmp_path, model="judgetest/other").judge(trajectory)
    longer = trajectory.model_copy(update={"messages": [*trajectory.messages, {"role": "user", "content": "Bye"}]})
    make_judge(rubric, tmp_path).judge(longer)
    assert len(provider.requests) == 3


def test_a_second_identical_judgement_is_answered_from_the_call_layer_without_a_model_call(
    rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    client = FakeClient(default=Completion(text=reply(4, "pass"), prompt_tokens=100, cost=0.25))
    judge = Judge(rubric, client=client, cache=CallLog(tmp_path / "cache"), backoff=0.0)
    assert isinstance(judge.calls, ModelCalls)  # the judge caches through the run's model-call layer
    first = judge.judge(trajectory)
    second = judge.judge(trajectory)
    assert len(client.requests) == 1 and not first.cached and first.cost == 0.25
    assert second.cached and second.calls == 0 and second.cost == 0 and second.score == first.score
    assert judge.totals.cache_hits == 1 and judge.totals.calls == 1
    silent = FakeClient()  # no reply scripted: any model call would fail
    again = Judge(rubric, client=silent, cache=CallLog(tmp_path / "cache"), backoff=0.0)
    assert again.judge(trajectory).score == first.score and not silent.requests


def test_disk_cache_files_and_memory_only_cache(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM(default=reply(4, "pass")))
    judge = make_judge(rubric, tmp_path)
    judge.judge(trajectory)
    files = [f for f in (tmp_path / "cache").rglob("*") if f.is_file()]
    assert [f.name for f in files] == ["calls-0000.jsonl"]  # the format of a run's record/replay
    (line,) = files[0].read_text().splitlines()
    assert json.loads(line)["role"] == "judge" and json.loads(line)["completion"]["text"]
    memory_only = make_judge(rubric, tmp_path, cache=CallLog(None))
    memory_only.judge(trajectory)
    memory_only.judge(trajectory)
    assert len(provider.requests) == 2


def test_a_corrupt_cache_file_is_a_miss(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM(default=reply(4, "pass")))
    make_judge(rubric, tmp_path).judge(trajectory)
    (entry,) = [f for f in (tmp_path / "cache").rglob("*.jsonl")]
    entry.write_text("{truncated", encoding="utf-8")
    fresh = CallLog(tmp_path / "cache")
    assert fresh.skipped_lines == 1 and not fresh.entries
    assert make_judge(rubric, tmp_path, cache=fresh).judge(trajectory).score == pytest.approx(2.5 / 3)
    assert len(provider.requests) == 2 and len(CallLog(tmp_path / "cache").entries) == 1


def test_concurrent_writers_each_write_whole_lines_of_their_own_file(tmp_path: Path) -> None:
    entry = CallEntry(Completion(text="ok", cost=0.5))
    logs = [CallLog(tmp_path) for _ in range(8)]
    threads = [threading.Thread(target=log.put, args=(f"{n:02d}" * 32, entry)) for log in logs for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"calls-{n:04d}.jsonl" for n in range(8)]
    merged = CallLog(tmp_path)
    assert merged.skipped_lines == 0 and sorted(merged.entries) == [f"{n:02d}" * 32 for n in range(5)]
    assert merged.entries["00" * 32] == entry


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "j"))
    assert default_cache_dir() == tmp_path / "j"
    monkeypatch.setenv(CACHE_ENV, "off")
    assert default_cache_dir() is None
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "envsim" / "judge"


# -- samples and aggregation ------------------------------------------------------------------


@pytest.fixture
def three_samples(register: Any) -> Iterator[ScriptedJudgeLLM]:
    """A judge model whose three samples say 2/pass, 4/fail, 4/fail."""
    yield register(ScriptedJudgeLLM([reply(2, "pass"), reply(4, "fail"), reply(4, "fail")]))


@pytest.mark.parametrize(
    ("aggregation", "resolution", "raw", "polite"),
    [("mean", (0.25 + 0.75 + 0.75) / 3, 3, 1 / 3), ("median", 0.75, 4, 0.0), ("majority", 0.75, 4, 0.0)],
)
def test_samples_aggregate(
    three_samples: ScriptedJudgeLLM,
    rubric: JudgeRubric,
    trajectory: Trajectory,
    tmp_path: Path,
    aggregation: str,
    resolution: float,
    raw: int,
    polite: float,
) -> None:
    configured = rubric.model_copy(update={"samples": 3, "aggregation": aggregation})
    result = make_judge(configured, tmp_path).judge(trajectory)
    assert len(three_samples.requests) == 3 and [s.index for s in result.samples] == [0, 1, 2]
    assert result.criteria["resolution"].score == pytest.approx(resolution)
    assert result.criteria["resolution"].raw == raw
    assert result.criteria["polite"].score == pytest.approx(polite)
    assert result.score == pytest.approx((2 * resolution + polite) / 3)
    assert result.cost == pytest.approx(3 * CALL_COST)


def test_majority_tie_goes_to_the_lower_score(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    register(ScriptedJudgeLLM([reply(5, "pass"), reply(1, "fail")]))
    configured = rubric.model_copy(update={"samples": 2, "aggregation": "majority"})
    result = make_judge(configured, tmp_path).judge(trajectory)
    assert result.criteria["resolution"].raw == 1 and result.criteria["polite"].raw == "fail"
    assert result.criteria["resolution"].rationale == "resolution 1"


def test_async_samples_run_concurrently_and_cache(
    three_samples: ScriptedJudgeLLM, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    configured = rubric.model_copy(update={"samples": 3, "aggregation": "majority"})
    judge = make_judge(configured, tmp_path)
    result = asyncio.run(judge.ajudge(trajectory))
    assert sorted(s.verdicts["resolution"].score for s in result.samples) == [2, 4, 4]
    assert result.criteria["resolution"].raw == 4 and len(three_samples.requests) == 3
    again = judge.judge(trajectory)
    assert again.cached and len(three_samples.requests) == 3


def test_a_failed_sample_fails_the_judgement_but_good_ones_are_kept(
    register: Any, rubric: JudgeRubric, trajectory: Trajectory, tmp_path: Path
) -> None:
    provider = register(ScriptedJudgeLLM([reply(5), "I cannot do that.", reply(5), reply(5)]))
    configured = rubric.model_copy(update={"samples": 3})
    judge = make_judge(configured, tmp_path)
    with pytest.raises(JudgeError, match="refusal"):
        judge.judge(trajectory)
    assert len(provider.requests) == 3
    result = judge.judge(trajectory)  # samples 0 and 2 come from the cache; only sample 1 is asked again
    assert len(provider.requests) == 4 and result.score == 1.0 and result.calls == 1


# -- as a reward component --------------------------------------------------------------------


def test_judge_component_has_the_reward_signature(
    register: Any, trajectory: Trajectory, tiny_env: ScenarioEnv, tmp_path: Path
) -> None:
    register(ScriptedJudgeLLM([reply(3, "pass")]))
    path = tmp_path / "rubric.yaml"
    path.write_text(RUBRIC_YAML, encoding="utf-8")
    component = judge_component(path, cache=CallLog(tmp_path / "cache"), backoff=0.0)
    score = component(trajectory, RewardContext(tiny_env.runtime))
    assert score.score == pytest.approx((2 * 0.5 + 1) / 3) and score.judged
    assert score.explanation.startswith("judge tiny (judgetest/priced): resolution=3: resolution 3")
    assert score.usage is not None and score.usage.cost == pytest.approx(CALL_COST) and score.usage.calls == 1
