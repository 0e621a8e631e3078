#!/usr/bin/env bash
# data_wait.sh - "waiting for data" of resized-crop training on an encoded JPEG dataset: the share
# of a training run that rank 0 spent blocked on the streaming reader (metrics' data_wait_s over
# the epoch's seconds), per --decode-threads value, runs alternating between the values.
#
# Dataset (generated under WORK, deleted at the end unless KEEP=1): N JPEGs of 500x375 (ImageNet's
# typical size; quality 90, a smooth random field plus noise, made with Pillow) in 10 class
# folders, `shardnet convert folder --encoded --size HWxHW`.
# Each run: `mpirun -np RANKS shardnet train --arch ARCH --input HWxHWx3 --batch BATCH
# --steps STEPS --augment resized-crop --threads THREADS --decode-threads D` (torch
# preprocessing, RandomResizedCrop from the original picture at decode, flip), ROUNDS rounds.
# Output: one JSON line per run, then per D the median of the data-wait share (with quartiles
# from 4 runs up, else every run's value).
# Results and their reading: docs/performance.md, "ImageNet-subset path".
#
# Usage: jobs/bench/data_wait.sh
# Env:   BUILD=dir (default build) WORK=/tmp/sn_data_wait N=256 HW=224 ARCH=resnet50 RANKS=2
#        THREADS=1 BATCH=16 STEPS=8 DECODE="1 2" ROUNDS=3 KEEP=0
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build}
work=${WORK:-/tmp/sn_data_wait}
n=${N:-256}
hw=${HW:-224}
arch=${ARCH:-resnet50}
ranks=${RANKS:-2}
threads=${THREADS:-1}
batch=${BATCH:-16}
steps=${STEPS:-8}
decode=${DECODE:-1 2}
rounds=${ROUNDS:-3}
sn=$build/shardnet
[[ -x $sn ]] || { echo "data_wait.sh: build shardnet first ($sn)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE
mkdir -p "$work"
if [[ ${KEEP:-0} != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi

if [[ ! -f $work/jpeg.h5 ]]; then
  /usr/bin/python3 - "$work/jpg" "$n" <<'EOF'
import sys, os, numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(2)
for i in range(n):
    d = os.path.join(root, "class%d" % (i % 10))
    os.makedirs(d, exist_ok=True)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((500, 375), Image.BICUBIC), dtype=np.int16)
    img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(d, "img%05d.jpg" % i), "JPEG", quality=90)
EOF
  "$sn" convert folder --root "$work/jpg" --out "$work/jpeg.h5" --encoded --size "${hw}x$hw" --quiet
  rm -rf "$work/jpg"
fi

echo "{\"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\", \"nproc\": $(nproc), \"arch\": \"$arch\", \"input\": $hw, \"ranks\": $ranks, \"threads\": $threads, \"batch\": $batch, \"steps\": $steps}"
rm -f "$work/runs.jsonl"
for ((r = 1; r <= rounds; ++r)); do
  order=$decode
  ((r % 2 == 0)) && order=$(tr ' ' '\n' <<<"$decode" | tac | tr '\n' ' ')
  for d in $order; do
    rm -f "$work/m.jsonl"
    nice mpirun --oversubscribe -q -np "$ranks" "$sn" train --arch "$arch" --input "${hw}x${hw}x3" \
      --data "$work/jpeg.h5" --batch "$batch" --steps "$steps" --augment resized-crop \
      --threads "$threads" --decode-threads "$d" --metrics "$work/m.jsonl" --quiet >/dev/null
    m=$(tail -1 "$work/m.jsonl")
    get() { sed -E "s/.*\"$1\": ([0-9.e+-]+).*/\1/" <<<"$m"; }
    share=$(awk "BEGIN { printf \"%.4f\", $(get data_wait_s) / $(get seconds) }")
    echo "{\"round\": $r, \"decode_threads\": $d, \"seconds\": $(get seconds), \"data_wait_s\": $(get data_wait_s), \"wait_share\": $share, \"images_per_s\": $(get images_per_s), \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" |
      tee -a "$work/runs.jsonl"
  done
done
/usr/bin/python3 - "$work/runs.jsonl" <<'EOF'
import json, sys, statistics as st
runs = [json.loads(l) for l in open(sys.argv[1])]
for d in sorted({r["decode_threads"] for r in runs}):
    v = sorted(r["wait_share"] for r in runs if r["decode_threads"] == d)
    spread = ("quartiles [%.2f, %.2f]" % tuple(100 * q for q in st.quantiles(v, n=4)[::2])
              if len(v) >= 4 else "runs " + ", ".join("%.2f" % (100 * x) for x in v))
    print(f"decode-threads {d}: waiting for data {100 * st.median(v):.2f}% of the run "
          f"(median of {len(v)}; {spread})")
EOF
rm -f "$work/runs.jsonl"
