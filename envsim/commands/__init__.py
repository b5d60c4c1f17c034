"""Sub-commands of the ``envsim`` CLI, one module each.

Every module here defines ``register(app: typer.Typer) -> None``, which adds its commands (or
a sub-app) to the main app; :mod:`envsim.cli` calls each at start-up. Keep imports of heavy
libraries inside the command functions.
"""
