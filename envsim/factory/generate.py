"""``envsim scenarios generate``: verified scenario suites from task families, deterministic and atomic.

For each family (in the order given), draws are made until ``count`` candidates pass the gate
(:mod:`envsim.factory.gate`) or ``10 * count + 50`` draws are spent. Each kept instance is an
ordinary scenario file with a ``source:`` block, written to ``OUT/<split>/<toolkit>/<Id>.yaml``:

- the split is a bucket of the SHA-256 of the family, world seed and bound record ids
  (:func:`~envsim.factory.draw.split_key`), so instances sharing their records never straddle
  splits; a family named in ``holdout`` goes whole to the split ``holdout``;
- every file is written atomically (a temporary file, then a rename), and one already holding the
  same bytes is left alone; ``suite.json`` (the manifest) is written last, so a killed run leaves
  complete files only and a rerun with the same arguments completes it;
- the same arguments give byte-identical files, whatever ``workers`` is: each family is drawn and
  gated on its own (in a worker process when ``workers > 1``) and the results are merged in order;
- with ``paraphrase`` (a model), each kept instance's opening and goal are reworded where the
  paraphrase keeps every fact value (:mod:`envsim.factory.paraphrase`; cached, so a rerun is
  byte-identical too); the kept, rejected and failed paraphrases are counted in the manifest.

Example:
    >>> parse_split("train=0.8,dev=0.1,test=0.1")
    [('train', 0.8), ('dev', 0.1), ('test', 0.1)]
"""

from __future__ import annotations

import gc
import hashlib
import io
import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from envsim.errors import NoMatch, Problem, ScenarioError
from envsim.factory.draw import ATTEMPTS, GENERATOR, Candidate, Drawer, canonical_json, distinct_candidates
from envsim.factory.draw import instances as instances
from envsim.factory.family import LoadedFamily, is_family_file, load_family
from envsim.factory.gate import DROP_REASONS, Gate
from envsim.factory.paraphrase import Paraphraser
from envsim.fileio import write_atomic
from envsim.lint import lint_scenario

MANIFEST = "suite.json"
"""The manifest of a generated suite, written last."""

HOLDOUT = "holdout"
"""The split of the families kept out of training (``--holdout-families``)."""

FEASIBILITY_DRAWS = 16
"""Draws tried before generation to tell a family whose query matches nothing."""

_SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def family_dirs() -> list[Path]:
    """The family folders in use: ``families/`` of every scenario folder (shipped, plug-ins', ENVSIM_SCENARIOS)."""
    from envsim.registration import FAMILY_DIR, scenario_dirs

    return [d / FAMILY_DIR for d in scenario_dirs() if (d / FAMILY_DIR).is_dir()]


