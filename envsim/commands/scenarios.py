"""``envsim scenarios ...``: the scenario factory's commands (generate, stats, mine, review).

Each command module adds its command to :data:`app` (this sub-app of the main CLI), e.g.
:mod:`envsim.commands.suite_stats` adds ``envsim scenarios stats``.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Scenario suites: generate, verify, count and mine scenarios.",
)
"""The ``envsim scenarios`` sub-app."""


def register(main: typer.Typer) -> None:
    """Add ``scenarios`` (this sub-app) to the main CLI."""
    main.add_typer(app, name="scenarios")
