"""Serve envsim scenarios to other stacks: an OpenEnv-compatible server (``envsim serve``) and MCP (``envsim mcp``).

The optional dependencies come from the ``serve`` extra (``pip install 'envsim[serve]'``): ``openenv-core`` 0.3.0,
``mcp`` 2.x, FastAPI, uvicorn and websockets. Nothing here imports them at package import time.
"""
