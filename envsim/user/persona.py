"""The persona model and the persona library.

This is the seam for the calibrated persona model: a scenario names a persona from the
library (``persona: {ref: panicked_caller}``) or defines one inline; simulators read only
this model. The library ships as YAML in ``envsim/personas/``.

Every trait changes behaviour measurably: the scripted user (:mod:`envsim.user.scripted`)
applies ``verbosity``, ``disclosure``, ``typo_rate``, ``question_rate``, ``patience`` and the
affect traits directly; the LLM user gets all of them, in words, from :func:`envsim.user.llm.render_persona`
(template ``envsim/templates/persona.j2``). ``provenance`` and ``exemplars`` are filled in
by calibration against human-written transcripts; hand-written personas leave them empty.

Example:
    >>> load_persona("panicked_caller").initial_affect
    'panicked'
    >>> load_persona("calm").verbosity.mean_words
    14.0
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from envsim.errors import ScenarioError, UnknownNameError
from envsim.plugins import PERSONAS_GROUP, plugin_folders
from envsim.suggest import did_you_mean
from envsim.yamlsource import load_yaml, load_yaml_text

_log = logging.getLogger(__name__)

Affect = Literal["calm", "confused", "frustrated", "angry", "panicked", "relieved"]
"""The affects a mock user can be in (see :mod:`envsim.user.affect` for how they change)."""

Register = Literal["formal", "neutral", "casual"]
"""How formally the user writes."""

Disclosure = Literal["volunteers", "answers_only"]
"""Whether the user offers details unasked (``volunteers``) or only when asked (``answers_only``)."""

_Z90 = 1.2815515655446004  # standard normal 90th percentile

DEFAULT_PANIC = 0.7
"""``panic_intensity`` of a persona that starts panicked without giving one."""


class Verbosity(BaseModel):
    """Words per user turn: a lognormal distribution given by its mean and standard deviation.

    Calibration fits ``mean_words``/``std_words`` to the word counts of real user turns;
    :attr:`mu` and :attr:`sigma` are the matching lognormal parameters.

    Example:
        >>> v = Verbosity(mean_words=12, std_words=6)
        >>> round(v.median_words, 1), v.typical_range()
        (10.7, (6, 20))
        >>> Verbosity.from_lognormal(v.mu, v.sigma).mean_words
        12.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean_words: float = Field(14.0, gt=0, le=1000, description="Mean words per user turn.")
    std_words: float = Field(7.0, ge=0, le=1000, description="Standard deviation of words per user turn.")

    @classmethod
    def from_lognormal(cls, mu: float, sigma: float) -> Verbosity:
        """The verbosity whose word counts follow ``lognormal(mu, sigma)`` (rounded to 3 decimals)."""
        mean = math.exp(mu + sigma**2 / 2)
        std = mean * math.sqrt(math.expm1(sigma**2))
        return cls(mean_words=round(mean, 3), std_words=round(std, 3))

    @property
    def sigma(self) -> float:
        """The lognormal's sigma (standard deviation of log word counts)."""
        return math.sqrt(math.log1p((self.std_words / self.mean_words) ** 2))

    @property
    def mu(self) -> float:
        """The lognormal's mu (mean of log word counts)."""
        return math.log(self.mean_words) - self.sigma**2 / 2

    @property
    def median_words(self) -> float:
        """The median words per turn."""
        return math.exp(self.mu)

    def typical_range(self) -> tuple[int, int]:
        """The 10th and 90th percentiles of words per turn, rounded (at least 1)."""
        low = math.exp(self.mu - _Z90 * self.sigma)
        high = math.exp(self.mu + _Z90 * self.sigma)
        return max(1, round(low)), max(1, round(high))

    def sample(self, rng: np.random.Generator) -> int:
        """Draw a target word count for one turn (at least 1) from ``rng``."""
        return max(1, round(float(rng.lognormal(self.mu, self.sigma))))


class Provenance(BaseModel):
    """Where a calibrated persona's traits were fitted: corpus, dialogues and how.

    ``dialogue_ids`` may list only a sample of the dialogues when there are many;
    ``n_dialogues`` is always the full count.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: str = Field(min_length=1, description="Corpus name, e.g. star or abcd.")
    dialogue_ids: list[str] = Field(default_factory=list, description="Ids (in the corpus) of dialogues fitted to.")
    n_dialogues: int = Field(ge=0, description="How many dialogues the traits were fitted to.")
    fitted_at: datetime | None = Field(None, description="When the traits were fitted (ISO 8601).")
    command: str | None = Field(None, description="The command line that fitted them.")

    @model_validator(mode="after")
    def _count_covers_ids(self) -> Provenance:
        if self.n_dialogues < len(self.dialogue_ids):
            raise ValueError(f"n_dialogues is {self.n_dialogues} but {len(self.dialogue_ids)} dialogue_ids are listed")
        return self


class Exemplar(BaseModel):
    """A reference to one user turn in a transcript corpus that shows the persona's style."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corpus: str = Field(min_length=1, description="Corpus name, e.g. star.")
    dialogue_id: str = Field(min_length=1, description="The dialogue's id in its corpus.")
    turn_index: int = Field(ge=0, description="Index of the turn in the dialogue's turn list.")


