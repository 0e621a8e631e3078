#!/usr/bin/env bash
# decode_bench.sh SHARDNET [N] [ROUNDS] - does decoding keep up with the engine? Makes N photo-sized
# JPEGs (500x375, quality 90), as a folder and as an encoded dataset, and runs `shardnet infer`
# for resnet18 and resnet50 with 1 and 2 decoding threads (--threads 2), alternating, ROUNDS
# times. Prints one line per configuration: median and quartiles of images/s and of the share of
# the time spent waiting for data (--metrics: data_wait_s / seconds).
set -eu
sn=$(realpath "$1"); n=${2:-64}; rounds=${3:-3}
t=$(mktemp -d /tmp/sndecode.XXXXXX)
trap 'rm -rf "$t"' EXIT
cd "$t"
/usr/bin/python3 - "$n" <<'PY'
import os, sys, numpy as np
from PIL import Image
n = int(sys.argv[1]); os.makedirs("photos")
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:375, 0:500]
for i in range(n):  # smooth content with some texture: sizes like a photo's (about 60-100 KB)
    a = np.stack([(xx * (1 + i % 3) + yy) % 256, (yy * 2 + i * 7) % 256, (xx + 3 * yy) % 256], -1)
    a = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save("photos/%04d.jpg" % i, quality=90)
PY
"$sn" convert folder --root photos --labels-from none --encoded --out photos.h5 --quiet
for r in $(seq "$rounds"); do
  for arch in resnet18 resnet50; do
    for input in photos photos.h5; do
      for dt in 1 2; do
        "$sn" infer --arch "$arch" --data "$input" --out o.h5 --force --quiet --threads 2 \
          --decode-threads "$dt" --batch 16 --top-k 1 --metrics "m_${arch}_${input}_$dt.jsonl"
      done
    done
  done
done
/usr/bin/python3 - <<'PY'
import glob, json, numpy as np
print("%-9s %-10s %-7s %-22s %-22s" % ("arch", "input", "decode", "images/s med [q1, q3]", "waiting % med [q1, q3]"))
for p in sorted(glob.glob("m_*.jsonl")):
    _, arch, inp, dt = p[:-6].split("_", 3)
    rows = [json.loads(l) for l in open(p)]
    ips = np.array([r["images_per_s"] for r in rows])
    wait = np.array([100 * r["data_wait_s"] / r["seconds"] for r in rows])
    q = lambda a: "%.1f [%.1f, %.1f]" % (np.median(a), np.percentile(a, 25), np.percentile(a, 75))
    print("%-9s %-10s %-7s %-22s %-22s" % (arch, "folder" if inp == "photos" else "encoded h5", dt, q(ips), q(wait)))
PY
