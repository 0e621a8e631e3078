#!/usr/bin/env bash
# setup.sh - installs the Debian packages shardnet needs (only the missing ones) and builds it.
# Usage: jobs/setup.sh [build-dir] [target...]   (default: build, all targets).
# Env: SN_CMAKE_ARGS for extra cmake flags.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$here/build}"
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done

pkgs=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools
      libopenblas-dev libgtest-dev googletest libjpeg-dev libpng-dev zlib1g-dev
      dataset-fashion-mnist gnuplot-nox python3-h5py python3-numpy)
# jobs/test.sh adds what only the tests need (SN_SETUP_EXTRA).
read -r -a extra <<<"${SN_SETUP_EXTRA:-}"
pkgs+=("${extra[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release ${SN_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)" "${targets[@]}"
