#!/usr/bin/env bash
# folder_bench.sh SHARDNET [N] [ROUNDS] - shardnet's one-command folder inference against what a
# user would write instead (folder_peer.py: torchvision ImageFolder-style loading,
# DataLoader(num_workers=2), resnet50 eval), on the same folder of N JPEGs (500x375, quality 90)
# of which 3 are corrupt (truncated, empty, not an image), both on 2 cores:
#   top3      shardnet infer --data FOLDER --top-k 3 --bad-images skip (1 rank, 2 threads)
#             vs folder_peer.py FOLDER top3 (torch 2 threads, 2 loader workers)
#   features  mpirun -np 2 shardnet infer --no-top --data FOLDER --bad-images skip (1 thread each)
#             vs folder_peer.py FOLDER features OUT.h5
# Wall time of each whole command (start-up, weights, decode, compute, output), configurations
# alternated ROUNDS times; prints images/s median [quartiles] and the ratio of the medians.
set -eu
sn=$(realpath "$1"); n=${2:-1000}; rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/snfolder.XXXXXX)
trap 'rm -rf "$t"' EXIT
cd "$t"
/usr/bin/python3 - "$n" <<'PY'
import os, sys, numpy as np
from PIL import Image
n = int(sys.argv[1]); os.makedirs("photos")
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:375, 0:500]
for i in range(n):
    a = np.stack([(xx * (1 + i % 3) + yy) % 256, (yy * 2 + i * 7) % 256, (xx + 3 * yy) % 256], -1)
    a = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save("photos/%05d.jpg" % i, quality=90)
open("photos/00001.jpg", "r+b").truncate(2000)
open("photos/00002.jpg", "wb").close()
open("photos/00003.jpg", "wb").write(b"not an image\n")
PY
now() { date +%s.%N; }
for r in $(seq "$rounds"); do
  b=$(now); "$sn" infer --arch resnet50 --data photos --out top3.h5 --force --quiet --threads 2 \
    --batch 16 --top-k 3 --bad-images skip; e=$(now)
  echo "shardnet top3 $b $e" >>times.txt
  b=$(now); OMP_NUM_THREADS=2 /usr/bin/python3 "$here/folder_peer.py" photos top3 >peer.json; e=$(now)
  echo "torch top3 $b $e" >>times.txt
  b=$(now); $mpirun -np 2 "$sn" infer --arch resnet50 --no-top --data photos --out feat.h5 --force \
    --quiet --threads 1 --batch 16 --bad-images skip; e=$(now)
  echo "shardnet features $b $e" >>times.txt
  b=$(now); OMP_NUM_THREADS=2 /usr/bin/python3 "$here/folder_peer.py" photos features pf.h5 >peer.json; e=$(now)
  echo "torch features $b $e" >>times.txt
done
/usr/bin/python3 - "$n" <<'PY'
import sys, numpy as np
images = int(sys.argv[1]) - 3
runs = {}
for line in open("times.txt"):
    who, mode, b, e = line.split()
    runs.setdefault((who, mode), []).append(images / (float(e) - float(b)))
q = lambda a: "%.1f [%.1f, %.1f]" % (np.median(a), np.percentile(a, 25), np.percentile(a, 75))
print("images: %d good + 3 bad, 500x375 JPEG q90; wall time of each command" % images)
for mode in ("top3", "features"):
    s, p = runs[("shardnet", mode)], runs[("torch", mode)]
    print("%-8s shardnet %s img/s   torch %s img/s   ratio %.2f" % (mode, q(s), q(p), np.median(s) / np.median(p)))
PY