def family_files(folder: Path) -> list[Path]:
    """The family files under ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file() and is_family_file(p))


_FAMILY_LINE = re.compile(r"^family:\s*['\"]?([A-Za-z0-9]+)['\"]?\s*(?:#.*)?$", re.MULTILINE)


def resolve_families(names: Sequence[str]) -> list[Path]:
    """The family files ``names`` stand for, in order, each once.

    A name is a family file or a folder of them, a toolkit (all its families: ``families/<toolkit>/``
    of every family folder), or a family's name. Raises ``ValueError`` for a name that is none of these.
    """
    from envsim.suggest import did_you_mean
    from envsim.toolkits import toolkit_names

    found: dict[str, Path] = {}
    by_name: dict[str, Path] | None = None
    for name in names:
        path = Path(name)
        if path.is_file():
            paths = [path]
        elif path.is_dir():
            paths = family_files(path)
        elif name in toolkit_names():
            paths = [p for d in family_dirs() if (d / name).is_dir() for p in family_files(d / name)]
            if not paths:
                raise ValueError(f"toolkit {name!r} has no families (looked in {', '.join(map(str, family_dirs()))})")
        else:
            if by_name is None:
                by_name = {}
                for folder in family_dirs():
                    for file in family_files(folder):
                        match = _FAMILY_LINE.search(file.read_text(encoding="utf-8", errors="replace"))
                        if match:
                            by_name.setdefault(match.group(1), file)
            if name not in by_name:
                choices = [*by_name, *toolkit_names()]
                raise ValueError(
                    f"{name!r} is no family file, folder, toolkit or family name{did_you_mean(name, choices)}"
                )
            paths = [by_name[name]]
        for p in paths:
            found.setdefault(os.path.abspath(p), p)
    return list(found.values())


def parse_split(text: str) -> list[tuple[str, float]]:
    """``train=0.8,dev=0.1,test=0.1`` as ``[(name, share), ...]``; raises ``ValueError`` saying what is wrong."""
    out: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        name, eq, share = part.partition("=")
        name = name.strip()
        if not eq or not _SPLIT_NAME.match(name):
            raise ValueError(f"{part!r} is not NAME=SHARE (e.g. train=0.8)")
        if name == HOLDOUT or name in dict(out):
            raise ValueError(f"the split name {name!r} is {'reserved' if name == HOLDOUT else 'given twice'}")
        try:
            value = float(share)
        except ValueError:
            raise ValueError(f"{share.strip()!r} is not a number (in {part!r})") from None
        if not 0 <= value <= 1 or value != value:
            raise ValueError(f"the share of {name!r} must be within [0, 1], got {share.strip()}")
        out.append((name, value))
    if sum(v for _, v in out) <= 0:
        raise ValueError("the shares must not all be 0")
    return out


def split_of(key: str, splits: Sequence[tuple[str, float]]) -> str:
    """The split a split key (a hex SHA-256) falls in: its first 60 bits as a fraction, against the shares."""
    point = int(key[:15], 16) / 16**15 * sum(v for _, v in splits)
    total = 0.0
    for name, share in splits:
        total += share
        if point < total:
            return name
    return next(name for name, share in reversed(splits) if share > 0)


_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""The safe dumper (libyaml's when there is one): its emitter writes the events :func:`dump_yaml` makes."""

_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_PLAIN: dict[str, bool] = {}
"""Per string: whether it reads back as a string when written plainly (remembered: a suite repeats them)."""
_SCALARS: dict[str, yaml.ScalarEvent] = {}
"""Per string met more than once (a key, a family's constant text): its scalar event, shared by every place and
document it is in (the emitter only reads an event). A string met once has an event of its own: remembering the
many one-off values would only leave the garbage collector more objects to walk."""
_MAP_START = yaml.MappingStartEvent(None, None, True, flow_style=False)
_MAP_END = yaml.MappingEndEvent()
_SEQ_START = yaml.SequenceStartEvent(None, None, True, flow_style=False)
_SEQ_END = yaml.SequenceEndEvent()
_NULL = yaml.ScalarEvent(None, "tag:yaml.org,2002:null", (True, False), "null")
_TRUE = yaml.ScalarEvent(None, "tag:yaml.org,2002:bool", (True, False), "true")
_FALSE = yaml.ScalarEvent(None, "tag:yaml.org,2002:bool", (True, False), "false")


def _str_event(value: str) -> yaml.ScalarEvent:
    """The scalar event of a string: plain when it reads back as a string, a literal block (``|``) when it
    spans lines (remembered from the second time on, see :data:`_SCALARS`)."""
    event = _SCALARS.get(value)
    if event is not None:
        return event
    plain = _PLAIN.get(value)
    seen = plain is not None
    if plain is None:
        plain = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR  # type: ignore[no-untyped-call]
        if len(_PLAIN) < 100_000:
            _PLAIN[value] = plain
    event = yaml.ScalarEvent(None, _STR, (plain, True), value, style="|" if "\n" in value else None)
    if seen and type(value) is str and len(_SCALARS) < 20_000:
        _SCALARS[value] = event
    return event


def _float(value: float) -> str:
    node = yaml.SafeDumper(io.StringIO()).represent_float(value)
    assert isinstance(node.value, str)
    return node.value


