"""Training datasets from stored runs: rejection sampling, then SFT, DPO or GRPO rows.

Reads one or more run directories (``envsim generate``, :mod:`envsim.batch.store`), keeps only
episodes whose outcome carries a reward (success, failure, truncated: simulator faults, judge
errors and infrastructure errors never reach a dataset, see :mod:`envsim.reward.outcome`),
applies a :class:`Selection`, and writes rows that TRL's trainers and Hugging Face ``datasets``
load as they are:

``sft`` (conversational language modelling with tools, for ``SFTTrainer``)
    ``messages``: the whole episode as chat messages, system prompt first; an assistant's tool
    calls as ``tool_calls`` (``{"id", "type": "function", "function": {"name", "arguments"}}``,
    ``arguments`` a JSON object, as TRL's chat templates render them); tool results as
    ``{"role": "tool", "tool_call_id", "name", "content"}``.

``dpo`` (conversational preference, for ``DPOTrainer``)
    Two episodes of one (scenario, seed) group: ``prompt`` is the messages they share (at least
    the system prompt and the opening user message, up to the first assistant turn where they
    differ), ``chosen`` and ``rejected`` what follows in the better and the worse episode.

``grpo`` (conversational prompt-only, for ``GRPOTrainer``)
    One row per (scenario, seed, opening): ``prompt`` is the system prompt and the user's opening
    message, with ``scenario_id`` and ``seed`` to rebuild the environment (e.g. in an
    ``environment_factory``'s ``reset(**row)``). The first message also names its episode in an
    ``envsim`` field (``{"scenario_id", "seed"}``, ignored by chat templates), the convention of
    :mod:`envsim.train.prompts`, since a ``rollout_func`` receives only the prompts.

Every row has ``tools`` (the scenario's OpenAI tool schemas as a JSON string: TRL's trainers
``json.loads`` a string ``tools`` column, and a string keeps schemas of different shapes intact
in Arrow) and its provenance: the run directory, the episode id, the reward, the outcome and the
agent model (``chosen_*``/``rejected_*`` for pairs).

Files: ``.parquet`` (message columns are lists of Arrow ``json`` values, which ``datasets``
reads back as dicts exactly as written; pandas sees JSON strings) or ``.jsonl`` (one row per
line). Both load with ``datasets.load_dataset("parquet" | "json", data_files=PATH)``.

Selection, in this order: ``--select key=value`` filters (outcome, scenario, model), then
``--min-reward``, then ``--best-of-n`` (the best episode of each (scenario, seed) group), then
``--top-k`` (the K best of each scenario). Ties go to success, then to the earlier episode.
``sft`` keeps successes only unless an outcome filter or ``--min-reward`` says otherwise.

Example:
    >>> pool = [_toy("a", 1.0, "success"), _toy("b", 0.2, "failure"), _toy("c", 0.0, "sim_fault")]
    >>> result = select(pool, Selection.parse(["outcome=success"]))
    >>> [e.record.episode_id for e in result.episodes], result.excluded
    (['a'], {'sim_fault': 1})
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from envsim.batch.plan import ScenarioSource
from envsim.batch.store import EpisodeRecord, RunStore
from envsim.errors import DatasetError, EnvsimError
from envsim.fileio import naming
from envsim.reward.outcome import REWARD_CARRYING, Outcome
from envsim.trajectory import Trajectory

DatasetFormat = Literal["sft", "dpo", "grpo"]
"""What the rows are for: supervised fine-tuning, preference pairs, or RL prompts."""

FORMATS: tuple[str, ...] = get_args(DatasetFormat)
SELECT_KEYS = ("outcome", "scenario", "model")
"""The keys ``--select key=value`` accepts."""

EPISODE_FIELD = "envsim"
"""The field of a GRPO prompt's first message that names its episode (as :mod:`envsim.train.prompts` does)."""

MESSAGE_COLUMNS = frozenset({"messages", "prompt", "chosen", "rejected"})
"""Columns holding chat messages (stored as lists of JSON values in Parquet)."""


# -- loading runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """A run directory as a dataset sees it: where it is, its agent, its scenarios."""

    path: str
    agent: str
    agent_model: str | None
    scenarios: dict[str, ScenarioSource]


