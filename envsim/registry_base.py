"""Built-in kinds by name (``"module:Class"``, imported only when made), for the agent and user registries.

Example:
    >>> kinds = {"counter": "collections:Counter"}
    >>> make_registered("kind", kinds, "counter", a=2)
    Counter({'a': 2})
    >>> make_registered("kind", kinds, "countr")
    Traceback (most recent call last):
    ...
    envsim.errors.UnknownNameError: unknown kind 'countr' (did you mean 'counter'?); kinds: counter
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from envsim.errors import UnknownNameError
from envsim.suggest import did_you_mean


def make_registered(kind: str, registry: Mapping[str, str], name: str, **options: Any) -> Any:
    """A new instance of the class ``registry[name]`` names (``options`` go to its constructor).

    Raises:
        UnknownNameError: ``name`` is not in ``registry`` (``unknown <kind> ...; <kind>s: ...``).
    """
    if name not in registry:
        raise UnknownNameError(f"unknown {kind} {name!r}{did_you_mean(name, registry)}; {kind}s: {', '.join(registry)}")
    module, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module), attr)(**options)
