#!/usr/bin/env bash
# run.sh - a bounded libFuzzer run of every harness (or the ones named), one after the other.
#
# Usage: tests/fuzz/run.sh [SECONDS] [harness...]
#   SECONDS per harness (default $SN_FUZZ_SECONDS, else 60); harnesses: fuzz_image fuzz_idx
#   fuzz_dataset fuzz_dataset_h5 fuzz_weights fuzz_weights_h5 (default all).
# Env: SN_FUZZ_BUILD (default <repo>/build-fuzz), SN_FUZZ_NO_BUILD=1 (skip tests/fuzz/build.sh),
#      SN_FUZZ_JOBS (parallel libFuzzer workers per harness, default 1),
#      SN_FUZZ_STRICT=1 (do not skip inputs of known, reported findings; see docs/reliability.md).
# The committed seeds (tests/fuzz/corpus/<harness>) are copied into a working corpus under the
# build directory, which grows across runs; the repository is never written. A crash leaves
# its input in <build>/artifacts/<harness>/ (reproduce: <build>/<harness> <file>) and makes the
# script exit 1 after the remaining harnesses ran. One summary line per harness goes to stdout.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${SN_FUZZ_BUILD:-$here/build-fuzz}"
secs="${1:-${SN_FUZZ_SECONDS:-60}}"
[[ $# -gt 0 ]] && shift
harnesses=("$@")
((${#harnesses[@]})) || harnesses=(fuzz_image fuzz_idx fuzz_dataset fuzz_dataset_h5 fuzz_weights fuzz_weights_h5)

if [[ "${SN_FUZZ_NO_BUILD:-0}" != 1 ]]; then
  SN_FUZZ_BUILD="$build" "$here/tests/fuzz/build.sh" >/dev/null || exit 2
fi

# allocator_may_return_null: a failed allocation reaches the library's SN_ERR_NOMEM path (inputs
# asking for more than -malloc_limit_mb are still reported, as libFuzzer "out-of-memory").
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$here/tests/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export HDF5_USE_FILE_LOCKING=FALSE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Scratch files of this run (the loaders take paths) go to a private tmpfs directory.
shm=/dev/shm
[[ -w $shm ]] || shm=/tmp
export SN_FUZZ_TMP="$(mktemp -d "$shm/sn_fuzz.XXXXXX")"
kmp_before=$(ls /dev/shm 2>/dev/null | grep '^__KMP_REGISTERED_LIB_' | sort)
cleanup() {
  rm -rf "$SN_FUZZ_TMP"
  # libomp leaves a registration file behind for every process that crashed or timed out
  local f pid
  for f in $(comm -13 <(echo "$kmp_before") <(ls /dev/shm 2>/dev/null | grep '^__KMP_REGISTERED_LIB_' | sort)); do
    pid=${f#__KMP_REGISTERED_LIB_}
    pid=${pid%%_*}
    kill -0 "$pid" 2>/dev/null || rm -f "/dev/shm/$f"
  done
}
trap cleanup EXIT

status=0
for h in "${harnesses[@]}"; do
  exe="$build/$h"
  if [[ ! -x "$exe" ]]; then
    echo "$h: not built" >&2
    status=1
    continue
  fi
  work="$build/corpus/$h"
  art="$build/artifacts/$h"
  mkdir -p "$work" "$art"
  cp -n "$here/tests/fuzz/corpus/$h/"* "$work/" 2>/dev/null || true
  log="$build/logs/$h.log"
  mkdir -p "$(dirname "$log")"
  # The raw harnesses feed corrupt files to HDF5 itself, which crashes on some (third-party
  # findings, docs/reliability.md): they run in fork mode and keep going; their crash inputs are
  # triaged afterwards and only crashes in shardnet's code fail the run.
  keep_going=0
  case "$h" in fuzz_weights | fuzz_dataset) keep_going=1 ;; esac
  mode=()
  if ((keep_going)); then
    # HDF5 leaks inside itself on many corrupt files and, built without frame pointers, shows
    # no stack to suppress them by: leak checks are off here (shardnet's leaks are the
    # structure-aware harnesses' job, HDF5 handles are counted after every call).
    # HDF5 also loops forever on some files: a shorter timeout keeps those from eating the run.
    mode=(-fork="${SN_FUZZ_JOBS:-1}" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -detect_leaks=0 -timeout=20)
  elif [[ "${SN_FUZZ_JOBS:-1}" -gt 1 ]]; then
    mode=(-fork="$SN_FUZZ_JOBS")
  fi
  before=$(ls "$art" | wc -l)
  start=$(date +%s)
  env=()
  ((keep_going)) && env=(ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0") # also at the fork children's exit
  env "${env[@]}" "$exe" "$work" -max_total_time="$secs" -timeout=60 -rss_limit_mb=3072 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "${mode[@]}" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  units=$(ls "$work" | wc -l)
  if ((${#mode[@]})); then
    # fork mode: "#<runs>: cov: C ft: F corp: ... exec/s: R oom/timeout/crash: a/b/c time: ..."
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
    rate=$(grep -oE 'exec/s:? [0-9]+' <<<"$last" | grep -oE '[0-9]+$')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$last")
    otc=$(grep -oE 'oom/timeout/crash: [0-9/]+' <<<"$last")
  else
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    otc=""
  fi
  summary="${took}s, ${execs:-?} executions (${rate:-?}/s), ${cov:-cov ?}, corpus $units"
  if ((keep_going)); then
    new=$(ls -t "$art" | head -n $(($(ls "$art" | wc -l) - before)))
    tri=""
    [[ -n "$new" ]] && tri=$(cd "$art" && "$here/tests/fuzz/triage.sh" "$h" $new)
    mine=$(grep -c '^shardnet' <<<"$tri")
    theirs=$(grep -cE '^(hdf5|other)' <<<"$tri")
    [[ -n "$tri" ]] && printf '%s\n' "$tri" >>"$build/logs/$h.triage"
    if ((mine > 0)); then
      status=1
      echo "$h: CRASH in shardnet: $mine input(s), see $build/logs/$h.triage; $summary"
    else
      echo "$h: ok $summary, ${otc:-oom/timeout/crash: ?}; third-party crash inputs: $theirs (triage: $build/logs/$h.triage)"
    fi
  elif ((rc != 0)); then
    status=1
    what=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|FUZZ INVARIANT: .*|runtime error: .*|out-of-memory|timeout' "$log" | head -1)
    echo "$h: CRASH after ${took}s: ${what:-exit $rc} (input in $art, log $log)"
  else
    echo "$h: ok $summary"
  fi
done
exit $status