def _events(value: Any, out: list[yaml.Event]) -> None:
    """The YAML events of JSON data, as the safe dumper makes them with ``default_flow_style=False`` (a
    multi-line string as a literal block, ``|``). Made here rather than by the representer and serializer,
    whose type dispatch, alias bookkeeping and calls back into the resolver cost more than the emitting;
    the events of repeated strings and of the constants are shared (see :data:`_SCALARS`)."""
    kind = type(value)
    if kind is str:
        out.append(_str_event(value))
    elif kind is dict:
        out.append(_MAP_START)
        for key, item in value.items():
            if type(key) is str:
                out.append(_str_event(key))
            else:
                _events(key, out)
            if type(item) is str:
                out.append(_str_event(item))
            else:
                _events(item, out)
        out.append(_MAP_END)
    elif kind is list:
        out.append(_SEQ_START)
        for item in value:
            if type(item) is str:
                out.append(_str_event(item))
            else:
                _events(item, out)
        out.append(_SEQ_END)
    elif value is None:
        out.append(_NULL)
    elif isinstance(value, bool):
        out.append(_TRUE if value else _FALSE)
    elif isinstance(value, str):
        out.append(_str_event(value))
    elif isinstance(value, dict):
        _events(dict(value), out)
    elif isinstance(value, list):
        _events(list(value), out)
    elif isinstance(value, int):
        out.append(yaml.ScalarEvent(None, "tag:yaml.org,2002:int", (True, False), str(value)))
    elif isinstance(value, float):
        out.append(yaml.ScalarEvent(None, "tag:yaml.org,2002:float", (True, False), _float(value)))
    else:
        raise TypeError(f"not JSON data: {type(value).__name__}")


def dump_yaml(data: Any) -> str:
    """``data`` (JSON data) as YAML: mappings in their order, block style, 100 columns, Unicode as is;
    the bytes :func:`yaml.safe_dump` writes (with multi-line strings as ``|`` blocks).

    Example:
        >>> print(dump_yaml({"b": [1, None, True], "a": "two\\nlines"}), end="")
        b:
        - 1
        - null
        - true
        a: |-
          two
          lines
    """
    events: list[yaml.Event] = [yaml.StreamStartEvent(), yaml.DocumentStartEvent(explicit=False)]
    _events(data, events)
    events += [yaml.DocumentEndEvent(explicit=False), yaml.StreamEndEvent()]
    text = yaml.emit(events, Dumper=_DUMPER, width=100, allow_unicode=True)
    assert isinstance(text, str)
    return text


def scenario_yaml(candidate: Candidate) -> str:
    """The file text of a kept candidate: a comment naming its family, then the scenario (field order)."""
    assert candidate.scenario is not None
    body = dump_yaml(candidate.scenario.model_dump(mode="json", exclude_unset=True))
    return f"# Generated by {GENERATOR} from the task family {candidate.family.name}; do not edit.\n{body}"


@dataclass
class FamilyResult:
    """What one family gave: the kept files and the drops, by reason (with the first detail of each)."""

    family: str
    toolkit: str
    kind: str
    traits: list[str]
    path: str
    holdout: bool
    files: list[tuple[str, str, str]] = field(default_factory=list)
    """``(relative path, instance id, file text)`` per kept instance, in draw order."""
    paraphrases: Counter[str] = field(default_factory=Counter)
    """With ``--paraphrase``: accepted, rejected, failed, cached (see :mod:`envsim.factory.paraphrase`)."""
    paraphrase_examples: dict[str, str] = field(default_factory=dict)
    persona: Counter[str] = field(default_factory=Counter)
    drops: Counter[str] = field(default_factory=Counter)
    details: dict[str, str] = field(default_factory=dict)
    draws: int = 0


@dataclass(frozen=True)
class FamilyTask:
    """One family to generate (picklable, for worker processes)."""

    path: str
    count: int
    seed: int
    splits: tuple[tuple[str, float], ...]
    holdout: bool
    paraphrase: str | None = None
    """The model that rewords kept instances' openings and goals (``None``: none)."""


