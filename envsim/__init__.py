"""envsim: simulated enterprise environments for training and evaluating LLM agents.

Importing envsim registers every scenario as a Gymnasium environment ``envsim/<Id>-v0``:

    >>> import gymnasium as gym
    >>> import envsim
    >>> env = gym.make("envsim/MedicalSupplyPanicCaller-v0")
    >>> obs, info = env.reset(seed=7)
    >>> sorted(info)[:3]
    ['messages', 'scenario_id', 'tools']

It also registers ``envsim/Suite-v0``, one environment over a scenario suite's split
(``gym.make("envsim/Suite-v0", suite=DIR, split="train")``, see :mod:`envsim.suite`).

Scenarios come from the shipped ``scenarios/``, installed plug-in packages and every folder
named by ``ENVSIM_SCENARIOS`` (which adds to them). A scenario file that cannot be registered
(unreadable, no valid id, an id used twice) is left out with a :class:`ScenarioWarning` naming it;
the others are registered.

It imports neither litellm nor torch.
"""

from envsim.errors import EnvsimError, ScenarioError, ScenarioWarning, UnknownNameError
from envsim.registration import register_scenarios

__version__ = "0.1.0"
__all__ = [
    "EnvsimError",
    "ScenarioError",
    "ScenarioWarning",
    "UnknownNameError",
    "__version__",
    "register_scenarios",
]

register_scenarios()
