"""The persona model and the persona library.

This is the seam for the calibrated persona model: a scenario names a persona from the
library (``persona: {ref: panicked_caller}``) or defines one inline; simulators read only
this model. The library ships as YAML in ``envsim/personas/``.

Example:
    >>> load_persona("panicked_caller").initial_affect
    'panicked'
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from envsim.errors import UnknownNameError
from envsim.suggest import did_you_mean

Affect = Literal["calm", "confused", "frustrated", "angry", "panicked", "relieved"]


class Persona(BaseModel):
    """How a mock user behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier, e.g. panicked_caller.")
    description: str = Field("", description="Who this user is, for people and prompts.")
    initial_affect: Affect = Field("calm", description="Affect at the start of the conversation.")
    patience: int = Field(3, ge=0, le=50, description="Unhelpful agent turns the user tolerates before giving up.")
    nudges: list[str] = Field(default_factory=list, description="Lines said when the agent does not help.")
    give_up: str = Field("Forget it, I'll call back later.", description="The user's last line on giving up.")


@lru_cache(maxsize=1)
def persona_library() -> dict[str, Persona]:
    """Every persona shipped in ``envsim/personas/*.yaml``, by name."""
    library: dict[str, Persona] = {}
    for entry in sorted(resources.files("envsim.personas").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            for raw in yaml.safe_load(entry.read_text(encoding="utf-8")) or []:
                persona = Persona.model_validate(raw)
                library[persona.name] = persona
    return library


def load_persona(name: str) -> Persona:
    """The library persona called ``name``."""
    library = persona_library()
    if name not in library:
        raise UnknownNameError(f"unknown persona {name!r}{did_you_mean(name, library)}")
    return library[name]
