#!/usr/bin/env bash
# failure_drill.sh - how fast and how loudly a job ends when one rank fails.
# Usage: tests/mpi/failure_drill.sh [path/to/sn_test_mpi] [np]
# Runs each drill of tests/mpi/failure_drill_test.cpp under mpirun, prints a table of
# wall time, mpirun exit code and the "drill: error:" lines, and fails if any drill takes
# longer than its limit, exits 0, or does not name the failing rank.
set -u
BIN=${1:-${SN_BUILD_DIR:-build-mpi}/tests/sn_test_mpi}
NP=${2:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
BAD=$((NP - 1))
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0

# mode  limit(s)  expected text  [SN_DRILL_RANK0]
run() {
  local mode=$1 limit=$2 want=$3 rank0=${4:-}
  local start end rc
  start=$(date +%s.%N)
  env SN_DRILL="$mode" SN_DRILL_TIMEOUT=2 ${rank0:+SN_DRILL_RANK0=1} \
    timeout 120 mpirun --oversubscribe -np "$NP" "$BIN" --gtest_also_run_disabled_tests \
    --gtest_filter='FailureDrill.DISABLED_Run' >"$TMP/$mode.out" 2>"$TMP/$mode.err"
  rc=$?
  end=$(date +%s.%N)
  local secs lines
  secs=$(echo "$end - $start" | bc)
  lines=$(grep -c '^drill: error:' "$TMP/$mode.err")
  printf '%-6s %-5s rc=%-3s %6.2fs  %s error line(s)\n' "$mode" "${rank0:+r0}" "$rc" "$secs" "$lines"
  grep '^drill: error:' "$TMP/$mode.err" | sed 's/^/         /'
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then echo "  FAIL: exit code $rc"; fail=1; fi
  if [ "$(echo "$secs > $limit" | bc)" -eq 1 ]; then echo "  FAIL: took more than ${limit}s"; fail=1; fi
  if [ -n "$want" ] && ! grep -q "$want" "$TMP/$mode.err"; then
    echo "  FAIL: stderr lacks '$want'"; sed 's/^/    | /' "$TMP/$mode.err" | head -30; fail=1
  fi
}

run agree 10 "^drill: error: rank $BAD: file /data/train.h5"
run hang 15 "^drill: error: rank $BAD: did not reach the step agreement within 2 s"
run hang 20 "^drill: error: rank 0: did not answer" r0
run exit 15 ""
run kill 15 ""
run segv 15 ""
exit $fail
