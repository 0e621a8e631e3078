#!/usr/bin/env bash
# ci.sh - the opt-in fuzz smoke run for CI. Does nothing (exit 0) unless SN_FUZZ_SECONDS is set;
# then builds the harnesses and fuzzes each for SN_FUZZ_SECONDS seconds (tests/fuzz/run.sh),
# failing on any crash in shardnet's code or a broken fuzz invariant. Six harnesses: budget
# about 6 x SN_FUZZ_SECONDS + 2 minutes of build on 2 cores (SN_FUZZ_SECONDS=20: ~4 minutes).
# Wiring: `bash tests/fuzz/ci.sh` after jobs/test.sh in .ci/run (see docs/reliability.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${SN_FUZZ_SECONDS:-}" ]]; then
  echo "fuzz: skipped (set SN_FUZZ_SECONDS=N to fuzz every harness N seconds)"
  exit 0
fi
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not installed (apt-get install clang libclang-rt-14-dev libomp-dev)" >&2
  exit 2
fi
exec "$here/tests/fuzz/run.sh" "$SN_FUZZ_SECONDS"
