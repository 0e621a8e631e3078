#!/usr/bin/env bash
# test.sh - README command 2: installs what is missing, builds, runs the whole test suite.
# Usage: jobs/test.sh [ctest args...]   e.g. jobs/test.sh -L mpi
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SN_BUILD_DIR:-$here/build}"
SN_SETUP_EXTRA="clang-format python3-keras-applications ${SN_SETUP_EXTRA:-}" "$here/jobs/setup.sh" "$build"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$build"
ctest --output-on-failure -j2 --timeout 900 "$@"
