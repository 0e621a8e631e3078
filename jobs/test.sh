#!/usr/bin/env bash
# test.sh - README command 2: installs what is missing, builds, runs the whole test suite.
# Usage: jobs/test.sh [ctest args...]   e.g. jobs/test.sh -L mpi  (ctest args skip the fuzz run)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SN_BUILD_DIR:-$here/build}"
# SN_FUZZ_SECONDS=N (set by .ci/run): after the tests, fuzz each libFuzzer harness for N seconds
# (tests/fuzz/ci.sh; needs clang, installed here when missing).
if [[ -n "${SN_FUZZ_SECONDS:-}" ]]; then
  export SN_EXTRA_PKGS="${SN_EXTRA_PKGS:-} clang libclang-rt-14-dev libomp-dev"
fi
"$here/jobs/setup.sh" "$build"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
(cd "$build" && ctest --output-on-failure -j2 --timeout 900 "$@")
if [[ -n "${SN_FUZZ_SECONDS:-}" && $# -eq 0 ]]; then
  bash "$here/tests/fuzz/ci.sh"
fi
