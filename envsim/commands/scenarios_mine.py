"""``envsim scenarios mine`` and ``envsim scenarios review``: scenario drafts from conversation logs.

* ``envsim scenarios mine LOGS --toolkit T [--mapping FILE] --out DIR [--format F] [--corpus PATH]
  [--limit N] [--mapped-only] [--json]`` drafts one scenario per conversation of ``LOGS`` (a log
  file or folder, or the name of a corpus folder: ``abcd``, ``star``) into ``DIR`` (see
  :mod:`envsim.factory.mining`).
* ``envsim scenarios review DIR [--accept-verified] [--corpus PATH] [--json]`` shows each draft
  beside its source conversation and asks: accept, reject, edit (``$EDITOR``), skip or quit. With
  ``--accept-verified`` it asks nothing and accepts every draft that validates, its expected
  actions replaying on its world (see :mod:`envsim.factory.review`).

The corpus folder is the one setting of :func:`envsim.transcripts.corpus.corpus_dir`
(``--corpus``, else ``ENVSIM_TRANSCRIPTS``, else ``../shared/transcripts``). Bad input (a mapping
naming an unknown tool, a log line that is not valid JSON) exits with status 2 and
``file:line:col: field: message``, before any draft is written.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from envsim.cli_common import JsonFlag, emit_json, err, out
from envsim.errors import EnvsimError, ScenarioError
from envsim.scenario import Scenario
from envsim.transcripts.schema import Conversation

CorpusOption = Annotated[
    Path | None,
    typer.Option(
        "--corpus", help="The transcript corpus folder (default: ENVSIM_TRANSCRIPTS or ../shared/transcripts)."
    ),
]

Answer = Literal["a", "r", "e", "s", "q"]
CHOICES = {"a": "accept", "r": "reject", "e": "edit", "s": "skip", "q": "quit"}
SHOWN_CHARS = 300
"""The longest turn text shown beside a draft."""


def register(app: typer.Typer) -> None:
    """Add ``mine`` and ``review`` to ``envsim scenarios`` (the sub-app of :mod:`envsim.commands.scenarios`)."""
    from envsim.commands.scenarios import app as scenarios

    scenarios.command("mine")(mine)
    scenarios.command("review")(review)


def mine(
    logs: Annotated[str, typer.Argument(help="A log file or folder, or a corpus folder's name (abcd, star).")],
    toolkit: Annotated[str, typer.Option(help="The toolkit the drafts use (retail, banking, medical_supply...).")],
    output: Annotated[Path, typer.Option("--out", "-o", help="The folder the drafts are written to.")],
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping of the log's actions onto the toolkit's tools.")
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="The log's format (default: from the corpus name or content).")
    ] = None,
    corpus: CorpusOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Draft at most this many conversations.")] = None,
    mapped_only: Annotated[
        bool, typer.Option("--mapped-only", help="Keep only the drafts whose logged actions all map.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Draft scenarios (status: draft) from conversation logs, with their provenance."""
    from envsim.factory.mapping import MiningMapping, load_mapping
    from envsim.factory.mining import Miner, rejected_sources, write_drafts
    from envsim.toolkits import get_toolkit
    from envsim.transcripts.corpus import corpus_dir
    from envsim.transcripts.importers import read

    try:
        get_toolkit(toolkit)
        corpus_folder = corpus_dir(corpus)
        path, fmt = _locate(logs, format, corpus_folder)
        rules = load_mapping(mapping, toolkit) if mapping is not None else MiningMapping()
        miner = Miner(toolkit, rules, file=_recorded(path, corpus_folder), format=fmt)
        seen = Counter[str]()
        result = miner.mine(
            _counted(read(fmt, path), seen), limit=limit, mapped_only=mapped_only, skip=rejected_sources(output)
        )
    except EnvsimError as error:
        _fail(error)
    written = write_drafts(result.drafts, output)
    summary = result.summary()
    skipped = ", ".join(f"{reason} {n}" for reason, n in summary["skipped"].items()) or "none"
    out.print(
        f"{seen['conversations']} conversations read from {path} ({fmt}): {summary['drafts']} drafts "
        f"({summary['with_actions']} with expected actions) in {output}; skipped: {skipped}"
    )
    out.print(
        f"files: {written['written']} written, {written['unchanged']} unchanged, {written['kept_accepted']} "
        "kept (accepted by a reviewer)"
    )
    if as_json:
        emit_json(
            {
                "logs": str(path),
                "format": fmt,
                "toolkit": toolkit,
                "out": str(output),
                "conversations": seen["conversations"],
                **summary,
                "written": written["written"],
                "unchanged": written["unchanged"],
                "kept_accepted": written["kept_accepted"],
                "ids": [d.scenario.id for d in result.drafts],
            }
        )


