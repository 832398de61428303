#!/usr/bin/env bash
# Regenerate the two development sets beside the embedded one (docs/results.md, "The two presets"):
# other voices in the test split, other seeds, noise and onsets. They are kept out of the repository
# (dev-b is about 25 MB); needs espeak-ng (Debian: apt-get install espeak-ng).
#   scripts/make_dev_sets.sh OUT_DIR      -> OUT_DIR/dev-a (about the embedded set's size), OUT_DIR/dev-b (~3,000 train)
set -euo pipefail
out="${1:?usage: scripts/make_dev_sets.sh OUT_DIR}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$repo_root/.venv/bin/python}"
"$python" "$repo_root/scripts/make_embedded_shd.py" --out "$out/dev-a" --seed 11 --speaker-partition-seed 1 \
  --snr-db 5 25 --onset-s 0 0.3
"$python" "$repo_root/scripts/make_embedded_shd.py" --out "$out/dev-b" --seed 12 --speaker-partition-seed 2 \
  --repetitions-train 10 --repetitions-test 3 --snr-db 8 28 --onset-s 0 0.25
