#!/usr/bin/env bash
# triage.sh - classifies the crash inputs a fuzz run left: reruns each one and names the first
# stack frame that is neither the sanitizer runtime nor libc nor libFuzzer, and its library.
# Usage: tests/fuzz/triage.sh HARNESS [ARTIFACT...]   (default: <build>/artifacts/HARNESS/*)
# Output, one line per input: <class> <file> <kind> <frame>, class = shardnet | hdf5 | other.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${SN_FUZZ_BUILD:-$here/build-fuzz}"
h="$1"
shift
files=("$@")
((${#files[@]})) || files=("$build/artifacts/$h"/*)
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$here/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export SN_FUZZ_TMP="${SN_FUZZ_TMP:-/dev/shm}" HDF5_USE_FILE_LOCKING=FALSE OMP_NUM_THREADS=1
for f in "${files[@]}"; do
  [[ -f "$f" ]] || continue
  out=$(timeout 300 "$build/$h" -runs=1 -timeout=60 -rss_limit_mb=3072 -malloc_limit_mb=2048 "$f" 2>&1)
  kind=$(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-zA-Z-]+|FUZZ INVARIANT|runtime error|out-of-memory|timeout' <<<"$out" | head -1)
  [[ -n "$kind" ]] || { echo "fixed $f (no longer fails)"; continue; }
  frame=$(grep -E '^ +#[0-9]+ ' <<<"$out" |
    grep -vE 'in (__asan|__ubsan|__sanitizer|__interceptor|__lsan|fuzzer::|malloc|calloc|realloc|free|abort|raise|__libc|_start|main )|libc\.so|/sanitizer_common/|compiler-rt' |
    head -1 | sed -E 's/^ +#[0-9]+ 0x[0-9a-f]+ in //; s/ \(BuildId.*//')
  if [[ "$kind" == "FUZZ INVARIANT" ]]; then class=shardnet; frame=$(grep -m1 'FUZZ INVARIANT' <<<"$out")
  elif grep -q 'libhdf5' <<<"$frame"; then class=hdf5
  elif grep -qE 'shardnet|/io/|/src/' <<<"$frame"; then class=shardnet
  else class=other; fi
  echo "$class $(basename "$f") ${kind// /_} $frame"
done
