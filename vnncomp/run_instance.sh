#!/usr/bin/env bash
# VNN-COMP calling convention: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
#
# Runs `verifinn verify` on one instance within TIMEOUT seconds and writes the
# result file (sat / unsat / unknown / timeout; a counterexample after sat).
# ONNX and VNNLIB may be gzipped, or named without the .gz of the file present.
# Exit 0 when verifinn answered (whatever the verdict); its non-zero exit code
# (2: bad input, 1: internal error) otherwise, with an `error` result file.
# Extra options for verifinn (e.g. --device cuda) can be passed in the
# VERIFINN_OPTIONS environment variable.
set -u

if [ "$#" -ne 6 ]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
VERSION=$1
CATEGORY=$2
ONNX=$3
VNNLIB=$4
RESULTS_FILE=$5
TIMEOUT=$6

if [ "$VERSION" != "v1" ]; then
    echo "$0: expected version string 'v1', got '$VERSION'" >&2
    exit 1
fi

echo "verifinn: running $CATEGORY instance $(basename "$ONNX") $(basename "$VNNLIB"), timeout $TIMEOUT s" >&2
# shellcheck disable=SC2086  # VERIFINN_OPTIONS is split into words on purpose
verifinn verify "$ONNX" "$VNNLIB" --timeout "$TIMEOUT" --out "$RESULTS_FILE" ${VERIFINN_OPTIONS:-}
STATUS=$?
if [ "$STATUS" -ne 0 ] && [ ! -s "$RESULTS_FILE" ]; then
    echo "error" > "$RESULTS_FILE" 2>/dev/null || true
fi
exit "$STATUS"
