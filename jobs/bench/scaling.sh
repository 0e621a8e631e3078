#!/usr/bin/env bash
# scaling.sh - training images/s and exposed gradient communication of `shardnet train` on this
# machine: 1 rank x 2 threads against 2 ranks x 1 thread (Open MPI, shared memory), with the
# bucket polling of src/train.c on and off.
#
# Models:
#   resnet20  28x28x1, Fashion-MNIST (converted from /usr/share/datasets/fashion-mnist if present,
#             else generated), global batch 128, 0.25 MiB buckets (the gradient is 1.1 MB, so the
#             default 25 MiB would make one bucket and nothing to overlap)
#   resnet50  224x224x3 generated images, 1000 classes (25.6M parameters, 102 MB of gradients),
#             global batch 16, default 25 MiB buckets
# Layouts (LAYOUTS):
#   1x2          one process, 2 threads (no communication)
#   2x1          mpirun -np 2, 1 thread each, buckets polled during backward (the default)
#   2x1-nopoll   same with SN_COMM_POLL=0: buckets progress only inside other MPI calls
#   2x1-1bucket  same with --bucket-mb 4096: one all-reduce after backward (no overlap at all)
#
# Each run trains two epochs of STEPS steps on a dataset of exactly batch x STEPS rows; the second
# epoch's metrics line (rank 0) is the measurement, so start-up and the first, cold step are not
# counted. Reported per run and as medians over REPS runs:
#   images_per_s   global images / wall seconds of the epoch
#   step_s         seconds per step
#   exposed_ms     comm_exposed_s per step: rank 0 blocked after backward until every bucket
#                  was reduced (communication not hidden by backward, plus any wait for the
#                  slower rank)
#   comm_MB        gradient bytes all-reduced per step and rank
#
# Usage: jobs/bench/scaling.sh            (output: JSON lines on stdout; logs in $WORK)
# Env:   BUILD=dir (default build-scaling) WORK=dir REPS=3 MODELS="resnet20 resnet50"
#        LAYOUTS="1x2 2x1 2x1-nopoll 2x1-1bucket" STEPS20=8 STEPS50=2 MPIRUN_ARGS="..."
#        BENCH_TRAIN=1 (also overlap_bench train: skew-free exposed time, buckets overlapped)
# The machine is shared (2 cores): the host load average is printed with every run; medians of
# REPS runs; OMP_WAIT_POLICY=passive (see docs/distributed-failures.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build-scaling}
work=${WORK:-$build/scaling}
reps=${REPS:-3}
models=${MODELS:-resnet20 resnet50}
layouts=${LAYOUTS:-1x2 2x1 2x1-nopoll 2x1-1bucket}
steps20=${STEPS20:-8}
steps50=${STEPS50:-2}
mpirun_args=${MPIRUN_ARGS:-}
py=/usr/bin/python3 # has h5py and numpy

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target shardnet shardnet_cli >"$work.build.log" 2>&1 || { cat "$work.build.log" >&2; exit 1; }
exe=$build/shardnet
mkdir -p "$work"

# Datasets of exactly rows = batch x steps rows.
make_data() { # model batch steps -> path
  local model=$1 batch=$2 steps=$3 rows=$(($2 * $3)) out
  out=$work/${model}_${rows}.h5
  if [ ! -f "$out" ]; then
    if [ "$model" = resnet20 ]; then
      local fm=/usr/share/datasets/fashion-mnist full=$work/fashion_train.h5
      if [ -f "$fm/train-images-idx3-ubyte.gz" ] && [ ! -f "$full" ]; then
        "$exe" convert idx --images "$fm/train-images-idx3-ubyte.gz" \
          --labels "$fm/train-labels-idx1-ubyte.gz" --out "$full" --fashion --quiet >&2
      fi
      "$py" - "$full" "$out" "$rows" <<'EOF'
import os, sys, h5py, numpy as np
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(dst, 'w') as f:
    if os.path.exists(src):
        with h5py.File(src, 'r') as s:
            f['images'] = s['images'][:n]; f['labels'] = s['labels'][:n]
    else:
        rng = np.random.default_rng(0)
        f['images'] = rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
        f['labels'] = rng.integers(0, 10, size=n).astype(np.int32)
EOF
    else
      "$py" - "$out" "$rows" <<'EOF'
import sys, h5py, numpy as np
dst, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
with h5py.File(dst, 'w') as f:
    f.create_dataset('images', data=rng.integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8),
                     chunks=(1, 224, 224, 3))
    f['labels'] = rng.integers(0, 1000, size=n).astype(np.int32)
EOF
    fi
  fi
  echo "$out"
}

