""" "Did you mean" suggestions for misspelt names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``name``, or None when none is close enough to suggest."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``' (did you mean 'x'?)'`` for the closest choice, or ``''``.

    Example:
        >>> did_you_mean("lookup_patinet", ["lookup_patient", "transfer_to_human"])
        " (did you mean 'lookup_patient'?)"
    """
    match = closest(name, choices)
    return f" (did you mean {match!r}?)" if match else ""
