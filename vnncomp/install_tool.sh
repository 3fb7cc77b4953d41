#!/usr/bin/env bash
# VNN-COMP calling convention: install_tool.sh v1
#
# Installs verifiNN from this checkout into the current Python environment
# (python3 -m pip), with the CPU build of PyTorch pinned so that pip never
# pulls another torch; then checks that the verifinn command answers.
# VERIFINN_TORCH overrides the torch requirement (e.g. a CUDA build's pin on
# a GPU machine). Exit 0 when verifinn is installed and runs.
set -eu

if [ "$#" -ne 1 ] || [ "$1" != "v1" ]; then
    echo "usage: $0 v1" >&2
    exit 1
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
TORCH=${VERIFINN_TORCH:-torch==2.13.0}

python3 -m pip install --quiet "$TORCH" -e "$REPO"
verifinn --version >/dev/null
echo "verifinn: installed $(verifinn --name) $(verifinn --version) from $REPO" >&2