export OMP_WAIT_POLICY=passive
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_WAIT_POLICY)
results=$work/runs.jsonl
: >"$results"

for model in $models; do
  if [ "$model" = resnet20 ]; then
    batch=128 steps=$steps20 args=(--arch resnet20 --classes 10) bucket=0.25
  else
    batch=16 steps=$steps50 args=(--arch resnet50 --classes 1000) bucket=25
  fi
  data=$(make_data "$model" "$batch" "$steps")
  common=(train "${args[@]}" --data "$data" --batch "$batch" --epochs 2 --quiet --augment none)
  for layout in $layouts; do
    for rep in $(seq 1 "$reps"); do
      metrics=$work/${model}_${layout}_${rep}.json
      log=$work/${model}_${layout}_${rep}.log
      rm -f "$metrics"
      load=$(cut -d' ' -f1 /proc/loadavg)
      case $layout in
        1x2) OMP_NUM_THREADS=2 "$exe" "${common[@]}" --threads 2 --metrics "$metrics" >"$log" 2>&1 ;;
        2x1) "${mpi[@]}" $mpirun_args "$exe" "${common[@]}" --threads 1 --bucket-mb "$bucket" \
               --metrics "$metrics" >"$log" 2>&1 ;;
        2x1-nopoll) SN_COMM_POLL=0 "${mpi[@]}" -x SN_COMM_POLL $mpirun_args "$exe" "${common[@]}" \
               --threads 1 --bucket-mb "$bucket" --metrics "$metrics" >"$log" 2>&1 ;;
        2x1-1bucket) "${mpi[@]}" $mpirun_args "$exe" "${common[@]}" --threads 1 --bucket-mb 4096 \
               --metrics "$metrics" >"$log" 2>&1 ;;
        *) echo "scaling.sh: unknown layout $layout" >&2; exit 2 ;;
      esac
      "$py" - "$metrics" "$model" "$layout" "$rep" "$load" "$steps" "$batch" >>"$results" <<'EOF'
import json, sys
path, model, layout, rep, load, steps, batch = sys.argv[1:]
lines = [json.loads(l) for l in open(path) if l.strip()]
a, b = lines[-2], lines[-1]          # epoch 1 (warm-up) and epoch 2 (measured)
steps = int(steps)
print(json.dumps({
    "model": model, "layout": layout, "rep": int(rep), "load_avg": float(load),
    "ranks": b["ranks"], "threads": b["threads"], "global_batch": int(batch), "steps": steps,
    "images_per_s": round(b["images_per_s"], 2), "step_s": round(b["seconds"] / steps, 4),
    "exposed_ms": round(1e3 * (b.get("comm_exposed_s", 0) - a.get("comm_exposed_s", 0)) / steps, 2),
    "comm_MB": round((b.get("comm_bytes", 0) - a.get("comm_bytes", 0)) / steps / 1e6, 3),
    "loss": round(b["train_loss"], 4)}))
EOF
      tail -n 1 "$results"
    done
  done
done

# The engine-level view (overlap_bench train, 2 ranks): exposed time of the last rank to reach the
# final wait (skew-free) and buckets complete when backward ended, polling on/off, sync and local BN.
if [ "${BENCH_TRAIN:-1}" = 1 ]; then
  mpicc -O2 -std=c11 -I"$root/src" "$here/overlap_bench.c" "$build/libshardnet.so" \
    -Wl,-rpath,"$build" -o "$build/overlap_bench"
  for model in $models; do
    if [ "$model" = resnet20 ]; then
      targs=(resnet20 28x28x1 10 64 5 0.25)
    else
      targs=(resnet50 224x224x3 1000 8 2 25)
    fi
    for bn in local sync; do
      for poll in 1 0; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        "${mpi[@]}" -x OMP_NUM_THREADS=1 $mpirun_args "$build/overlap_bench" train "${targs[@]}" \
          "$poll" "$bn" 2>>"$work/bench_train.err" |
          "$py" -c "import json,sys
for l in sys.stdin:
    d=json.loads(l); d['load_avg']=$load; print(json.dumps(d))"
      done
    done
  done
fi

# Medians per (model, layout).
"$py" - "$results" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in runs:
    k = (r["model"], r["layout"])
    if k not in keys: keys.append(k)
for k in keys:
    rs = [r for r in runs if (r["model"], r["layout"]) == k]
    med = lambda f: round(statistics.median(r[f] for r in rs), 3)
    print(json.dumps({"summary": True, "model": k[0], "layout": k[1], "runs": len(rs),
                      "images_per_s": med("images_per_s"), "step_s": med("step_s"),
                      "exposed_ms": med("exposed_ms"), "comm_MB": med("comm_MB"),
                      "load_avg": med("load_avg")}))
EOF
