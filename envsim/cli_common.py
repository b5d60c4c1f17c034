"""What the CLI's command modules share: the consoles, the ``--json`` flag and the JSON line it ends with."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def emit_json(payload: dict[str, Any]) -> None:
    """Write ``payload`` as one JSON line (sorted keys) on stdout and flush."""
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()
