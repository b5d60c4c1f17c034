"""Importing envsim stays light: no litellm, no torch."""

from __future__ import annotations

import subprocess
import sys


def test_import_envsim_does_not_import_heavy_dependencies() -> None:
    code = (
        "import sys, envsim, envsim.env, envsim.cli; "
        "print(sorted(m for m in ('litellm', 'torch', 'trl', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
