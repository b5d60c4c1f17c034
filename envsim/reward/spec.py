"""The reward spec a scenario ends up with: its own ``reward`` section over its domain's defaults.

The defaults ship in ``envsim/reward/defaults.yaml``, a mapping from domain to a ``reward``
section (:class:`~envsim.scenario.RewardSpec`). A scenario's own keys replace the domain's,
key by key (see :meth:`RewardSpec.over <envsim.scenario.RewardSpec.over>`).

Example:
    >>> from envsim.registration import load_registered
    >>> spec = effective_reward_spec(load_registered("MedicalSupplyPanicCaller"))
    >>> "escalation" in (spec.gates or []), spec.success_threshold
    (True, 1.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from envsim.errors import ScenarioError
from envsim.scenario import RewardSpec, Scenario
from envsim.yamlsource import load_yaml_text, problems_from_validation

_DOMAIN = re.compile(r"^[A-Za-z][\w-]*$")

DEFAULTS_RESOURCE = "defaults.yaml"
"""The file of per-domain reward defaults, inside the ``envsim.reward`` package."""


def parse_domain_defaults(text: str, path: Path | None = None) -> dict[str, RewardSpec]:
    """Domain → reward spec from the YAML ``text`` of a defaults file; :class:`ScenarioError` when invalid."""
    doc = load_yaml_text(text, path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        message = "reward defaults must be a mapping of domain to reward section"
        raise ScenarioError([doc.problem((), message, field="")])
    bad = [str(d) for d in data if not _DOMAIN.match(str(d))]
    if bad:
        raise ScenarioError([doc.problem((bad[0],), "a domain name starts with a letter", key=True)])
    fields: dict[str, Any] = {str(domain): (RewardSpec, ...) for domain in data}
    model = create_model("RewardDefaults", __config__=ConfigDict(extra="forbid"), **fields)
    try:
        parsed = model.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(problems_from_validation(doc, err, model)) from None
    return {domain: getattr(parsed, domain) for domain in fields}


@lru_cache(maxsize=1)
def domain_defaults() -> dict[str, RewardSpec]:
    """The shipped per-domain reward defaults (``envsim/reward/defaults.yaml``), by domain."""
    resource = resources.files("envsim.reward").joinpath(DEFAULTS_RESOURCE)
    return parse_domain_defaults(resource.read_text(encoding="utf-8"), Path(DEFAULTS_RESOURCE))


def effective_reward_spec(scenario: Scenario, defaults: Mapping[str, RewardSpec] | None = None) -> RewardSpec:
    """The scenario's ``reward`` section merged over its domain's defaults (the shipped ones by default)."""
    table = domain_defaults() if defaults is None else defaults
    return scenario.reward.over(table.get(scenario.domain, RewardSpec()))


def custom_without_role(spec: RewardSpec) -> list[str]:
    """The custom components of a (merged) spec that no gate, weight or metric names: they would never be called.

    Example:
        >>> custom_without_role(RewardSpec(custom={"tone": "acme:tone", "policy": "acme:policy"}, metrics=["policy"]))
        ['tone']
    """
    used = set(spec.weighted()) | set(spec.gates or ()) | set(spec.metrics or ())
    return [name for name in spec.custom or {} if name not in used]


def judges_without_role(spec: RewardSpec) -> list[str]:
    """The judges (``reward.judges``) of a (merged) spec that no gate, weight or metric names: they would never run.

    Example:
        >>> judges_without_role(RewardSpec(judges={"empathy": "empathy_panicked_caller"}, metrics=["containment"]))
        ['empathy']
    """
    used = set(spec.weighted()) | set(spec.gates or ()) | set(spec.metrics or ())
    return [name for name in spec.judges or {} if name not in used]
