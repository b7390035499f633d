#!/usr/bin/env bash
# Sets up (packages, configure, build) and runs the whole test suite with ctest.
#   scripts/test.sh                 everything
#   scripts/test.sh -L bench        arguments go to ctest: a label (-L), a name pattern (-R), ...

# --help: the comment above (to its first blank line), and nothing run.
case "${1:-}" in -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
scripts/setup.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j "${JOBS:-2}" "$@"
