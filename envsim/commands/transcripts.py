"""``envsim transcripts``: import published transcript corpora and describe them.

* ``envsim transcripts import FORMAT PATH --out OUT.jsonl [--json]`` converts a corpus to the
  canonical JSONL and prints counts.
* ``envsim transcripts stats PATH [--format FORMAT] [--top K] [--json]`` prints turn counts,
  turn lengths, reply latencies and label counts.
* ``envsim transcripts formats`` lists the formats.

An unknown format, a missing file or a malformed record exits with status 2 and a message
naming the file and line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from envsim.cli_common import JsonFlag, emit_json, err, out
from envsim.transcripts.schema import Conversation

PROGRESS_BYTES = 1_000_000
"""Inputs at least this big show a progress counter (on a terminal)."""


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _with_progress(conversations: Iterable[Conversation], path: Path, verb: str) -> Iterator[Conversation]:
    """Yield ``conversations``, showing a live count on stderr when it is a terminal and the input is big."""
    if not err.is_terminal or _size(path) < PROGRESS_BYTES:
        yield from conversations
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    counter = TextColumn("{task.description}: {task.completed} conversations", markup=False)
    with Progress(SpinnerColumn(), counter, TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task(f"{verb} {path.name}", total=None)
        for conversation in conversations:
            yield conversation
            progress.advance(task)


def register(app: typer.Typer) -> None:
    """Add the ``transcripts`` sub-app to the main CLI."""
    sub = typer.Typer(
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help="Import transcript corpora to the canonical JSONL and compute their statistics.",
    )

    @sub.command("import")
    def import_(
        format: Annotated[str, typer.Argument(help="Input format (see 'envsim transcripts formats').")],
        path: Annotated[Path, typer.Argument(help="Input file or folder.")],
        output: Annotated[Path, typer.Option("--out", "-o", help="Canonical JSONL to write (.gz to gzip).")],
        as_json: JsonFlag = False,
    ) -> None:
        """Convert a corpus to canonical JSONL (one conversation per line) and print counts."""
        from envsim.transcripts.importers import read, write_jsonl

        conversations = read(format, path)
        started = time.perf_counter()
        roles: Counter[str] = Counter()

        def counted() -> Iterator[Conversation]:
            for conversation in _with_progress(conversations, path, "importing"):
                roles.update(turn.role for turn in conversation.turns)
                yield conversation

        count = write_jsonl(counted(), output)
        seconds = time.perf_counter() - started
        by_role = ", ".join(f"{role} {n}" for role, n in sorted(roles.items()))
        out.print(f"{count} conversations, {roles.total()} turns ({by_role or 'none'}) → {output} in {seconds:.2f}s")
        if as_json:
            emit_json(
                {
                    "format": format,
                    "path": str(path),
                    "out": str(output),
                    "conversations": count,
                    "turns": roles.total(),
                    "turns_by_role": dict(sorted(roles.items())),
                    "seconds": seconds,
                }
            )

    @sub.command()
    def stats(
        path: Annotated[Path, typer.Argument(help="Transcript file or folder.")],
        format: Annotated[str, typer.Option("--format", "-f", help="Its format (see 'formats').")] = "canonical",
        top: Annotated[int, typer.Option(min=1, help="How many intents, emotions, domains to list.")] = 10,
        as_json: JsonFlag = False,
    ) -> None:
        """Counts, turn lengths (words), reply latencies (seconds) and label counts of a transcript set."""
        from envsim.transcripts.importers import read
        from envsim.transcripts.stats import as_rows, summarize

        summary = summarize(_with_progress(read(format, path), path, "reading"), top_k=top)
        rows = as_rows(summary)
        counts = Table("count", "value", title=f"{path} ({format})")
        for row in rows["counts"]:
            counts.add_row(*row)
        out.print(counts)
        for key, title in (("words", "words per turn"), ("latency", "reply latency (seconds)")):
            table = Table("", "n", "mean", "median", "p90", "min", "max", title=title)
            for row in rows[key]:
                table.add_row(*row)
            out.print(table)
        if rows["labels"]:
            labels = Table("label", "value", "conversations", title="labels")
            for row in rows["labels"]:
                labels.add_row(*row)
            out.print(labels)
        if as_json:
            emit_json({"path": str(path), "format": format, **summary.model_dump()})

    @sub.command()
    def formats(as_json: JsonFlag = False) -> None:
        """List the transcript formats the importers read."""
        from envsim.transcripts.importers import IMPORTERS

        table = Table("format", "reads")
        for name, importer in IMPORTERS.items():
            table.add_row(name, importer.description)
        out.print(table)
        if as_json:
            emit_json({"formats": {name: i.description for name, i in IMPORTERS.items()}})

    app.add_typer(sub, name="transcripts")
