#!/usr/bin/env bash
# The Python virtual environment with pyspark (Spark 4, from PyPI) that the Spark tests and the
# benchmark drive from R through reticulate. Spark itself runs in a JVM: Java 17 comes from
# Debian (tools/install-deps.sh installs openjdk-17-jre-headless).
#   Where:   $MIXEDRS_SPARK_VENV, default ~/.cache/mixedrs/spark-venv
#   Prints:  the venv's python on success (stdout); progress and reasons on stderr.
#   Exit:    0 when the venv has pyspark $SPARK_VERSION (and, with --check, only checks);
#            1 when it could not be made (no python3-venv, no PyPI), saying why.
# Quick when the venv is already there: one look at the installed package's metadata (~0.1 s).
set -uo pipefail
VENV="${MIXEDRS_SPARK_VENV:-$HOME/.cache/mixedrs/spark-venv}"
SPARK_VERSION="4.0.1"
# The system Python (Debian's python3), not whatever a version manager puts first on PATH.
PY="${MIXEDRS_SPARK_PYTHON:-/usr/bin/python3}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

have_pyspark() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('pyspark') != '$SPARK_VERSION')" >/dev/null 2>&1
}
if have_pyspark; then echo "$VENV/bin/python"; exit 0; fi
if [ "${1:-}" = "--check" ]; then
  echo "spark-venv: no pyspark $SPARK_VERSION in $VENV (run tools/spark-venv.sh)" >&2; exit 1
fi

if ! "$PY" -m venv --help >/dev/null 2>&1 || ! "$PY" -c "import ensurepip" >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv; } >&2 ||
    { echo "spark-venv: could not install python3-venv" >&2; exit 1; }
fi
# Replace only what is a virtual environment (or nothing): never remove another directory.
if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
  echo "spark-venv: $VENV exists and is not a virtual environment; set MIXEDRS_SPARK_VENV elsewhere" >&2
  exit 1
fi
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
echo "spark-venv: creating $VENV with pyspark $SPARK_VERSION (a download of ~400 MB)" >&2
"$PY" -m venv "$VENV" >&2 || { echo "spark-venv: $PY -m venv failed" >&2; exit 1; }
"$VENV/bin/pip" install -q --disable-pip-version-check --use-pep517 "pyspark==$SPARK_VERSION" >&2 || {
  echo "spark-venv: pip could not install pyspark==$SPARK_VERSION (is PyPI reachable?)" >&2
  rm -rf "$VENV"; exit 1
}
have_pyspark || { echo "spark-venv: pyspark $SPARK_VERSION missing after pip install" >&2; exit 1; }
echo "$VENV/bin/python"
