#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (docs/TESTING.md, "Fuzzing").
#
#   fuzz/run.sh [--seconds N | --runs N] [--merge] [NAME...]
#
#   --seconds N  run each harness for N seconds (the default: 60)
#   --runs N     run each harness for N new inputs instead (after its corpus, which is run first)
#   --merge      afterwards, merge what each run found that reaches new code into the checked-in
#                corpus fuzz/corpus/NAME (only inputs that add coverage are copied, which after a
#                long run can be thousands: review them before committing)
#   NAME...      the harnesses to run (yaml, mapping, ..., report); all of them when none is named
#
# It first configures the clang build in build-fuzz/ when it is missing and brings it up to date
# (ASan and UBSan; CC=clang CXX=clang++). Each harness starts from its checked-in corpus and writes
# what it finds to the scratch corpus build-fuzz/corpus/NAME, never to fuzz/corpus/ unless --merge
# is given. A crash, leak, UBSan report or timeout is saved as build-fuzz/artifacts/NAME/crash-...
# (or leak-, timeout-, oom-) and makes the script exit non-zero; every run's output is kept in
# build-fuzz/logs/NAME.log. Harnesses run one after another under nice -n 19, one process each;
# to use two cores, start it twice with different harnesses.
#
# At the end it prints, per harness, the inputs executed, the seconds taken and the outcome.
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (build parallelism, default 2),
# FUZZ_FLAGS (more libFuzzer flags, e.g. "-max_len=8192").
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-2}
seconds=60
runs=""
merge=0
names=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a number}; runs=""; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --merge) merge=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done

all=()
for f in fuzz/*_fuzzer.cc; do
  n=$(basename "$f" _fuzzer.cc)
  all+=("$n")
done
if [ ${#names[@]} -eq 0 ]; then names=("${all[@]}"); fi
for n in "${names[@]}"; do
  if [ ! -f "fuzz/${n}_fuzzer.cc" ]; then
    echo "run.sh: no harness '$n' (there are: ${all[*]})" >&2
    exit 2
  fi
done

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCRMBRIDGE_BUILD_FUZZERS=ON \
    -DCRMBRIDGE_BUILD_TESTS=OFF >/dev/null
fi
targets=()
for n in "${names[@]}"; do targets+=(--target "${n}_fuzzer"); done
# Two runs of this script at once (say, one per core) build one after the other.
flock "$build/.build-lock" nice -n 19 cmake --build "$build" -j "$jobs" "${targets[@]}" >/dev/null

# Memory, for the runs and the merges: a long run's RSS grows with ASan's quarantine and its store
# of allocation stacks (1.3 GB after a million inputs of `yaml`, 0.8 GB with 5 frames a stack
# instead of 30). libFuzzer's purge of the allocator, every second past half of -rss_limit_mb, made
# the next inputs fault that memory in again, 30 times slower: it is off. One allocation over 2 GB
# is still a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=5}
memory=(-rss_limit_mb=8192 -malloc_limit_mb=2048 -purge_allocator_interval=-1)

mkdir -p "$build/logs"
failed=0
summary=()
for n in "${names[@]}"; do
  scratch="$build/corpus/$n"
  artifacts="$build/artifacts/$n"
  log="$build/logs/$n.log"
  mkdir -p "$scratch" "$artifacts"
  limit=(-max_total_time="$seconds")
  if [ -n "$runs" ]; then limit=(-runs="$runs"); fi
  if [ -n "$runs" ]; then amount="$runs runs"; else amount="$seconds s"; fi
  echo "run.sh: $n ($amount), log $log" >&2
  start=$(date +%s)
  status=0
  # The scratch corpus first: libFuzzer writes new inputs to the first directory only.
  # shellcheck disable=SC2086
  nice -n 19 "$build/bin/${n}_fuzzer" "${limit[@]}" "${memory[@]}" -timeout=25 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" ${FUZZ_FLAGS:-} \
    "$scratch" "fuzz/corpus/$n" >"$log" 2>&1 || status=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  outcome="ok"
  if [ "$status" -ne 0 ]; then
    failed=1
    # A slow unit is written too, and the run goes on: it is not what stopped it.
    found=$(sed -n 's/^.*Test unit written to \(.*\)$/\1/p' "$log" |
      { grep -v '/slow-unit-' || true; } | tail -1)
    outcome="FAILED (exit $status${found:+, $found})"
  fi
  summary+=("$(printf '%-16s %14s %8s  %s' "$n" "${execs:-?}" "${took}s" "$outcome")")
  if [ "$merge" -eq 1 ] && [ "$status" -eq 0 ]; then
    nice -n 19 "$build/bin/${n}_fuzzer" -merge=1 "${memory[@]}" "fuzz/corpus/$n" "$scratch" \
      >>"$log" 2>&1
  fi
done

printf '%-16s %14s %8s  %s\n' harness executions time outcome
printf '%s\n' "${summary[@]}"
echo "(commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d))"
exit "$failed"
