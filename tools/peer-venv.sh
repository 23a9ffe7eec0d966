#!/usr/bin/env bash
# Optional second reference for `make bench`: a Python virtual environment with the `glmm`
# crate's Python package from PyPI, in ~/.cache/mixedrs/peer-venv. Prints the venv's python on
# success; on any failure says why on stderr and exits 1 (the benchmark then leaves the column
# out).
set -uo pipefail
VENV="${MIXEDRS_PEER_VENV:-$HOME/.cache/mixedrs/peer-venv}"
PEER_VERSION="0.6.2"
# The system Python (Debian's python3), not whatever a version manager puts first on PATH.
PY="${MIXEDRS_PEER_PYTHON:-/usr/bin/python3}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import glmm" >/dev/null 2>&1; then
  echo "$VENV/bin/python"; exit 0
fi
if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c "import ensurepip" >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv; } >&2 ||
    { echo "peer-venv: could not install python3-venv" >&2; exit 1; }
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2 || { echo "peer-venv: $PY -m venv failed" >&2; exit 1; }
"$VENV/bin/pip" install -q "glmm==$PEER_VERSION" >&2 ||
  { echo "peer-venv: pip could not install glmm==$PEER_VERSION" >&2; exit 1; }
echo "$VENV/bin/python"
