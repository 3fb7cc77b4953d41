#!/usr/bin/env bash
# VNN-COMP calling convention: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
#
# Checks that verifinn is installed and the instance's files exist (FILE or
# FILE.gz, as the competition ships them: verifinn reads either), and stops any
# verifinn process an earlier instance left behind. Nothing is converted or
# cached: `verifinn verify` reads the files directly. Exit 0 when the instance
# can run, non-zero otherwise (the competition then skips it).
set -u

if [ "$#" -ne 4 ]; then
    echo "usage: $0 v1 CATEGORY ONNX VNNLIB" >&2
    exit 1
fi
VERSION=$1
CATEGORY=$2
ONNX=$3
VNNLIB=$4

if [ "$VERSION" != "v1" ]; then
    echo "$0: expected version string 'v1', got '$VERSION'" >&2
    exit 1
fi
for FILE in "$ONNX" "$VNNLIB"; do
    if [ ! -f "$FILE" ] && [ ! -f "$FILE.gz" ]; then
        echo "$0: no such file: $FILE (nor $FILE.gz)" >&2
        exit 1
    fi
done
if ! command -v verifinn >/dev/null 2>&1; then
    echo "$0: the verifinn command is not installed (pip install verifiNN)" >&2
    exit 1
fi

pkill -f "verifinn verify" 2>/dev/null || true  # a run the harness killed may leave workers

echo "verifinn: prepared $CATEGORY instance $(basename "$ONNX") $(basename "$VNNLIB")" >&2
exit 0
