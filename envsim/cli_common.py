"""What the CLI's command modules share: the consoles, the ``--json`` flag and the JSON line it ends with.

Every console of the command line comes from :func:`plain_console`: it prints text exactly as
given, because the text is the user's (paths, ids, messages, scenario text, transcripts). Styling is
done with :class:`rich.text.Text` objects, never with markup in strings.

Example:
    >>> import io
    >>> console = plain_console(file=io.StringIO(), width=80)
    >>> console.print("nope[/x].yaml:100:12: [bold]x[/bold] :smile:")
    >>> console.file.getvalue()
    'nope[/x].yaml:100:12: [bold]x[/bold] :smile:\\n'
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console


def plain_console(*, stderr: bool = False, file: IO[str] | None = None, width: int | None = None) -> Console:
    """A console that prints strings verbatim: no markup, no emoji codes, no highlighting; long lines not wrapped."""
    return Console(stderr=stderr, file=file, width=width, markup=False, emoji=False, highlight=False, soft_wrap=True)


out = plain_console()
err = plain_console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def emit_json(payload: dict[str, Any]) -> None:
    """Write ``payload`` as one JSON line (sorted keys) on stdout and flush."""
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def write_schema(model: type[BaseModel], output: Path | None) -> None:
    """Write ``model``'s JSON Schema to ``output``, or to stdout when None (``envsim schema``, ``envsim
    scenarios schema``)."""
    text = json.dumps(model.model_json_schema(), indent=2)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(f"wrote {output}")


def require_serve_extra(command: str, modules: Sequence[str]) -> None:
    """Raise :class:`envsim.errors.EnvsimError` naming the install command when a module ``command`` needs is missing.

    ``envsim serve`` and ``envsim mcp`` check this before importing the ``serve`` extra's packages.

    Example:
        >>> require_serve_extra("envsim mcp", ["json"])
        >>> require_serve_extra("envsim mcp", ["json", "no_such_module_xyz"])
        Traceback (most recent call last):
        ...
        envsim.errors.EnvsimError: envsim mcp needs the serve extra (missing: no_such_module_xyz): pip install ...
    """
    from envsim.errors import EnvsimError

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise EnvsimError(
            f"{command} needs the serve extra (missing: {', '.join(missing)}): pip install 'envsim[serve]'"
        )
