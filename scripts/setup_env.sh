#!/usr/bin/env bash
# Create (once) the project's Python 3.10 virtual environment in .venv and install
# the pinned stack into it. Sourced by scripts/demo.sh and scripts/test.sh.
# A second run installs nothing: the install is keyed by a hash of pyproject.toml.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SNN_VENV:-$repo_root/.venv}"

find_python310() {
  local candidate
  # A pyenv shim named python3.10 exists but refuses to run when 3.10 is not the
  # global version, so every candidate is actually executed before it is trusted.
  for candidate in "${PYTHON310:-}" python3.10 \
      "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.10.*/bin/python3.10 \
      "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      command -v "$candidate" 2>/dev/null || echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  if ! py310="$(find_python310)"; then
    echo "error: Python 3.10 not found (Lava 0.10 does not import on 3.11+)." >&2
    echo "       Install it, e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv'," >&2
    echo "       or point PYTHON310=/path/to/python3.10 at one, then run this command again." >&2
    exit 1
  fi
  echo "[setup] creating $venv with $py310"
  "$py310" -m venv "$venv"
fi

stamp="$venv/.installed-$(sha256sum "$repo_root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the pinned stack into $venv (first run: several minutes, ~3 GB download)"
  # Some pip configurations list local index folders that do not exist; their warnings are noise.
  quiet_pip() { "$venv/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
  quiet_pip --upgrade "pip<25" "setuptools>=68,<76" wheel
  quiet_pip -e "$repo_root[dev]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
else
  echo "[setup] $venv is up to date (delete it to reinstall)"
fi
