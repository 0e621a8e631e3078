#!/usr/bin/env bash
# ci.sh - the opt-in fuzz smoke run for CI. Does nothing (exit 0) unless SN_FUZZ_SECONDS is set;
# then builds the harnesses and fuzzes each for SN_FUZZ_SECONDS seconds (tests/fuzz/run.sh),
# failing on any crash in shardnet's code or a broken fuzz invariant. Six harnesses: budget
# about 6 x SN_FUZZ_SECONDS + 2 minutes of build on 2 cores (SN_FUZZ_SECONDS=20: ~4 minutes).
# Wiring: .ci/run runs it after jobs/test.sh with SN_FUZZ_SECONDS=20 (see docs/reliability.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -z "${SN_FUZZ_SECONDS:-}" ]]; then
  echo "fuzz: skipped (set SN_FUZZ_SECONDS=N to fuzz every harness N seconds)"
  exit 0
fi
# clang, its fuzzer runtime and LLVM's OpenMP: installed when missing (Debian)
missing=()
for p in clang libclang-rt-14-dev libomp-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
exec "$here/tests/fuzz/run.sh" "$SN_FUZZ_SECONDS"
