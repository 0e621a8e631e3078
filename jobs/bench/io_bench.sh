#!/usr/bin/env bash
# io_bench.sh - data-plane benchmark: throughput of the streaming reader (read + decode +
# preprocess, io_bench.c) on generated datasets larger than the reader's memory bound, and the
# data-wait fraction of `shardnet infer` on them. JSON lines, then one median line per case.
#
# Datasets (generated under WORK, deleted at the end unless KEEP=1):
#   raw.h5        RAW_N images RAW_HW x RAW_HW x 3 uint8 (/images chunked like `shardnet convert`:
#                 about 1 MiB per chunk), random pixels, /labels in [0, 10), /classes
#   raw_infer.h5  the same generator, INFER_RAW_N rows (`infer` has no row limit and a small model
#                 takes minutes for 10^5 rows on a loaded 2-core machine)
#   jpeg.h5       `shardnet convert folder --encoded` of JPEG_N JPEGs 500x375 (quality 90, about
#                 76 KB: a smooth random field plus noise) made with Pillow in 10 class folders
# Results and their reading: docs/performance.md, "Data plane (I/O)".
# Reader cases (io_bench, OMP_NUM_THREADS=1 so the reader is one thread, batch 32, prefetch 2,
# torch preprocessing; JPEG decoded to 224x224 by Resize(256) + CenterCrop as `infer` does):
#   raw seq / shuffle (page cache warm), raw seq / shuffle cold (posix_fadvise DONTNEED first;
#   the cold shuffle reads COLD_SHUFFLE_N rows), jpeg seq / shuffle.
# Infer cases (`shardnet infer --metrics`, the report line's "waiting for data X%"):
#   raw_infer.h5 with INFER_RAW_ARCH, jpeg.h5 with each of INFER_JPEG_ARCHS (';'-separated),
#   THREADS threads; peak RSS from /usr/bin/time.
# Every case runs REPS times (separate processes); the machine is shared: the load average is
# printed with every median line.
#
# Usage: jobs/bench/io_bench.sh
# Env:   BUILD=dir (default build-iobench) WORK=/tmp/sn_iobench REPS=3 RAW_N=200000 RAW_HW=64
#        INFER_RAW_N=10000 JPEG_N=2000 COLD_SHUFFLE_N=20000 THREADS=2 KEEP=0
#        INFER_RAW_ARCH="resnet20 --width 4" INFER_JPEG_ARCHS="resnet18 --width 16;resnet18 --width 32"
#        READ=1 INFER=1 (0 skips the section)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build-iobench}
work=${WORK:-/tmp/sn_iobench}
reps=${REPS:-3}
raw_n=${RAW_N:-200000}
raw_hw=${RAW_HW:-64}
infer_raw_n=${INFER_RAW_N:-10000}
jpeg_n=${JPEG_N:-2000}
cold_shuffle_n=${COLD_SHUFFLE_N:-20000}
threads=${THREADS:-2}
raw_arch=${INFER_RAW_ARCH:-resnet20 --width 4}
jpeg_archs=${INFER_JPEG_ARCHS:-resnet18 --width 16;resnet18 --width 32}
py=/usr/bin/python3

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target shardnet_static shardnet_cli >/dev/null
# bench_infer.sh's flags, plus the libraries of the io/ and mpi/ parts of the static library.
cc -O2 -std=c11 -fopenmp -I"$root/src" -I/usr/include/x86_64-linux-gnu "$here/io_bench.c" \
  "$build/libshardnet_static.a" -lopenblas -lhdf5_openmpi -L/usr/lib/x86_64-linux-gnu/openmpi/lib \
  -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openmpi/lib -lmpi -ljpeg -lpng -lz -lpthread -lm \
  -o "$build/io_bench"
sn=$build/shardnet

mkdir -p "$work"
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$work"' EXIT; fi
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "{\"host_load_avg\": \"$(load)\", \"uptime\": \"$(uptime | sed 's/^ *//')\", \"nproc\": $(nproc), \"work\": \"$work\", \"df_avail\": \"$(df -h --output=avail "$work" | tail -1 | tr -d ' ')\"}"

