"""Trainer-configuration details shared by the SFT and GRPO helpers.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Old:
    ...     gradient_checkpointing: bool = True
    >>> checkpointing_field(Old)
    'gradient_checkpointing'
"""

from __future__ import annotations

import dataclasses
from typing import Any


def checkpointing_field(config_class: Any) -> str:
    """The name of a training config's activation-checkpointing switch.

    transformers 5.x renamed ``gradient_checkpointing`` to ``activation_checkpointing`` and warns
    (``FutureWarning``) when the old name is used, which TRL's configs do by default (``True``);
    setting the new name silences it. Older versions only know the old name.
    """
    names = {f.name for f in dataclasses.fields(config_class)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