def generate_family(
    task: FamilyTask,
    drawer: Drawer | None = None,
    on_step: Callable[[int], None] | None = None,
    on_keep: Callable[[str, str], None] | None = None,
) -> FamilyResult:
    """Draw and gate one family's instances (``on_step(kept_so_far)`` after each candidate,
    ``on_keep(relative_path, text)`` as each is kept, so that a caller can write it at once)."""
    drawer = drawer if drawer is not None else Drawer(load_family(task.path))
    family = drawer.family
    result = FamilyResult(family.family, family.toolkit, family.kind, list(family.traits), task.path, task.holdout)
    gate = Gate()
    seen: set[str] = set()
    paraphraser = Paraphraser(task.paraphrase) if task.paraphrase is not None else None
    for index in range(10 * task.count + 50):
        if len(result.files) >= task.count:
            break
        result.draws += 1
        try:
            params = drawer.parameters(task.seed, index)
        except NoMatch:
            result.drops["no_match"] += 1
            continue
        key = canonical_json(params.values)
        if key in seen:
            result.drops["duplicate_parameters"] += 1
            continue
        seen.add(key)
        candidate = drawer.candidate(task.seed, index, params)
        verdict = gate.verify(candidate)
        if not verdict.ok:
            reason = verdict.reason or "invalid"
            result.drops[reason] += 1
            result.details.setdefault(reason, verdict.detail)
        else:
            assert candidate.scenario is not None
            if paraphraser is not None:
                candidate.scenario = paraphraser(candidate.scenario)
            split = HOLDOUT if task.holdout else split_of(candidate.split_key, task.splits)
            relative = f"{split}/{family.toolkit}/{candidate.id}.yaml"
            text = scenario_yaml(candidate)
            result.files.append((relative, candidate.id, text))
            if on_keep is not None:
                on_keep(relative, text)
            persona = candidate.scenario.user.persona.ref or "inline"
            result.persona[persona] += 1
        if on_step is not None:
            on_step(len(result.files))
    if paraphraser is not None:
        result.paraphrases.update(paraphraser.counts)
        result.paraphrase_examples.update(paraphraser.examples)
    return result


def feasibility_problem(drawer: Drawer, seed: int) -> Problem | None:
    """A located problem when none of the first draws of the drawer's family finds records for its query."""
    loaded = drawer.loaded
    failed: Counter[str] = Counter()
    for index in range(FEASIBILITY_DRAWS):
        try:
            drawer.parameters(seed, index)
            return None
        except NoMatch as miss:
            failed[miss.binding] += 1
    binding = failed.most_common(1)[0][0] if failed else next(iter(loaded.family.select), "")
    spec = loaded.family.select.get(binding)
    source = f"table {spec.table}" if spec is not None and spec.table else f"list {spec.from_ if spec else '?'}"
    seeds = loaded.family.world.seeds
    shown = ", ".join(map(str, seeds[:8])) + (", ..." if len(seeds) > 8 else "")
    return loaded.problem(
        ("select", binding),
        f"no record matches (in {source}, given the earlier bindings) in {FEASIBILITY_DRAWS * ATTEMPTS} tries over "
        f"the world seeds [{shown}]",
    )


@dataclass
class SuiteResult:
    """What a generation run did: per family results, files written and left as they were."""

    families: list[FamilyResult]
    written: int
    unchanged: int
    manifest: dict[str, Any]


def check_family(path: Path, *, instances: int = 3, seed: int = 0) -> LoadedFamily:
    """Validate a family file as ``envsim validate`` does: its schema and static checks, that its query
    matches records, and a dry instantiation of its first ``instances`` distinct draws (each renders,
    validates and passes the lint, its expected actions replaying). Raises :class:`ScenarioError`."""
    loaded = load_family(path)
    drawer = Drawer(loaded)
    problem = feasibility_problem(drawer, seed)
    if problem is not None:
        raise ScenarioError([problem])
    problems: list[Problem] = []
    for candidate in distinct_candidates(drawer, instances, seed):
        if candidate.problem is not None:
            problems.append(candidate.problem)
        elif candidate.scenario is not None:
            found = lint_scenario(candidate.scenario)
            problems.extend(loaded.body_problem(loc, message, key=key) for loc, message, key in found)
    unique = list(dict.fromkeys(problems))
    if unique:
        unique.sort(key=lambda p: (p.line, p.column))
        raise ScenarioError(unique)
    return loaded


def _clean_temporaries(out: Path) -> set[Path]:
    """Remove temporary files a killed run left (``.<name>.<pid>.<hex>.tmp``; never a finished file);
    return the files there are."""
    found: set[Path] = set()
    if not out.exists():
        return found
    for root, _, names in os.walk(out):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(root, name).unlink(missing_ok=True)
            else:
                found.add(Path(root, name))
    return found