@dataclass(frozen=True)
class Episode:
    """A stored episode with the run it came from; ``order`` is its position over all runs read."""

    run: RunInfo
    record: EpisodeRecord
    order: int

    @property
    def model(self) -> str:
        """The agent's model, or its kind when it has none (``scripted``)."""
        return self.record.models.get("agent") or self.run.agent_model or self.run.agent

    @property
    def group(self) -> tuple[str, int]:
        """The (scenario, seed) group: episodes that start from the same world and user."""
        return self.record.scenario_id, self.record.seed

    @property
    def reward(self) -> float:
        """The total reward (NaN when there is none)."""
        reward = self.record.reward
        return math.nan if reward is None else float(reward)


@dataclass
class LoadedRuns:
    """The episodes of some runs, deduplicated by episode id (the first run read keeps it)."""

    runs: list[RunInfo] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    duplicates: int = 0


def load_runs(run_dirs: Sequence[str | Path]) -> LoadedRuns:
    """Read the stored episodes of ``run_dirs`` (without locking them: a run may be generating).

    Episodes come in plan order (unplanned ones after, in stored order), run after run; a torn or
    corrupt line is skipped (as :meth:`RunStore.scan` does); an episode id seen in an earlier run
    is counted as a duplicate.
    """
    if not run_dirs:
        raise DatasetError("no run directories given")
    loaded = LoadedRuns()
    seen: set[str] = set()
    for run_dir in run_dirs:
        root = Path(run_dir)
        with RunStore.open(root, lock=False) as store:
            manifest = store.read_manifest()
            plan = store.read_plan()
            records = store.scan().records
        info = RunInfo(
            path=str(root.resolve()),
            agent=manifest.config.agent,
            agent_model=manifest.config.agent_model,
            scenarios={s.id: s for s in manifest.scenarios},
        )
        loaded.runs.append(info)
        ordered = [spec.episode_id for spec in plan if spec.episode_id in records]
        planned = set(ordered)
        ordered += [episode_id for episode_id in records if episode_id not in planned]  # in stored order
        for episode_id in ordered:
            if episode_id in seen:
                loaded.duplicates += 1
                continue
            seen.add(episode_id)
            loaded.episodes.append(Episode(info, records[episode_id], len(loaded.episodes)))
    return loaded


# -- selection -----------------------------------------------------------------------------------


