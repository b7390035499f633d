#!/usr/bin/env bash
# How ctest runs a benchmark: it passes when the command exits 0 and every PATTERN (an extended
# regular expression) matches a line of its standard output, the figures it exists to print.
# ctest's own PASS_REGULAR_EXPRESSION would ignore the exit code.
#
#   bench/run_checked.sh PATTERN... -- COMMAND [ARG...]
set -uo pipefail
patterns=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  patterns+=("$1")
  shift
done
if [ "$#" -lt 2 ] || [ "${#patterns[@]}" -eq 0 ]; then
  echo "usage: $0 PATTERN... -- COMMAND [ARG...]" >&2
  exit 2
fi
shift
out=$(mktemp "${TMPDIR:-/tmp}/crmbridge-bench-out.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
# The figures are on stdout; stderr (logs, failed checks) goes to ctest as it is.
"$@" | tee "$out"
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 77 ]; then
  exit 77  # the bench skipped itself (what it needs is not installed): ctest's SKIP_RETURN_CODE
fi
if [ "$rc" -ne 0 ]; then
  echo "run_checked: $1 exited with $rc" >&2
  exit 1
fi
for p in "${patterns[@]}"; do
  grep -Eq -- "$p" "$out" || { echo "run_checked: no line of the output matches: $p" >&2; exit 1; }
done
