#!/usr/bin/env bash
# sanitize.sh - builds shardnet with AddressSanitizer + UndefinedBehaviorSanitizer (SN_SANITIZE)
# in its own build directory and runs the whole ctest suite (MPI and CLI tests included) under
# them. Any ASan/UBSan report aborts the process, so it fails the test that hit it; leaks are
# checked at exit (Open MPI's own are suppressed by jobs/lsan.supp, never shardnet's).
# Usage: jobs/sanitize.sh [ctest args...]     e.g. jobs/sanitize.sh -R Dataset
# Env: SN_ASAN_BUILD (default <repo>/build-asan), SN_JOBS (build/test parallelism, default 2),
#      SN_BUILD_TYPE (default Debug; the targets add -O3, so Debug means -g and live asserts).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SN_ASAN_BUILD:-$here/build-asan}"
jobs="${SN_JOBS:-2}"

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE="${SN_BUILD_TYPE:-Debug}" -DSN_SANITIZE=ON \
  -DSN_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

# abort_on_error: a report ends the process with SIGABRT (a test failure, even where a test
# harness would swallow a plain exit code). detect_leaks: LeakSanitizer at exit.
# allocator_may_return_null: an impossible allocation returns NULL, as glibc's does, so the
# library's SN_ERR_NOMEM paths run (tests ask for absurd sizes on purpose).
# Open MPI unloads its components (dlclose) in MPI_Finalize, so their exit-time leaks show as
# "<unknown module>" and jobs/lsan.supp cannot match them; a preloaded no-op dlclose keeps them
# mapped (verify_asan_link_order=0: the shim is preloaded before gcc's dynamic ASan runtime).
# The alternative, fast_unwind_on_malloc=0, makes ASan's slow unwinder overflow the stack when
# a process exits while the reader thread runs (seen in 1 of 4 runs of a failing train).
# Not strict_string_checks: it flags strndup/strnlen on unterminated fixed-length HDF5 strings,
# which are legal and which io/ reads on purpose.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:verify_asan_link_order=0:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$here/jobs/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# Open MPI's memory patcher hooks munmap/mremap, which ASan intercepts too: switch it off
# (it only serves registration caches of RDMA networks).
export OMPI_MCA_memory="^patcher"
# For tests that must skip what cannot work under ASan (its shadow memory needs terabytes of
# address space, so "ulimit -v" makes every sanitized process fail at start).
export SN_SANITIZED=1
printf 'int dlclose(void *handle) { (void)handle; return 0; }\n' |
  cc -shared -fPIC -O2 -o "$build/sn_nodlclose.so" -x c -
export LD_PRELOAD="$build/sn_nodlclose.so${LD_PRELOAD:+:$LD_PRELOAD}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

cd "$build"
# Sanitized code runs 2-5x slower: a longer per-test timeout than jobs/test.sh.
ctest --output-on-failure -j"$jobs" --timeout 2400 "$@"
