#!/usr/bin/env bash
# Set up the environment (once) and run the main job on the embedded dataset:
#   train-export --dataset shd
# Extra arguments are passed on, e.g. scripts/demo.sh --epochs 5
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
exec "$repo_root/.venv/bin/train-export" --dataset shd "$@"