# ---- datasets
gen_raw() { # path rows
  [ -f "$1" ] && return 0
  "$py" - "$1" "$2" "$raw_hw" <<'EOF'
import sys, h5py, numpy as np
path, n, hw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
row = hw * hw * 3
k = max(1, min(4096, (1 << 20) // row, n))   # convert's auto_chunk: about 1 MiB per chunk
rng = np.random.default_rng(1)
with h5py.File(path + ".partial", "w") as f:
    d = f.create_dataset("images", (n, hw, hw, 3), np.uint8, chunks=(k, hw, hw, 3))
    step = k * 100
    for b in range(0, n, step):
        e = min(n, b + step)
        d[b:e] = rng.integers(0, 256, (e - b, hw, hw, 3), dtype=np.uint8)
    f.create_dataset("labels", data=rng.integers(0, 10, n, dtype=np.int32))
    f.create_dataset("classes", data=np.array([b"class%d" % i for i in range(10)], dtype="S8"))
import os; os.rename(path + ".partial", path)
EOF
}
t=$(date +%s.%N)
gen_raw "$work/raw.h5" "$raw_n"
gen_raw "$work/raw_infer.h5" "$infer_raw_n"
if [ ! -f "$work/jpeg.h5" ]; then
  "$py" - "$work/jpg" "$jpeg_n" <<'EOF'
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
  "$sn" convert folder --root "$work/jpg" --out "$work/jpeg.h5" --encoded --quiet
  jpg_bytes=$(du -sb "$work/jpg" | cut -f1)
  rm -rf "$work/jpg"
  echo "{\"jpeg_files\": $jpeg_n, \"jpeg_bytes\": $jpg_bytes, \"mean_jpeg_bytes\": $((jpg_bytes / jpeg_n))}"
fi
echo "{\"generated_s\": $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t }"), \"raw_h5_bytes\": $(stat -c %s "$work/raw.h5"), \"raw_infer_h5_bytes\": $(stat -c %s "$work/raw_infer.h5"), \"jpeg_h5_bytes\": $(stat -c %s "$work/jpeg.h5")}"

# Per-field medians of FILE's JSON lines (numbers; other fields from the first run), with the
# fastest and slowest run's seconds, tagged with the case and the current load average.
median() { # case file
  "$py" - "$1" "$2" "$(load)" <<'EOF'
import sys, json, statistics
case, path, load = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.loads(l) for l in open(path) if l.startswith("{")]
out = {"case": case, "median_of": len(runs), "host_load_avg": load,
       "seconds_min_max": [min(r["seconds"] for r in runs), max(r["seconds"] for r in runs)]}
for k, v in runs[0].items():
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    out[k] = statistics.median(r[k] for r in runs) if num else v
print(json.dumps(out))
EOF
}

# ---- reader throughput (io_bench: one reader thread, the consumer only checks the batches)
if [ "${READ:-1}" = 1 ]; then
  export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
  rd() { # case args...
    local c=$1 f="$work/$1.jsonl"
    shift
    : >"$f"
    for _ in $(seq "$reps"); do "$build/io_bench" "$@" | tee -a "$f"; done
    median "$c" "$f"
  }
  rd raw_seq --data "$work/raw.h5" --order seq
  rd raw_shuffle --data "$work/raw.h5" --order shuffle
  rd raw_seq_cold --data "$work/raw.h5" --order seq --evict
  rd raw_shuffle_cold --data "$work/raw.h5" --order shuffle --evict --limit "$cold_shuffle_n"
  rd jpeg_seq --data "$work/jpeg.h5" --order seq
  rd jpeg_shuffle --data "$work/jpeg.h5" --order shuffle
  unset OMP_NUM_THREADS OMP_WAIT_POLICY
fi

# ---- infer: does the forward pass wait for the reader?
if [ "${INFER:-1}" = 1 ]; then
  inf() { # case data arch...
    local c=$1 data=$2 f="$work/$1.jsonl"
    shift 2
    : >"$f"
    for _ in $(seq "$reps"); do
      rm -f "$work/out.h5"
      line=$(/usr/bin/time -f '%M' -o "$work/rss" "$sn" infer --arch "$@" --data "$data" \
        --out "$work/out.h5" --threads "$threads" --metrics "$work/m.jsonl" 2>/dev/null | tail -1)
      m=$(tail -1 "$work/m.jsonl")
      wait_pct=$(echo "$line" | sed -n 's/.*waiting for data \([0-9.]*\)%.*/\1/p')
      echo "${m%\}}, \"waiting_for_data_pct\": ${wait_pct:-null}, \"peak_rss_mb\": $(($(cat "$work/rss") / 1024)), \"arch\": \"$*\"}" | tee -a "$f"
    done
    median "$c" "$f"
  }
  inf infer_raw "$work/raw_infer.h5" $raw_arch
  IFS=';' read -ra archs <<<"$jpeg_archs"
  for a in "${archs[@]}"; do
    inf "infer_jpeg_$(echo "$a" | sed 's/ --width /_w/; s/[^a-z0-9_]/_/g')" "$work/jpeg.h5" $a
  done
fi
echo "{\"host_load_avg_end\": \"$(load)\", \"uptime\": \"$(uptime | sed 's/^ *//')\"}"
