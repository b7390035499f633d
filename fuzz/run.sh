#!/usr/bin/env bash
# Runs the libFuzzer harnesses of fuzz/ (docs/TESTING.md, "Fuzzing").
#
#   fuzz/run.sh [--seconds N | --runs N] [--workers N] [--merge] [NAME...]
#
#   --seconds N  run each harness for N seconds (the default: 60)
#   --runs N     run each harness for at least N inputs instead, in jobs of at most 500,000
#                (below)
#   --workers N  run N processes of each harness at once (the default: 1), for one harness on
#                N cores
#   --merge      afterwards, merge what each run found that reaches new code into the checked-in
#                corpus fuzz/corpus/NAME (only inputs that add coverage are copied, which after a
#                long run can be thousands: review them before committing)
#   NAME...      the harnesses to run (yaml, mapping, ..., report); all of them when none is named
#
# It first configures the clang build in build-fuzz/ when it is missing and brings it up to date
# (ASan and UBSan; CC=clang CXX=clang++). Each harness starts from its checked-in corpus and writes
# what it finds to the scratch corpus build-fuzz/corpus/NAME, never to fuzz/corpus/ unless --merge
# is given. A crash, leak, UBSan report, timeout or out-of-memory is saved as
# build-fuzz/artifacts/NAME/crash-... (or leak-, timeout-, oom-), ends the run and makes the
# script exit non-zero; every run's output is kept in build-fuzz/logs/NAME.log, and each job's
# in build-fuzz/logs/NAME.jobs/. Harnesses run one after another under nice -n 19; to use two
# cores, give --workers 2, or start it twice with different harnesses.
#
# A run is a series of jobs, each one libFuzzer process that starts from the corpus (the
# scratch one included, so from what the jobs before it found) and runs a given time or number
# of inputs. The workers run jobs side by side and read each other's finds every second. A
# process that has run a million inputs runs at about half the rate of a new one (its allocator
# and ASan's store of allocation stacks have grown), so no job runs more than 500,000. Separate
# processes ran twice the inputs per second of libFuzzer's own fork mode (-fork=2), whose
# children begin with runs of a second and add a second each, and which merges after each.
#
# At the end it prints, per harness, the inputs executed (each job's replay of the corpus at its
# start included), the seconds taken and the outcome.
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (build parallelism, default 2),
# FUZZ_FLAGS (more libFuzzer flags, e.g. "-max_len=8192").
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
build=${FUZZ_BUILD_DIR:-build-fuzz}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
build_jobs=${FUZZ_JOBS:-2}
seconds=60
runs=""
merge=0
workers=1
job_runs=500000
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
    --workers) whole_number "$1" "${2-}"; workers=$2; shift 2 ;;
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
flock "$build/.build-lock" nice -n 19 cmake --build "$build" -j "$build_jobs" "${targets[@]}" >/dev/null

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
# Stop the workers too when this script is interrupted.
trap 'trap - INT TERM; kill 0' INT TERM
for n in "${names[@]}"; do
  scratch="$build/corpus/$n"
  artifacts="$build/artifacts/$n"
  log="$build/logs/$n.log"
  jobdir="$build/logs/$n.jobs"
  rm -rf "$jobdir"
  mkdir -p "$scratch" "$artifacts" "$jobdir"
  # The jobs: with --seconds, one per worker for that long; with --runs, enough of at most
  # $job_runs inputs each to make up the runs, shared out among the workers in turn.
  if [ -n "$runs" ]; then
    jobs=$(( (runs + job_runs - 1) / job_runs ))
    if [ "$jobs" -lt "$workers" ]; then jobs=$workers; fi
    limit=(-runs=$(( (runs + jobs - 1) / jobs )))
    amount="$runs runs in $jobs jobs"
  else
    jobs=$workers
    limit=(-max_total_time="$seconds")
    amount="$seconds s"
  fi
  echo "run.sh: $n ($amount, $workers at once), log $log" >&2
  start=$(date +%s)
  # The scratch corpus first: libFuzzer writes new inputs to the first directory only, and
  # each worker reads there, every second, what the others have found (-reload).
  worker() {
    local j code pid
    for (( j = $1; j < jobs; j += workers )); do
      [ -e "$jobdir/failed" ] && return 0
      # shellcheck disable=SC2086
      nice -n 19 "$build/bin/${n}_fuzzer" -print_funcs=0 -print_final_stats=1 \
        "${limit[@]}" "${memory[@]}" -timeout=25 -artifact_prefix="$artifacts/" \
        ${FUZZ_FLAGS:-} "$scratch" "$root/fuzz/corpus/$n" >"$jobdir/job-$j.log" 2>&1 &
      pid=$!
      echo "$pid" >"$jobdir/pid-$1"
      code=0
      wait "$pid" || code=$?
      if [ "$code" -ne 0 ]; then
        # The first finding stops the run: the other workers' jobs are ended (and their exit
        # is not taken for a finding of their own).
        if ( set -C; echo "$j $code" >"$jobdir/failed" ) 2>/dev/null; then
          for f in "$jobdir"/pid-*; do kill "$(cat "$f")" 2>/dev/null || true; done
        fi
        return 0
      fi
      echo "run.sh: $n job $((j + 1)) of $jobs done, $(executed) inputs so far" >&2
    done
  }
  # The inputs the finished and running jobs executed: each job's last "#N" line.
  executed() {
    local f total=0 last
    for f in "$jobdir"/job-*.log; do
      [ -e "$f" ] || continue
      last=$({ grep -ao '^#[0-9][0-9]*' "$f" || true; } | tail -1 | tr -dc '0-9')
      total=$(( total + ${last:-0} ))
    done
    echo "$total"
  }
  pids=()
  for (( w = 0; w < workers; w++ )); do
    worker "$w" &
    pids+=($!)
  done
  wait "${pids[@]}"
  took=$(( $(date +%s) - start ))
  execs=$(executed)
  cat "$jobdir"/job-*.log >"$log"
  outcome="ok"
  status=0
  if [ -e "$jobdir/failed" ]; then
    failed=1
    status=1
    read -r job code <"$jobdir/failed"
    # A slow unit is written too, and the run goes on: it is not what stopped it.
    found=$(sed -n 's/^.*Test unit written to \(.*\)$/\1/p' "$jobdir/job-$job.log" |
      { grep -v '/slow-unit-' || true; } | tail -1)
    outcome="FAILED (job $((job + 1)), exit $code${found:+, $found})"
  fi
  summary+=("$(printf '%-16s %14s %8s  %s' "$n" "$execs" "${took}s" "$outcome")")
  if [ "$merge" -eq 1 ] && [ "$status" -eq 0 ]; then
    nice -n 19 "$build/bin/${n}_fuzzer" -merge=1 "${memory[@]}" "fuzz/corpus/$n" "$build/corpus/$n" \
      >>"$log" 2>&1
  fi
done

printf '%-16s %14s %8s  %s\n' harness executions time outcome
printf '%s\n' "${summary[@]}"
echo "(commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%d))"
exit "$failed"
