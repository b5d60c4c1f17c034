"""Training envsim agents with TRL (the ``train`` extra: torch, transformers, trl, datasets).

Nothing here is imported by ``import envsim``, and the modules of this package import torch,
transformers and TRL only inside the functions that need them.

- :mod:`envsim.train.grpo`: the GRPOTrainer adapter (whole episodes as rollouts through ``rollout_func``);
- :mod:`envsim.train.environment_factory`: scenarios as TRL ``environment_factory`` environments (TRL's tool loop);
- :mod:`envsim.train.ppo`: PPO with TRL 1.12 (one response per episode);
- :mod:`envsim.train.episodes`: the batched multi-turn episode runner the adapter and evaluation share;
- :mod:`envsim.train.chat`: chat-template tokenization shared by SFT and rollouts;
- :mod:`envsim.train.prompts`: scenarios × seeds → the prompt dataset GRPO needs;
- :mod:`envsim.train.sft`: supervised fine-tuning on stored trajectories;
- :mod:`envsim.train.tiny`: a tiny model and a locally trained tokenizer (no hub);
- :mod:`envsim.train.flywheel`: generate → rejection-sample → SFT → evaluate → GRPO → evaluate
  (``envsim train flywheel``), plotted by :mod:`envsim.train.plot`;
- :mod:`envsim.train.config`: trainer-configuration details shared by the SFT and GRPO helpers.
"""