def _write(path: Path, text: str, folders: set[Path] | None = None, present: set[Path] | None = None) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that; whether it wrote.

    ``folders``: the folders already made (each is made once); ``present``: the files there were
    before the run (only those are read and compared; None: any may exist).
    """
    if present is None or path in present:
        try:
            if path.read_bytes() == text.encode("utf-8"):
                return False
        except FileNotFoundError:
            pass
    if folders is None or path.parent not in folders:
        path.parent.mkdir(parents=True, exist_ok=True)
        if folders is not None:
            folders.add(path.parent)
    write_atomic(path, text, durable=False)
    return True


def manifest(
    results: list[FamilyResult],
    *,
    seed: int,
    count: int,
    splits: Sequence[tuple[str, float]],
    paraphrase: str | None = None,
) -> dict[str, Any]:
    """The suite's manifest (``suite.json``): deterministic, no times (``paraphrase`` only when one was asked)."""
    per_split: Counter[str] = Counter()
    per_toolkit: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    files: list[str] = []
    for r in results:
        for relative, _, _ in r.files:
            per_split[relative.split("/", 1)[0]] += 1
            files.append(relative)
        per_toolkit[r.toolkit] += len(r.files)
        drops.update(r.drops)
    data: dict[str, Any] = {
        "generator": GENERATOR,
        "seed": seed,
        "count": count,
        "splits": {name: per_split.get(name, 0) for name in sorted({*dict(splits), *per_split})},
        "split_shares": {name: share for name, share in splits},
        "holdout_families": [r.family for r in results if r.holdout],
        "families": {
            r.family: {
                "toolkit": r.toolkit,
                "kind": r.kind,
                "traits": r.traits,
                "path": r.path,
                "kept": len(r.files),
                "draws": r.draws,
                "drops": dict(sorted(r.drops.items())),
                "drop_examples": dict(sorted(r.details.items())),
                "personas": dict(sorted(r.persona.items())),
                "holdout": r.holdout,
            }
            for r in results
        },
        "counts": {
            "total": len(files),
            "per_split": dict(sorted(per_split.items())),
            "per_toolkit": dict(sorted(per_toolkit.items())),
            "per_family": {r.family: len(r.files) for r in results},
        },
        "drops": {reason: drops.get(reason, 0) for reason in DROP_REASONS},
        "files": sorted(files),
    }
    if paraphrase is not None:
        counted: Counter[str] = Counter()
        examples: dict[str, str] = {}
        for r in results:
            counted.update(r.paraphrases)
            for kind, example in r.paraphrase_examples.items():
                examples.setdefault(kind, example)
        data["paraphrase"] = {
            "model": paraphrase,
            **{kind: counted.get(kind, 0) for kind in ("accepted", "rejected", "failed")},
            "examples": dict(sorted(examples.items())),
        }
    return data


def generate_suite(
    families: Sequence[Path],
    *,
    count: int,
    seed: int,
    out: Path,
    splits: Sequence[tuple[str, float]] = (("train", 1.0),),
    holdout: Sequence[str] = (),
    workers: int = 1,
    on_progress: Callable[[int], None] | None = None,
    paraphrase: str | None = None,
) -> SuiteResult:
    """Generate a suite into ``out`` (see the module docstring); ``on_progress(kept)`` as instances are kept.

    Every family is loaded and checked first (schema, static checks, a query that matches nothing):
    any problem raises :class:`ScenarioError` before anything is written.
    """
    loaded: list[LoadedFamily] = []
    problems: list[Problem] = []
    for path in families:
        try:
            loaded.append(load_family(path))
        except ScenarioError as err:
            problems.extend(err.problems)
    names = [f.name for f in loaded]
    clashes = {n for n in names if names.count(n) > 1}
    for f in loaded:
        if f.name in clashes:
            problems.append(f.problem(("family",), f"{f.name!r} is the name of more than one family given"))
    unknown = [h for h in holdout if h not in names]
    if unknown:
        raise ValueError(f"--holdout-families names no family given: {', '.join(unknown)}")
    if problems:
        raise ScenarioError(problems)
    drawers = [Drawer(f) for f in loaded]
    frozen = _warm(drawers, seed, count)
    try:
        problems = [p for p in (feasibility_problem(d, seed) for d in drawers) if p is not None]
        if problems:
            raise ScenarioError(problems)
        results, written, unchanged = _generate(
            drawers, count, seed, out, splits, holdout, workers, paraphrase, on_progress
        )
    finally:
        if frozen:
            gc.unfreeze()
    data = manifest(results, seed=seed, count=count, splits=splits, paraphrase=paraphrase)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / MANIFEST, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return SuiteResult(results, written, unchanged, data)


