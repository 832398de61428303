#!/usr/bin/env bash
# Set up the environment (once) and run the test suite.
#   scripts/test.sh            the default suite (what CI runs; long tests excluded)
#   scripts/test.sh --long     only the tests marked long
#   scripts/test.sh --quick    only the unit tier, not long (tiers: tests/conftest.py)
#   scripts/test.sh -k NAME    any other arguments go to pytest
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
if [ "${1:-}" = "--long" ]; then
  shift
  set -- -m long "$@"
elif [ "${1:-}" = "--quick" ]; then
  shift
  set -- -m "unit and not long" "$@"
fi
exec "$repo_root/.venv/bin/python" -m pytest tests hardware_tests -p no:cacheprovider "$@"