class Selection(BaseModel):
    """Which reward-carrying episodes a dataset is made of (see the module docstring for the order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcomes: tuple[Outcome, ...] | None = Field(None, description="Keep these outcomes only.")
    scenarios: tuple[str, ...] | None = Field(None, description="Keep these scenario ids only.")
    models: tuple[str, ...] | None = Field(None, description="Keep these agent models (or kinds) only.")
    min_reward: float | None = Field(None, description="Keep episodes whose total reward is at least this.")
    best_of_n: bool = Field(False, description="Keep the best episode of each (scenario, seed) group.")
    top_k: int | None = Field(None, ge=1, description="Keep the K best episodes of each scenario.")

    @classmethod
    def parse(
        cls,
        select: Sequence[str] = (),
        *,
        min_reward: float | None = None,
        best_of_n: bool = False,
        top_k: int | None = None,
    ) -> Selection:
        """A selection from ``key=value[,value...]`` filters (keys: outcome, scenario, model) and the rest.

        Example:
            >>> Selection.parse(["outcome=success,truncated"], top_k=2).outcomes
            ('success', 'truncated')
            >>> try:
            ...     Selection.parse(["outcome=sim_fault"])
            ... except DatasetError as error:
            ...     print(error)
            --select outcome=sim_fault: only outcomes that carry a reward can be selected (failure, success, truncated)
        """
        values: dict[str, list[str]] = {}
        for item in select:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in SELECT_KEYS or not value.strip():
                raise DatasetError(f"--select {item!r}: expected KEY=VALUE with KEY one of {', '.join(SELECT_KEYS)}")
            values.setdefault(key, []).extend(v.strip() for v in value.split(",") if v.strip())
        outcomes = values.get("outcome")
        if outcomes is not None:
            bad = [o for o in outcomes if o not in REWARD_CARRYING]
            if bad:
                allowed = ", ".join(sorted(REWARD_CARRYING))
                raise DatasetError(
                    f"--select outcome={','.join(bad)}: only outcomes that carry a reward can be selected ({allowed})"
                )
        scenarios, models = values.get("scenario"), values.get("model")
        return cls(
            outcomes=tuple(outcomes) if outcomes is not None else None,
            scenarios=tuple(scenarios) if scenarios is not None else None,
            models=tuple(models) if models is not None else None,
            min_reward=min_reward,
            best_of_n=best_of_n,
            top_k=top_k,
        )

    @property
    def judges_quality(self) -> bool:
        """Whether it says how good an episode must be (an outcome filter or a minimum reward)."""
        return self.outcomes is not None or self.min_reward is not None

    def describe(self) -> str:
        """The selection in the command line's words.

        Example:
            >>> Selection.parse(["outcome=success"], best_of_n=True).describe()
            'outcome=success --best-of-n'
        """
        parts: list[str] = []
        if self.outcomes is not None:
            parts.append("outcome=" + ",".join(self.outcomes))
        if self.scenarios is not None:
            parts.append("scenario=" + ",".join(self.scenarios))
        if self.models is not None:
            parts.append("model=" + ",".join(self.models))
        if self.min_reward is not None:
            parts.append(f"--min-reward {self.min_reward:g}")
        if self.best_of_n:
            parts.append("--best-of-n")
        if self.top_k is not None:
            parts.append(f"--top-k {self.top_k}")
        return " ".join(parts) or "every episode that carries a reward"


def rank_key(episode: Episode) -> tuple[float, int, int]:
    """Sort key, best first: higher reward, then success, then the earlier episode (NaN rewards last)."""
    reward = episode.reward
    return (-reward if not math.isnan(reward) else math.inf, episode.record.outcome != "success", episode.order)


@dataclass
class SelectionResult:
    """What a selection kept, and how many episodes each step set aside."""

    episodes: list[Episode]
    pool: list[Episode]
    excluded: dict[str, int]
    filtered: int
    below_min_reward: int
    not_best_of_n: int
    beyond_top_k: int


def _best_per(episodes: Iterable[Episode], key: Callable[[Episode], Any], k: int) -> list[Episode]:
    groups: dict[Any, list[Episode]] = defaultdict(list)
    for episode in episodes:
        groups[key(episode)].append(episode)
    kept = [e for group in groups.values() for e in sorted(group, key=rank_key)[:k]]
    return sorted(kept, key=lambda e: e.order)


def select(episodes: Sequence[Episode], selection: Selection) -> SelectionResult:
    """Apply ``selection`` to the reward-carrying ``episodes`` (others are counted in ``excluded``)."""
    pool = [e for e in episodes if e.record.carries_reward]
    excluded = dict(sorted(Counter(str(e.record.outcome) for e in episodes if not e.record.carries_reward).items()))
    kept = [
        e
        for e in pool
        if (selection.outcomes is None or e.record.outcome in selection.outcomes)
        and (selection.scenarios is None or e.record.scenario_id in selection.scenarios)
        and (selection.models is None or e.model in selection.models)
    ]
    filtered = len(pool) - len(kept)
    before = len(kept)
    if selection.min_reward is not None:
        threshold = selection.min_reward
        kept = [e for e in kept if not math.isnan(e.reward) and e.reward >= threshold]
    below = before - len(kept)
    before = len(kept)
    if selection.best_of_n:
        kept = _best_per(kept, lambda e: e.group, 1)
    not_best = before - len(kept)
    before = len(kept)
    if selection.top_k is not None:
        kept = _best_per(kept, lambda e: e.record.scenario_id, selection.top_k)
    return SelectionResult(kept, pool, excluded, filtered, below, not_best, before - len(kept))


# -- messages and tools --------------------------------------------------------------------------


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return raw
        return parsed if isinstance(parsed, dict) else raw
    return raw


def chat_messages(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The episode's messages in the chat format TRL's templates render (see the module docstring).

    Tool-call arguments become JSON objects, a missing ``content`` becomes ``""``, tool results
    are named after their tool; nothing else is added or dropped.

    Example:
        >>> t = Trajectory(scenario_id="X", seed=0, messages=[
        ...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
        ...      "function": {"name": "lookup", "arguments": '{"phone": "555"}'}}]},
        ...     {"role": "tool", "tool_call_id": "c1", "content": "{}"}])
        >>> chat_messages(t)[0]["tool_calls"][0]["function"]
        {'name': 'lookup', 'arguments': {'phone': '555'}}
        >>> chat_messages(t)[1]
        {'role': 'tool', 'tool_call_id': 'c1', 'name': 'lookup', 'content': '{}'}
    """
    names: dict[str, str] = {}
    messages: list[dict[str, Any]] = []
    for message in trajectory.messages:
        role = message.get("role")
        content = message.get("content")
        out: dict[str, Any] = {"role": role, "content": "" if content is None else content}
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function", {})
                name = function.get("name", "")
                names[call.get("id", "")] = name
                calls.append(
                    {
                        "id": call.get("id", ""),
                        "type": "function",
                        "function": {"name": name, "arguments": _arguments(function.get("arguments", {}))},
                    }
                )
            out["tool_calls"] = calls
        elif role == "tool":
            call_id = message.get("tool_call_id", "")
            out = {"role": "tool", "tool_call_id": call_id, "name": names.get(call_id, ""), "content": out["content"]}
        messages.append(out)
    return messages