def review(
    folder: Annotated[Path, typer.Argument(help="The folder of mined drafts.")],
    accept_verified: Annotated[
        bool,
        typer.Option("--accept-verified", help="Ask nothing: accept every draft that validates (its actions replay)."),
    ] = False,
    corpus: CorpusOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Review mined drafts beside their source conversations: accept, reject or edit each."""
    from envsim.factory import review as reviewing
    from envsim.transcripts.corpus import corpus_dir

    if not folder.is_dir():
        _fail(EnvsimError(f"{folder}: no such folder"))
    files = reviewing.draft_files(folder)
    outcome: dict[str, list[str]] = {"accepted": [], "rejected": [], "kept": []}
    reasons: dict[str, str] = {}
    if accept_verified:
        for path in files:
            problems = reviewing.verify(path)
            if problems:
                outcome["kept"].append(path.stem)
                reasons[path.stem] = problems[0]
                err.print(f"{path.name}: kept as a draft: {problems[0]}")
            else:
                reviewing.accept(path)
                outcome["accepted"].append(path.stem)
                out.print(f"{path.name}: accepted")
    else:
        drafts = {path: reviewing.read_draft(path) for path in files}
        sources = reviewing.source_conversations([s for s in drafts.values() if s is not None], corpus_dir(corpus))
        for path, scenario in drafts.items():
            action = _review_one(path, scenario, sources)
            if action == "quit":
                outcome["kept"].extend(p.stem for p in files[files.index(path) :])
                break
            outcome[action].append(path.stem)
    counts = {name: len(ids) for name, ids in outcome.items()}
    out.print(
        f"{len(files)} drafts: {counts['accepted']} accepted, {counts['rejected']} rejected, {counts['kept']} kept"
    )
    if as_json:
        emit_json({"folder": str(folder), "drafts": len(files), **counts, "ids": outcome, "reasons": reasons})


def _review_one(path: Path, scenario: Scenario | None, sources: dict[str, Conversation | str]) -> str:
    """Show one draft and act on the reviewer's answers; ``accepted``, ``rejected``, ``kept`` or ``quit``."""
    from envsim.factory import review as reviewing

    while True:
        problems = reviewing.verify(path)
        source = sources.get(scenario.id, "") if scenario is not None else ""
        out.print(_side_by_side(path, scenario, source, problems))
        answer = typer.prompt("[a]ccept, [r]eject, [e]dit, [s]kip, [q]uit", type=Answer, default="s")
        action = CHOICES[answer]
        if action == "accept":
            if problems:
                err.print(f"{path.name} does not validate yet ({len(problems)} problems): edit it, skip or reject it")
                continue
            reviewing.accept(path)
            out.print(f"{path.name}: accepted")
            return "accepted"
        if action == "reject":
            reviewing.reject(path, scenario)
            out.print(f"{path.name}: rejected (recorded in {path.parent / 'rejected.jsonl'})")
            return "rejected"
        if action == "edit":
            _edit(path)
            scenario = reviewing.read_draft(path) or scenario
            continue
        return "kept" if action == "skip" else "quit"


def _edit(path: Path) -> None:
    """Open ``path`` in ``$VISUAL`` or ``$EDITOR`` (default ``vi``) and wait for it."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        subprocess.run([*shlex.split(editor), str(path)], check=False)
    except OSError as error:
        err.print(f"cannot start the editor {editor!r}: {error.strerror or error}; set EDITOR")


def _side_by_side(path: Path, scenario: Scenario | None, source: Conversation | str, problems: list[str]) -> Table:
    table = Table(path.name, "source conversation", expand=True)
    left = Text()
    if scenario is None:
        left.append("the draft does not parse:\n", style="red")
    else:
        user = scenario.user
        left.append(f"{scenario.id}  persona {user.persona.ref or 'inline'}\n", style="bold")
        left.append(f"goal: {user.goal}\nopening: {user.opening}\n")
        for fact in user.facts:
            left.append(f"fact {fact.key}: {fact.value}\n")
        for action in scenario.expected.actions:
            left.append(f"expect {action.name}({json.dumps(action.arguments, ensure_ascii=False)})\n", style="green")
        for note in scenario.source.notes if scenario.source else []:
            left.append(f"note: {note}\n", style="yellow")
    for problem in problems:
        left.append(f"problem: {problem}\n", style="red")
    if not problems:
        left.append("validates: its expected actions replay\n", style="green")
    table.add_row(left, _conversation(source, scenario.source.turn if scenario and scenario.source else None))
    return table


def _conversation(source: Conversation | str, opening: int | None) -> Text:
    if isinstance(source, str):
        return Text(source or "no source recorded", style="dim")
    text = Text()
    for index, turn in enumerate(source.turns):
        if turn.tool is not None:
            line = f"{turn.tool.name}({json.dumps(turn.tool.arguments, ensure_ascii=False)})"
        else:
            line = turn.text
        if len(line) > SHOWN_CHARS:
            line = line[:SHOWN_CHARS] + "…"
        style = "bold" if index == opening else ("dim" if turn.role in ("instruction", "system") else "")
        text.append(f"[{index}] {turn.role}: {line}\n", style=style)
    return text


def _counted(conversations: Iterator[Conversation], seen: Counter[str]) -> Iterator[Conversation]:
    for conversation in conversations:
        seen["conversations"] += 1
        yield conversation


def _locate(logs: str, format: str | None, corpus: Path | None) -> tuple[Path, str]:
    """The log's path and format: a path as given, else a folder of the corpus; the format as given, else the
    corpus folder's name, else read from the content."""
    from envsim.transcripts.importers import IMPORTERS, importer

    if format is not None:
        importer(format)  # an unknown format fails here, with a suggestion
    path = Path(logs)
    if not path.exists() and corpus is not None and (corpus / logs).exists():
        path = corpus / logs
    if not path.exists():
        where = f" (nor in the corpus folder {corpus})" if corpus is not None else ""
        raise EnvsimError(f"{logs}: no such file or folder{where}")
    if format is not None:
        return path, format
    inside = _relative(path, corpus)
    if inside is not None and inside.parts and inside.parts[0] in IMPORTERS:
        return path, inside.parts[0]
    if path.name in IMPORTERS:
        return path, path.name
    return path, _sniff(path)


def _sniff(path: Path) -> str:
    """``openai`` for JSON Lines whose first object has ``messages``, ``plain`` for other JSONL or CSV."""
    from envsim.transcripts.importers.common import input_files, open_text

    files = input_files(path, (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".csv", ".csv.gz"))
    first = files[0]
    if first.name.endswith((".csv", ".csv.gz")):
        return "plain"
    with open_text(first) as handle:
        for line in handle:
            if line.strip():
                try:
                    record: Any = json.loads(line)
                except json.JSONDecodeError:
                    return "openai"  # its reader reports the bad line with its column
                return "openai" if isinstance(record, dict) and "messages" in record else "plain"
    return "plain"


def _relative(path: Path, corpus: Path | None) -> Path | None:
    if corpus is None:
        return None
    try:
        return path.resolve().relative_to(corpus.resolve())
    except ValueError:
        return None


def _recorded(path: Path, corpus: Path | None) -> str:
    """The log as a draft records it: relative to the corpus folder when inside it, else as given."""
    inside = _relative(path, corpus)
    return inside.as_posix() if inside is not None else str(path)


def _fail(error: EnvsimError) -> NoReturn:
    problems = error.problems if isinstance(error, ScenarioError) else [error]
    for problem in problems:
        err.print(str(problem))
    raise typer.Exit(2)
