"""A typed OpenEnv client of ``envsim serve``: OpenEnv's own ``EnvClient`` with envsim's wire types.

OpenEnv's ``GenericEnvClient`` plays envsim episodes with plain dicts; :class:`EnvsimEnvClient` is the
same client (``openenv-core`` 0.3.0's ``EnvClient``: its WebSocket session, ``reset``, ``step``,
``state``, ``close``, ``.sync()``) sending :class:`~envsim.serve.openenv_types.EnvsimAction` and
returning :class:`~envsim.serve.openenv_types.EnvsimObservation` and
:class:`~envsim.serve.openenv_types.EnvsimState`::

    async with EnvsimEnvClient(base_url="http://127.0.0.1:8000") as env:
        result = await env.reset(seed=7, scenario="MedicalSupplyPanicCaller")
        result = await env.step(EnvsimAction(name="lookup_patient", arguments={"phone": "555-0142"}))
        result.observation.text, result.observation.reward_breakdown

``step`` also takes envsim's own action forms: a string (sent as ``text``) or a dict.
"""

from __future__ import annotations

from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient

from envsim.serve.openenv_types import EnvsimAction, EnvsimObservation, EnvsimState


class EnvsimEnvClient(EnvClient[EnvsimAction, EnvsimObservation, EnvsimState]):  # type: ignore[misc]  # untyped
    """OpenEnv's WebSocket client of an ``envsim serve`` server, with envsim's types."""

    def _step_payload(self, action: EnvsimAction | str | dict[str, Any]) -> dict[str, Any]:
        """The action as the step frame's data (validated here, so a bad action fails before it is sent)."""
        if isinstance(action, str):
            typed = EnvsimAction(text=action)
        elif isinstance(action, dict):
            typed = EnvsimAction.model_validate(action)
        else:
            typed = action
        payload: dict[str, Any] = typed.model_dump(exclude_none=True, exclude={"metadata"})
        return payload

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[EnvsimObservation]:
        """An observation frame's data as a step result (``done`` and ``reward`` on the observation too)."""
        done = bool(payload.get("done", False))
        reward = payload.get("reward")
        observation = EnvsimObservation(**payload.get("observation", {}), done=done, reward=reward)
        return StepResult(observation=observation, reward=reward, done=done)

    def _parse_state(self, payload: dict[str, Any]) -> EnvsimState:
        """A state frame's data as the session's state."""
        return EnvsimState(**payload)