class Persona(BaseModel):
    """How a mock user behaves: traits, affect dynamics and the lines a scripted user says.

    ``register`` is the YAML/JSON key of :attr:`speech_register` (``register`` is taken by
    pydantic's base class in Python).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Identifier, e.g. panicked_caller.")
    description: str = Field("", description="Who this user is, for people and prompts.")
    initial_affect: Affect = Field("calm", description="Affect at the start of the conversation.")
    patience: int = Field(
        3,
        ge=0,
        le=50,
        description="Unhelpful agent turns in a row the user tolerates: frustration rises by about "
        "1/(patience+1) per such turn, and the user gives up after patience+1 of them.",
    )
    nudges: list[str] = Field(default_factory=list, description="Lines said when the agent does not help.")
    give_up: str = Field("Forget it, I'll call back later.", description="The user's last line on giving up.")
    human_demands: list[str] = Field(
        default_factory=lambda: ["I want to speak to a person."],
        min_length=1,
        description="Lines said when the user demands a human (or, in an emergency, real help).",
    )
    verbosity: Verbosity = Field(default_factory=Verbosity, description="Words per user turn.")
    disclosure: Disclosure = Field(
        "answers_only", description="volunteers: offers a detail before being asked; answers_only: only when asked."
    )
    typo_rate: float = Field(0.0, ge=0, le=1, description="Probability that a word has a typo.")
    speech_register: Register = Field("neutral", alias="register", description="How formally the user writes.")
    question_rate: float = Field(
        0.2, ge=0, le=1, description="Share of the user's turns that ask the agent a question."
    )
    escalation_propensity: float = Field(
        0.1, ge=0, le=1, description="How soon an angry user demands a human (0: never, 1: at once)."
    )
    panic_intensity: float = Field(
        0.0,
        ge=0,
        le=1,
        description="How panicked the user is in an emergency (0: not at all; default 0.7 for a persona that "
        "starts panicked); >0 marks an emergency.",
    )
    provenance: Provenance | None = Field(None, description="Where calibrated traits come from (None: hand-written).")
    exemplars: list[Exemplar] = Field(default_factory=list, description="Transcript turns that show this persona.")

    @model_validator(mode="before")
    @classmethod
    def _panicked_default(cls, data: Any) -> Any:
        """A persona that starts panicked and gives no ``panic_intensity`` panics at 0.7."""
        if isinstance(data, dict) and data.get("initial_affect") == "panicked" and "panic_intensity" not in data:
            return {**data, "panic_intensity": DEFAULT_PANIC}
        return data

    @model_validator(mode="after")
    def _panicked_needs_panic(self) -> Persona:
        if self.initial_affect == "panicked" and self.panic_intensity == 0:
            raise ValueError("a persona whose initial_affect is panicked needs panic_intensity > 0")
        return self


@lru_cache(maxsize=1)
def persona_library() -> dict[str, Persona]:
    """Every persona shipped in ``envsim/personas/*.yaml``, then those of installed packages, by name.

    A package adds personas through the ``envsim.personas`` entry point group (see
    :mod:`envsim.plugins`). A package's file that cannot be read, or a persona whose name is
    taken, is skipped with a warning naming the file; the shipped personas always load.
    """
    library: dict[str, Persona] = {}
    for entry in sorted(resources.files("envsim.personas").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            for raw in load_yaml_text(entry.read_text(encoding="utf-8"), Path(entry.name)).data or []:
                persona = Persona.model_validate(raw)
                library[persona.name] = persona
    for folder in plugin_folders(PERSONAS_GROUP):
        for path in sorted(folder.glob("*.yaml")):
            try:
                personas = [Persona.model_validate(raw) for raw in load_yaml(path).data or []]
            except (ScenarioError, TypeError, ValueError) as err:  # a package's file is untrusted: bounded reader
                _log.warning("skipping persona file %s: %s", path, err)
                continue
            for persona in personas:
                if persona.name in library:
                    _log.warning("skipping persona %r of %s: the name is taken", persona.name, path)
                else:
                    library[persona.name] = persona
    return library


def load_persona(name: str) -> Persona:
    """The library persona called ``name``."""
    library = persona_library()
    if name not in library:
        raise UnknownNameError(f"unknown persona {name!r}{did_you_mean(name, library)}")
    return library[name]
