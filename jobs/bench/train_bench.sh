#!/usr/bin/env bash
# train_bench.sh - training throughput of shardnet vs PyTorch 1.13 (train_peer.py), as JSON lines
# and a ratio line per model.
#
#   shardnet: `shardnet bench --train` (sn_net_train_step + sn_net_sgd_update on random data,
#             median step), and train_bench.c (the same step with SGD momentum 0.9 and weight
#             decay, as the peer; also reports the median CPU time of a step)
#   torch:    train_peer.py (same model, same batch, SGD momentum, torch.set_num_threads(T))
#   KERNELS=1: also conv_train_bench.c (per-layer GFLOP/s of the training convolutions)
#   (also compiles pair_bench.c into $BUILD: two variants of a net alternated call by call, and
#   tile_bench.c: one direct-convolution tile in L1 against a plain FMA loop)
# Ratio lines: img/s of `shardnet bench` over PyTorch's, and PyTorch's CPU ms per step over
# train_bench's (the work per step, less sensitive to a loaded machine than the wall time).
#   CLI=1:    also `shardnet train --steps N --quiet --metrics F` on a generated HDF5 dataset
#             (end to end, with data loading), reading images_per_s from the metrics line.
#
# Models: resnet20 on 28x28x1 batch 128 (Fashion-MNIST shape), resnet50 on 224x224x3 batch 16.
# Environment fixed for both engines: OPENBLAS_CORETYPE=SkylakeX (OpenBLAS 0.3.21 otherwise
# falls back to SSE3 kernels on this CPU), OMP_WAIT_POLICY=passive (OpenBLAS's pthread pool
# beside the OpenMP team on 2 shared cores), OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=THREADS.
# The machine is shared: numbers are medians; the load average is printed with each line.
#
# Usage: jobs/bench/train_bench.sh
# Env:   BUILD=dir (default build-train) THREADS=2 REPS=10 MIN_TIME=10 MODELS="resnet20 resnet50"
#        PEER=0 (skip PyTorch) CLI=1 (also the CLI run) CLI_STEPS=30
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build-train}
threads=${THREADS:-2}
reps=${REPS:-10}
min_time=${MIN_TIME:-10}
models=${MODELS:-resnet20 resnet50}
peer=${PEER:-1}

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target shardnet_static shardnet_cli >/dev/null
for prog in train_bench conv_train_bench pair_bench tile_bench; do
  cc -O2 -std=c11 -fopenmp -I"$root/src" -I/usr/include/x86_64-linux-gnu "$here/$prog.c" \
    "$build/libshardnet_static.a" -lopenblas -lm -o "$build/$prog"
done

export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

args_of() {
  case $1 in
    resnet20) echo "--input 28x28x1 --classes 10 --batch 128" ;;
    resnet50) echo "--input 224x224x3 --classes 1000 --batch 16" ;;
    *) echo "unknown model $1" >&2; exit 2 ;;
  esac
}
batch_of() { case $1 in resnet20) echo 128 ;; resnet50) echo 16 ;; esac; }
input_of() { case $1 in resnet20) echo 28x28x1 ;; resnet50) echo 224x224x3 ;; esac; }
ips() { sed -n 's/.*"img_per_s": \([0-9.]*\).*/\1/p'; }
cpu() { sed -n 's/.*"cpu_ms_per_step": \([0-9.]*\).*/\1/p'; }

echo "{\"host_load_avg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"threads\":$threads}"
for m in $models; do
  sb=$("$build/shardnet" bench --arch "$m" --input "$(input_of "$m")" --batch "$(batch_of "$m")" \
    --train --threads "$threads" --reps "$reps" --min-time "$min_time")
  echo "$sb"
  # shellcheck disable=SC2046
  sn=$("$build/train_bench" --arch "$m" $(args_of "$m") --reps "$reps" --min-time "$min_time")
  echo "$sn"
  if [ "${KERNELS:-0}" = 1 ]; then
    "$build/conv_train_bench" --model "$m" --batch "$(batch_of "$m")"
  fi
  if [ "$peer" = 1 ]; then
    pt=$(/usr/bin/python3 "$here/train_peer.py" --models "$m" --batch "$m=$(batch_of "$m")" \
      --threads "$threads" --reps "$reps" --min-time "$min_time")
    echo "$pt"
    a=$(echo "$sb" | ips)
    b=$(echo "$pt" | ips)
    ca=$(echo "$sn" | cpu)
    cb=$(echo "$pt" | cpu)
    echo "{\"model\": \"$m\", \"shardnet_img_per_s\": $a, \"torch_img_per_s\": $b, \"ratio\": $(echo "scale=3; $a / $b" | bc), \"cpu_ratio\": $(echo "scale=3; $cb / $ca" | bc)}"
  fi
done

if [ "${CLI:-0}" = 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  /usr/bin/python3 - "$tmp/train.h5" <<'EOF'
import sys, h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = rng.integers(0, 256, (4096, 28, 28, 1), dtype=np.uint8)
    f["labels"] = rng.integers(0, 10, 4096, dtype=np.int32)
EOF
  cmake --build "$build" -j2 --target shardnet_cli >/dev/null 2>&1 || cmake --build "$build" -j2 >/dev/null
  "$build/shardnet" train --arch resnet20 --input 28x28x1 --data "$tmp/train.h5" --batch 128 \
    --steps "${CLI_STEPS:-30}" --threads "$threads" --quiet --metrics "$tmp/m.json" >/dev/null
  echo "{\"cli\": $(tail -n 1 "$tmp/m.json")}"
fi
