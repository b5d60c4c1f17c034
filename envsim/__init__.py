"""envsim: simulated enterprise environments for training and evaluating LLM agents.

Importing envsim registers every scenario as a Gymnasium environment ``envsim/<Id>-v0``:

    >>> import gymnasium as gym
    >>> import envsim
    >>> env = gym.make("envsim/MedicalSupplyPanicCaller-v0")
    >>> obs, info = env.reset(seed=7)
    >>> sorted(info)[:3]
    ['messages', 'scenario_id', 'tools']

It imports neither litellm nor torch.
"""

from envsim.errors import EnvsimError, ScenarioError, UnknownNameError
from envsim.registration import register_scenarios

__version__ = "0.1.0"
__all__ = ["EnvsimError", "ScenarioError", "UnknownNameError", "__version__", "register_scenarios"]

register_scenarios()