def opening(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The opening of a conversation: everything up to and including the first user message."""
    for index, message in enumerate(messages):
        if message.get("role") == "user":
            return list(messages[: index + 1])
    return list(messages)


def shared_prompt_length(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> int:
    """How many leading messages two conversations share as a prompt for a preference pair.

    The shared part ends just before an assistant message in both (so both continuations start
    with the agent's turn) and holds at least the opening; 0 when there is no such prompt (the
    openings differ, the conversations are the same, or no assistant turn follows the shared part).

    Example:
        >>> s, u = {"role": "system", "content": "S"}, {"role": "user", "content": "U"}
        >>> a1, a2 = {"role": "assistant", "content": "x"}, {"role": "assistant", "content": "y"}
        >>> shared_prompt_length([s, u, a1, u, a1], [s, u, a1, u, a2])
        4
        >>> shared_prompt_length([s, u, a1], [s, {"role": "user", "content": "other"}, a1])
        0
    """
    if list(a) == list(b):
        return 0
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    while k > 0 and not (k < len(a) and k < len(b) and a[k].get("role") == "assistant" == b[k].get("role")):
        k -= 1
    return k if k >= len(opening(a)) else 0


class ToolCatalog:
    """The OpenAI tool schemas of each scenario of the runs read, loaded once per scenario file."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}

    def tools_json(self, episode: Episode) -> str:
        """The episode's scenario's tool schemas as a JSON string (the ``tools`` column)."""
        source = episode.run.scenarios.get(episode.record.scenario_id)
        key = (source.path, source.hash) if source else ("", episode.record.scenario_id)
        if key not in self._cache:
            self._cache[key] = json.dumps(self._load(episode.record.scenario_id, source), ensure_ascii=False)
        return self._cache[key]

    @staticmethod
    def _load(scenario_id: str, source: ScenarioSource | None) -> list[dict[str, Any]]:
        from envsim.loader import load_scenario
        from envsim.registration import load_registered
        from envsim.runtime import ScenarioRuntime

        try:
            if source is not None and Path(source.path).is_file():
                scenario = load_scenario(source.path, lint=False)
            else:
                scenario = load_registered(scenario_id)
        except EnvsimError as error:
            where = source.path if source is not None else "the registered scenarios"
            raise DatasetError(f"scenario {scenario_id}: cannot load its tools from {where}: {error}") from error
        return ScenarioRuntime(scenario).session().tools.schemas()


# -- rows ----------------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def provenance(episode: Episode, prefix: str = "") -> dict[str, Any]:
    """Where a row comes from: run, episode id, reward, outcome, model (names prefixed with ``prefix``)."""
    record = episode.record
    return {
        f"{prefix}run": episode.run.path,
        f"{prefix}episode_id": record.episode_id,
        f"{prefix}reward": _number(record.reward),
        f"{prefix}outcome": record.outcome,
        f"{prefix}model": episode.model,
        f"{prefix}trajectory_hash": record.trajectory_hash,
    }


def sft_rows(episodes: Sequence[Episode], catalog: ToolCatalog) -> list[dict[str, Any]]:
    """One conversational language-modelling row per episode."""
    return [
        {
            "messages": chat_messages(e.record.trajectory),
            "tools": catalog.tools_json(e),
            "scenario_id": e.record.scenario_id,
            "seed": e.record.seed,
            **provenance(e),
        }
        for e in episodes
    ]


@dataclass
class PairStats:
    """How the (scenario, seed) groups paired up: each group is counted once, as a pair or as why not."""

    groups: int = 0
    pairs: int = 0
    single: int = 0
    no_worse: int = 0
    no_shared_prompt: int = 0


def dpo_rows(
    chosen_pool: Sequence[Episode],
    pool: Sequence[Episode],
    catalog: ToolCatalog,
    *,
    min_margin: float = 0.0,
    stats: PairStats | None = None,
) -> list[dict[str, Any]]:
    """One preference pair per (scenario, seed) group.

    ``chosen`` is the best selected episode of the group; ``rejected`` the worst reward-carrying
    episode of the group (from ``pool``) whose reward is more than ``min_margin`` below it and
    that shares a prompt with it (:func:`shared_prompt_length`).
    """
    stats = stats if stats is not None else PairStats()
    by_group: dict[tuple[str, int], list[Episode]] = defaultdict(list)
    for episode in pool:
        if not math.isnan(episode.reward):
            by_group[episode.group].append(episode)
    best: dict[tuple[str, int], Episode] = {}
    for episode in sorted(chosen_pool, key=rank_key):
        if not math.isnan(episode.reward):
            best.setdefault(episode.group, episode)
    rows: list[dict[str, Any]] = []
    for group, chosen in sorted(best.items(), key=lambda item: item[1].order):
        stats.groups += 1
        if all(e.record.episode_id == chosen.record.episode_id for e in by_group[group]):
            stats.single += 1
            continue
        worse = [e for e in by_group[group] if e.reward < chosen.reward - min_margin]
        if not worse:
            stats.no_worse += 1
            continue
        chosen_messages = chat_messages(chosen.record.trajectory)
        for rejected in sorted(worse, key=rank_key, reverse=True):  # worst first
            rejected_messages = chat_messages(rejected.record.trajectory)
            k = shared_prompt_length(chosen_messages, rejected_messages)
            if k:
                rows.append(
                    {
                        "prompt": chosen_messages[:k],
                        "chosen": chosen_messages[k:],
                        "rejected": rejected_messages[k:],
                        "tools": catalog.tools_json(chosen),
                        "scenario_id": group[0],
                        "seed": group[1],
                        **provenance(chosen, "chosen_"),
                        **provenance(rejected, "rejected_"),
                    }
                )
                stats.pairs += 1
                break
        else:
            stats.no_shared_prompt += 1
    return rows


def grpo_rows(episodes: Sequence[Episode], catalog: ToolCatalog) -> list[dict[str, Any]]:
    """One prompt row per distinct (scenario, seed, opening); provenance of its first episode.

    ``group_size`` and ``group_mean_reward`` say how many selected episodes share the prompt and
    how they fared (a difficulty estimate).
    """
    groups: dict[str, list[tuple[Episode, list[dict[str, Any]]]]] = {}
    for episode in episodes:
        prompt = opening(chat_messages(episode.record.trajectory))
        key = json.dumps([episode.record.scenario_id, episode.record.seed, prompt], sort_keys=True)
        groups.setdefault(key, []).append((episode, prompt))
    rows: list[dict[str, Any]] = []
    for members in groups.values():
        first, prompt = members[0]
        tag = {"scenario_id": first.record.scenario_id, "seed": first.record.seed}
        prompt = [{**prompt[0], EPISODE_FIELD: tag}, *prompt[1:]] if prompt else prompt
        rewards = [e.reward for e, _ in members if not math.isnan(e.reward)]
        rows.append(
            {
                "prompt": prompt,
                "tools": catalog.tools_json(first),
                "scenario_id": first.record.scenario_id,
                "seed": first.record.seed,
                **provenance(first),
                "group_size": len(members),
                "group_mean_reward": sum(rewards) / len(rewards) if rewards else None,
            }
        )
    return rows


# -- writing -------------------------------------------------------------------------------------


def _arrow_table(rows: Sequence[dict[str, Any]]) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped]

    if not hasattr(pa, "json_"):
        raise DatasetError(f"writing Parquet datasets needs pyarrow>=19 (its json type); found {pa.__version__}")
    columns: dict[str, Any] = {}
    names = list(rows[0]) if rows else []
    for name in names:
        values = [row.get(name) for row in rows]
        if name in MESSAGE_COLUMNS:
            conversations: list[list[dict[str, Any]]] = [value or [] for value in values]
            flat = [json.dumps(m, ensure_ascii=False) for conversation in conversations for m in conversation]
            offsets = [0]
            for conversation in conversations:
                offsets.append(offsets[-1] + len(conversation))
            items = pa.array(flat, pa.string()).cast(pa.json_())
            columns[name] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items)
        elif name in ("reward", "group_mean_reward") or name.endswith("_reward"):
            columns[name] = pa.array(values, pa.float64())
        elif name == "seed" or name == "group_size":
            columns[name] = pa.array(values, pa.int64())
        else:
            columns[name] = pa.array(values, pa.string())
    return pa.table(columns)


