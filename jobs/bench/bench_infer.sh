#!/usr/bin/env bash
# bench_infer.sh - per-layer GFLOP/s of the prepared inference convolutions (sn_conv_prepare) on
# the resnet50/resnet18 conv shapes, vs the generic path and a plain cblas_sgemm of the same size.
#
# Builds libshardnet_static.a in BUILD (default build-bench), compiles jobs/bench/conv_bench.c
# against it and runs it for every MODELS x BATCHES. Output: JSON lines (see conv_bench.c).
# The machine is shared: each layer time is the median of REPS runs; the load average is printed
# so that noisy runs can be spotted.
#
# Usage: jobs/bench/bench_infer.sh [extra conv_bench args, e.g. --algo gemm --no-generic]
# Env:   BUILD=dir MODELS="resnet50 resnet18" BATCHES="1 8" REPS=21 THREADS=2
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build-bench}
models=${MODELS:-resnet50 resnet18}
batches=${BATCHES:-1 8}
reps=${REPS:-21}
threads=${THREADS:-2}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target shardnet_static >/dev/null
exe=$build/conv_bench
cc -O2 -std=c11 -fopenmp -I"$root/src" -I/usr/include/x86_64-linux-gnu "$here/conv_bench.c" \
  "$build/libshardnet_static.a" -lopenblas -lm -o "$exe"

export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
echo "{\"host_load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"threads\":$threads,\"reps\":$reps}"
for m in $models; do
  for b in $batches; do
    "$exe" --model "$m" --batch "$b" --reps "$reps" "$@"
  done
done
echo "{\"host_load_avg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
