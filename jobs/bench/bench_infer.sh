#!/usr/bin/env bash
# bench_infer.sh - per-layer GFLOP/s of the prepared inference convolutions (sn_conv_prepare) on
# the resnet50/resnet18 conv shapes, vs the generic path and a plain cblas_sgemm of the same size,
# then whole-network images/s (`shardnet bench`, same JSON fields as peers.py).
#
# Builds libshardnet_static.a and the CLI in BUILD (default build-bench), compiles
# jobs/bench/conv_bench.c against the library, runs it for every MODELS x BATCHES, then
# `shardnet bench` for every NETS x NET_BATCHES. Output: JSON lines.
# The machine is shared: times are medians (and mins) of REPS runs; the load average is printed
# so that noisy runs can be spotted. On a loaded machine OMP_WAIT_POLICY=passive avoids spinning
# threads starving the ones they wait for (measured: resnet50 batch 1 at load 10, 2 threads:
# 1.5 s/img with the default policy, 0.2 s/img passive); on a quiet one the default is better.
#
# Usage: jobs/bench/bench_infer.sh [extra conv_bench args, e.g. --algo gemm --no-generic]
# Env:   BUILD=dir MODELS="resnet50 resnet18" BATCHES="1 8" REPS=21 THREADS=2
#        NETS="resnet18 resnet50 keras_resnet50v2" NET_BATCHES="1 8 32" (NETS="" skips them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build-bench}
models=${MODELS:-resnet50 resnet18}
batches=${BATCHES:-1 8}
reps=${REPS:-21}
threads=${THREADS:-2}
nets=${NETS-resnet18 resnet50 keras_resnet50v2}
net_batches=${NET_BATCHES:-1 8 32}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target shardnet_static shardnet_cli >/dev/null
exe=$build/conv_bench
cc -O2 -std=c11 -fopenmp -I"$root/src" -I/usr/include/x86_64-linux-gnu "$here/conv_bench.c" \
  "$build/libshardnet_static.a" -lopenblas -lm -o "$exe"

export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
# OpenBLAS 0.3.21 (DYNAMIC_ARCH) detects this Sapphire Rapids VM as "Prescott" and runs SSE3
# kernels (l3 1x1 256>1024 sgemm, 1 thread: 94 GFLOP/s vs 134 with SkylakeX); force the AVX-512
# kernels so that the generic path and the sgemm ceiling are fair.
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
echo "{\"host_load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"threads\":$threads,\"reps\":$reps,\"openblas_coretype\":\"$OPENBLAS_CORETYPE\",\"omp_wait_policy\":\"${OMP_WAIT_POLICY:-default}\"}"
for m in $models; do
  for b in $batches; do
    "$exe" --model "$m" --batch "$b" --reps "$reps" "$@"
  done
done
for m in $nets; do
  for b in $net_batches; do
    "$build/shardnet" bench --arch "$m" --batch "$b" --threads "$threads"
  done
done
echo "{\"host_load_avg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