def write_rows(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` to ``path`` (``.parquet`` or ``.jsonl``) atomically; returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".jsonl"):
        raise DatasetError(f"--out {path}: the file must end in .parquet or .jsonl")
    if not rows:
        raise DatasetError("no rows to write: the selection kept nothing (see the counts above)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with naming(path):  # a full disk names the dataset
            if suffix == ".parquet":
                import pyarrow.parquet as pq  # type: ignore[import-untyped]

                pq.write_table(_arrow_table(rows), tmp)
            else:
                with tmp.open("w", encoding="utf-8") as f:
                    for row in rows:
                        f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# -- the whole job -------------------------------------------------------------------------------


class PairCounts(BaseModel):
    """How the (scenario, seed) groups of a DPO export paired up."""

    model_config = ConfigDict(extra="forbid")

    groups: int = Field(description="Groups with a selected episode.")
    pairs: int
    single: int = Field(0, description="Groups with one reward-carrying episode: nothing to pair it with.")
    no_worse: int = Field(description="Groups with other episodes, none enough worse than the chosen one.")
    no_shared_prompt: int = Field(description="Groups whose worse episodes start differently.")


PAIRS_HOWTO = (
    "pairs come from runs of the same scenarios and --seed with different agents (within one run each episode"
    " has its own seed: episode i of --seed s runs with seed s + i): envsim generate SCENARIOS --out RUN_A;"
    " envsim generate SCENARIOS --error-rate 0.3 --out RUN_B; envsim dataset RUN_A RUN_B --format dpo"
)
"""How to get DPO pairs (said when an export made none)."""


def why_no_pairs(counts: PairCounts, min_margin: float) -> str:
    """Why a DPO export made no pair from ``counts``, and how to get pairs.

    Example:
        >>> print(why_no_pairs(PairCounts(groups=2, pairs=0, single=2, no_worse=0, no_shared_prompt=0), 0.0))
        ... # doctest: +ELLIPSIS
        no DPO pair: a pair is two reward-carrying episodes of one scenario and environment seed, ...
    """
    rule = (
        "no DPO pair: a pair is two reward-carrying episodes of one scenario and environment seed, whose rewards"
        f" differ by more than --min-margin ({min_margin:g}) and whose conversations start alike"
    )
    found = [
        f"{counts.single} of {counts.groups} (scenario, seed) groups have one episode" if counts.single else "",
        f"{counts.no_worse} have no episode worse by more than --min-margin" if counts.no_worse else "",
        f"{counts.no_shared_prompt} have worse episodes that start differently" if counts.no_shared_prompt else "",
    ]
    advice = [PAIRS_HOWTO] if counts.single else []
    if counts.no_worse:
        advice.append("lower --min-margin, or add a run of a weaker agent (e.g. --error-rate 0.3)")
    return "; ".join([rule, ", ".join(f for f in found if f), *advice])


class DatasetSummary(BaseModel):
    """What ``envsim dataset --json`` prints last."""

    model_config = ConfigDict(extra="forbid")

    format: DatasetFormat
    out: str
    rows: int
    runs: list[str]
    episodes: int = Field(description="Distinct stored episodes read.")
    duplicates: int = Field(description="Episodes read again from a later run (same id), ignored.")
    excluded: dict[str, int] = Field(description="Episodes whose outcome carries no reward, per outcome.")
    carrying_reward: int
    selection: str
    filtered: int = Field(description="Set aside by --select.")
    below_min_reward: int
    not_best_of_n: int
    beyond_top_k: int
    selected: int
    pairs: PairCounts | None = None
    scenarios: dict[str, int] = Field(description="Rows per scenario.")
    empty_reason: str | None = Field(None, description="Why no row was made, and how to get some (when none was).")


def build_dataset(
    run_dirs: Sequence[str | Path],
    fmt: DatasetFormat,
    out: str | Path,
    selection: Selection | None = None,
    *,
    min_margin: float = 0.0,
) -> DatasetSummary:
    """Read ``run_dirs``, select, make ``fmt`` rows and write them to ``out``.

    For ``sft`` without an outcome filter or a minimum reward, only successes are kept (rejection
    sampling; ``--best-of-n`` and ``--top-k`` then rank successes); ask for others explicitly
    (e.g. ``--select outcome=success,truncated`` or ``--min-reward 0``).
    """
    if fmt not in FORMATS:
        raise DatasetError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    selection = selection or Selection()
    if fmt == "sft" and not selection.judges_quality:
        selection = selection.model_copy(update={"outcomes": ("success",)})
    loaded = load_runs(run_dirs)
    result = select(loaded.episodes, selection)
    catalog = ToolCatalog()
    pairs: PairCounts | None = None
    if fmt == "sft":
        rows = sft_rows(result.episodes, catalog)
    elif fmt == "grpo":
        rows = grpo_rows(result.episodes, catalog)
    else:
        stats = PairStats()
        rows = dpo_rows(result.episodes, result.pool, catalog, min_margin=min_margin, stats=stats)
        pairs = PairCounts(
            groups=stats.groups,
            pairs=stats.pairs,
            single=stats.single,
            no_worse=stats.no_worse,
            no_shared_prompt=stats.no_shared_prompt,
        )
    reason = None
    if not rows:
        reason = why_no_pairs(pairs, min_margin) if pairs and pairs.groups else "the selection kept no rows"
    summary = DatasetSummary(
        format=fmt,
        out=str(out),
        rows=len(rows),
        runs=[r.path for r in loaded.runs],
        episodes=len(loaded.episodes),
        duplicates=loaded.duplicates,
        excluded=result.excluded,
        carrying_reward=len(result.pool),
        selection=selection.describe(),
        filtered=result.filtered,
        below_min_reward=result.below_min_reward,
        not_best_of_n=result.not_best_of_n,
        beyond_top_k=result.beyond_top_k,
        selected=len(result.episodes),
        pairs=pairs,
        scenarios=dict(sorted(Counter(str(r["scenario_id"]) for r in rows).items())),
        empty_reason=reason,
    )
    if rows:
        write_rows(rows, out)
    return summary


def _toy(episode_id: str, reward: float, outcome: Outcome, seed: int = 0) -> Episode:
    """A stand-in episode (doctests)."""
    record = EpisodeRecord(
        episode_id=episode_id,
        scenario_id="Toy",
        scenario_hash="0",
        config_hash="0",
        index=0,
        base_seed=seed,
        seed=seed,
        outcome=outcome,
        reward=reward,
        trajectory=Trajectory(scenario_id="Toy", seed=seed, messages=[]),
        trajectory_hash="0",
    )
    return Episode(RunInfo("run", "scripted", None, {}), record, int.from_bytes(episode_id.encode(), "big"))
