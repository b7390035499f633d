#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (docs/TESTING.md, "Fuzzing").
#
#   fuzz/run.sh [--seconds N | --runs N] [--forks N] [--merge] [NAME...]
#
#   --seconds N  run each harness for N seconds (the default: 60)
#   --runs N     run each harness for at least N new inputs instead (checked between the runs of
#                its child processes, below, so a run may do up to a few minutes' worth more)
#   --forks N    run N child processes of each harness at once (below; the default: 1), for
#                one harness on N cores
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
# build-fuzz/logs/NAME.log. Harnesses run one after another under nice -n 19; to use two cores,
# give --forks 2, or start it twice with different harnesses.
#
# libFuzzer runs each harness in fork mode (-fork=N): the inputs run in N child processes at a
# time, each replaced after a few seconds at first and every 300 s at most later on, and what a
# child finds joins the corpus for the next ones. A process that has run a million inputs runs at
# about half the rate of a new one (its allocator and ASan's store of allocation stacks have
# grown); in fork mode no child gets that old. A timeout or out-of-memory in a child stops the run
# as a crash does.
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
forks=1
names=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# Stops with exit 2 unless option $1's value $2 is a whole number of 1 or more, written without a
# leading zero ("00" is 0 too): libFuzzer would read anything else as 0, which for
# -max_total_time means no limit at all.
whole_number() {
  case "$2" in
    '' | *[!0-9]* | 0*)
      local given=""
      [ -n "$2" ] && given=", not '$2'"
      echo "run.sh: $1 needs a whole number of 1 or more, without a leading zero$given" >&2
      exit 2
      ;;
  esac
}

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) whole_number "$1" "${2-}"; seconds=$2; runs=""; shift 2 ;;
    --runs) whole_number "$1" "${2-}"; runs=$2; shift 2 ;;
    --forks) whole_number "$1" "${2-}"; forks=$2; shift 2 ;;
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
  # The scratch corpus first: libFuzzer writes new inputs to the first directory only. In fork
  # mode a timeout or out-of-memory would otherwise be counted and passed over.
  # shellcheck disable=SC2086
  nice -n 19 "$build/bin/${n}_fuzzer" -fork="$forks" -ignore_timeouts=0 -ignore_ooms=0 \
    -print_funcs=0 "${limit[@]}" "${memory[@]}" -timeout=25 -artifact_prefix="$artifacts/" \
    ${FUZZ_FLAGS:-} \
    "$scratch" "fuzz/corpus/$n" >"$log" 2>&1 || status=$?
  took=$(( $(date +%s) - start ))
  # The parent's count of the inputs its children ran, after each child: "#N: cov: ...".
  execs=$({ grep -o '#[0-9]*: cov:' "$log" || true; } | tail -1 | tr -dc '0-9')
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
