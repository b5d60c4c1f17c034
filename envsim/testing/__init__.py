"""Test helpers: a local OpenAI-compatible server that plays envsim's model roles, and a load generator.

- :mod:`envsim.testing.server`: ``start_server(**options)`` runs the server in its own process and
  yields its URL (``python -m envsim.testing.server --port 0`` runs it by hand);
- :mod:`envsim.testing.playbook`: how it decides its role and what it says;
- :mod:`envsim.testing.loadgen`: a light HTTP client that measures its throughput.

Nothing here imports litellm, torch or transformers.
"""