def _generate(
    drawers: list[Drawer],
    count: int,
    seed: int,
    out: Path,
    splits: Sequence[tuple[str, float]],
    holdout: Sequence[str],
    workers: int,
    paraphrase: str | None,
    on_progress: Callable[[int], None] | None,
) -> tuple[list[FamilyResult], int, int]:
    """Every family's instances, written as they come: the results, the files written and left unchanged."""
    tasks = [
        FamilyTask(str(d.loaded.path), count, seed, tuple(splits), d.loaded.name in holdout, paraphrase)
        for d in drawers
    ]
    present = _clean_temporaries(out)
    results: list[FamilyResult] = []
    written = unchanged = 0
    kept_before = 0
    folders: set[Path] = set()

    def write(relative: str, text: str) -> None:
        nonlocal written, unchanged
        if _write(out / relative, text, folders, present):
            written += 1
        else:
            unchanged += 1

    def step(kept: int) -> None:
        if on_progress is not None:
            on_progress(kept_before + kept)

    for result, streamed in _results(tasks, drawers, workers, step, write):
        if not streamed:  # from a worker process: its files are written here, in order
            for relative, _, text in result.files:
                write(relative, text)
        results.append(result)
        kept_before += len(result.files)
        step(0)
    return results, written, unchanged


def _warm(drawers: list[Drawer], seed: int, count: int) -> bool:
    """Build every family's worlds and query answers, then move them out of the garbage collector's sight.

    They live as long as the run and hold millions of objects: each full collection walked them all
    (a fifth of the run's time, pauses of most of a second). Returns whether the heap was frozen (the
    caller unfreezes it when the run ends; a heap already frozen by someone else is left as it is).
    """
    enabled = gc.isenabled()
    gc.disable()  # building millions of objects that all live on: collecting meanwhile only costs time
    try:
        for drawer in drawers:
            drawer.warm(seed, count + FEASIBILITY_DRAWS)
    finally:
        if enabled:
            gc.enable()
    if gc.get_freeze_count() > 0:
        return False
    gc.freeze()  # garbage frozen with them is collected after the run's unfreeze
    return True


_FORKED: list[Drawer] = []
"""The drawers of the run, inherited by forked workers (their query caches come along)."""


def _run(index_task: tuple[int, FamilyTask]) -> FamilyResult:
    index, task = index_task
    drawer = _FORKED[index] if index < len(_FORKED) and _FORKED[index].loaded.path == Path(task.path) else None
    return generate_family(task, drawer)


def _results(
    tasks: list[FamilyTask],
    drawers: list[Drawer],
    workers: int,
    on_step: Callable[[int], Any],
    on_keep: Callable[[str, str], None],
) -> Iterator[tuple[FamilyResult, bool]]:
    """Each family's result in order, and whether its files were already handed to ``on_keep`` one by one
    (in this process) or are still to be written (from a worker process)."""
    if workers <= 1 or len(tasks) <= 1:
        for task, drawer in zip(tasks, drawers, strict=True):
            yield generate_family(task, drawer, on_step, on_keep), True
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    _FORKED[:] = drawers
    try:
        with context.Pool(min(workers, len(tasks))) as pool:
            for result in pool.imap(_run, list(enumerate(tasks))):
                yield result, False
    finally:
        _FORKED.clear()


def suite_digest(out: Path) -> str:
    """The SHA-256 of every file of a suite folder (paths and bytes), for comparing runs."""
    digest = hashlib.sha256()
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(out)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
