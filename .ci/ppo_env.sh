#!/usr/bin/env bash
# The PPO path in its own virtual environment: TRL 1.12 is the last TRL with PPOTrainer
# (trl.experimental.ppo; removed in 1.13), while the main environment tracks the latest TRL.
#
# Makes .venv-ppo (python3 -m venv), installs torch 2.13.0 first (the CPU build; an unpinned torch
# pulls a multi-GB CUDA build), then TRL 1.12 with the transformers/datasets/accelerate versions
# it was tested with, then envsim itself (editable), and runs tests_ppo/ with pytest.
# A later run reuses .venv-ppo while the pins below are unchanged, and reinstalls envsim only
# when pyproject.toml changed.
#
# Usage: bash .ci/ppo_env.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-ppo
TORCH="torch==2.13.0"
PINS=("trl==1.12.*" "transformers==5.23.0" "datasets==5.2.0" "accelerate==1.15.0" "pytest>=8")
PIN_STAMP="$VENV/.envsim-ppo-pins"
PROJECT_STAMP="$VENV/.envsim-ppo-project"

pins="$TORCH ${PINS[*]}"
if [[ ! -x "$VENV/bin/python" || "$(cat "$PIN_STAMP" 2>/dev/null)" != "$pins" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "$TORCH"
    "$VENV/bin/pip" install -q "${PINS[@]}"
    echo "$pins" >"$PIN_STAMP"
fi
echo '*' >"$VENV/.gitignore"  # git ignores the whole environment (python3.11's venv writes no .gitignore)
project="$(sha256sum pyproject.toml)"
if [[ "$(cat "$PROJECT_STAMP" 2>/dev/null)" != "$project" ]]; then
    "$VENV/bin/pip" install -q -e .
    echo "$project" >"$PROJECT_STAMP"
fi

export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
"$VENV/bin/python" -c 'import trl, trl.experimental.ppo; print("PPO environment: trl", trl.__version__)'
exec "$VENV/bin/python" -m pytest tests_ppo -q "$@"
