#!/usr/bin/env bash
# Sets up (packages, configure, build) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
scripts/setup.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j "${JOBS:-2}" "$@"
