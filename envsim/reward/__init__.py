"""Rewards: components scoring a trajectory, combined by the scenario's gates and weights.

One signature for every component: ``(trajectory, context) -> ComponentScore``. A scenario's
``reward`` section (over its domain's defaults, ``envsim/reward/defaults.yaml``) names the
gates, weighted components and metrics; :class:`Rubric` combines them into a
:class:`RewardBreakdown` with the total, the gates that held, the outcome and the measures.

A scenario's reward, as a domain expert writes it (every key optional)::

    expected:
      actions: [...]                       # the reference solution (final_state replays it)
      required_actions:                    # must have succeeded: authentication first
        - find_customer_by_phone
        - {name: refund_items, arguments: {order_id: "#W0004"}}
      required_actions_in_order: true
      argument_checks:                     # every successful refund_items must pass these
        - name: refund_items
          checks: {reason: {one_of: [damaged, defective]}}
      claims:                              # besides the built-in "I've refunded", ...
        - phrases: ["return label has been emailed"]
          requires: [create_return, exchange_item]
      handoff_summary: {min_words: 8, keywords: ["#W0004"]}
    reward:
      gates: [final_state, forbidden_actions, required_actions, no_false_claims]
      components: {final_state: 0.6, required_statements: 0.2, argument_checks: 0.2}
      metrics: [containment, resolution, customer_effort, tone, empathy]
      custom: {tone: "acme_rewards.retail:tone"}   # only if acme_rewards is allowed; needs a role above
      judges: {empathy: empathy_panicked_caller}   # an LLM judge (envsim.reward.judges); needs a role too,
                                                   # and runs only with a judge model (else: "not run")
      success_threshold: 0.9

Example:
    >>> import yaml
    >>> from envsim.scenario import RewardSpec
    >>> spec = RewardSpec.model_validate(yaml.safe_load('''
    ... gates: [final_state, no_false_claims]
    ... components: {final_state: 0.8, required_statements: 0.2}
    ... metrics: [containment]
    ... '''))
    >>> rubric = Rubric.from_spec(spec)
    >>> list(rubric.functions), rubric.gates
    (['final_state', 'required_statements', 'no_false_claims', 'containment'], ('final_state', 'no_false_claims'))
"""

from envsim.errors import RewardModuleError
from envsim.reward.base import ComponentResult, ComponentScore, RewardBreakdown, RewardContext, RewardFn
from envsim.reward.custom import allow_reward_module, allowed_reward_modules, load_reward_function, revoke_reward_module
from envsim.reward.outcome import Outcome, carries_reward, decide_outcome
from envsim.reward.rubric import COMPONENTS, Rubric
from envsim.reward.spec import domain_defaults, effective_reward_spec

__all__ = [
    "COMPONENTS",
    "ComponentResult",
    "ComponentScore",
    "Outcome",
    "RewardBreakdown",
    "RewardContext",
    "RewardFn",
    "RewardModuleError",
    "Rubric",
    "allow_reward_module",
    "allowed_reward_modules",
    "carries_reward",
    "decide_outcome",
    "domain_defaults",
    "effective_reward_spec",
    "load_reward_function",
    "revoke_reward_module",
]
