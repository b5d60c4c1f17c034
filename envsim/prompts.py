"""Every prompt and templated line is rendered here: sandboxed jinja2, strict about undefined names.

Templates that ship with envsim live in ``envsim/templates/`` (package data); templates that
come from scenario files are rendered with :func:`render_string` in the same sandbox.

Example:
    >>> render_string("My {{ key }} is {{ value }}.", key="phone", value="555-0142")
    'My phone is 555-0142.'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import PackageLoader, StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment


@lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """The one jinja2 environment: sandboxed, ``StrictUndefined``, no autoescape (plain text)."""
    return SandboxedEnvironment(
        loader=PackageLoader("envsim", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template_name: str, **context: Any) -> str:
    """Render a packaged template by file name."""
    return environment().get_template(template_name).render(**context).strip()


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Template:
    return environment().from_string(source)


def render_string(source: str, **context: Any) -> str:
    """Render a template given as text (compiled once per distinct text)."""
    return _compiled(source).render(**context)
