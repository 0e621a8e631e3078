#!/usr/bin/env bash
# imagenet_subset_demo.sh - the ImageNet-subset path end to end on real pictures, on 2 MPI ranks
# (no ImageNet here: Fashion-MNIST written out as JPEG files the way an ImageNet subset looks).
#   1. builds shardnet (jobs/setup.sh installs what is missing);
#   2. writes Fashion-MNIST's 60000 training and 10000 test images as JPEG files (quality 90) in
#      one folder per class, each at its own size and aspect ratio (sides 56..160 px);
#   3. converts both folders to encoded HDF5 (`convert folder --encoded`, the files' own bytes);
#   4. trains resnet18 at 64x64 on 2 ranks with RandomResizedCrop taken from the original
#      pictures at decode (each crop at least 35% of the picture's area: the pictures carry only
#      28x28 pixels of detail), flip, torch preprocessing; evaluates every epoch on the test set
#      decoded by resize-73 / centre-crop-64 (torchvision's 256/224 scaled to 64); passes when
#      the test accuracy reaches 90%;
#   5. the preemption drill: a short run is stopped with SIGTERM in the middle of an epoch
#      (exit 75 after a checkpoint), resumed with --resume, and its final weights must equal
#      those of the same run left alone, bit for bit.
# Settings (environment): SN_IN_OUT (default ./imagenet-subset-out), SN_IN_EPOCHS (8),
# SN_IN_RANKS (2), SN_IN_BATCH (128), SN_IN_LR (0.1), SN_IN_CROP_SCALE (0.35), SN_IN_TRAIN_N (60000: use the first N
# training images), SN_IN_DRILL (1; 0 skips step 5), SN_IN_KEEP_JPEG (0: the JPEG folders are
# deleted once converted).
# Run time and results: docs/performance.md, "ImageNet-subset path".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${SN_IN_OUT:-$PWD/imagenet-subset-out}"
epochs="${SN_IN_EPOCHS:-8}"
ranks="${SN_IN_RANKS:-2}"
batch="${SN_IN_BATCH:-128}"
lr="${SN_IN_LR:-0.1}"
crop_scale="${SN_IN_CROP_SCALE:-0.35}"
train_n="${SN_IN_TRAIN_N:-60000}"
t_start=$(date +%s)

echo "== 1/5 install and build"
SN_SETUP_EXTRA="python3-pil ${SN_SETUP_EXTRA:-}" "$here/jobs/setup.sh" "$here/build" shardnet_cli >/dev/null
sn="$here/build/shardnet"
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE
cores=$(nproc)
threads=$((cores / ranks))
((threads < 1)) && threads=1
mpirun=(mpirun --oversubscribe -q -np "$ranks")
((ranks * threads <= cores)) && mpirun+=(--map-by "slot:PE=$threads")
echo "   built $("$sn" --version); $ranks ranks x $threads threads on $cores cores"

echo "== 2/5 Fashion-MNIST as JPEG files in class folders, sides 56..160 px"
t0=$(date +%s)
rm -rf "$out/jpeg"
/usr/bin/python3 - "$out/jpeg" "$train_n" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
root, train_n = sys.argv[1], int(sys.argv[2])
fm = "/usr/share/datasets/fashion-mnist"
names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
         "ankle-boot"]
def idx(path, off):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=off)
rng = np.random.default_rng(2024)
for split, n_max in (("train", train_n), ("t10k", 10000)):
    x = idx(f"{fm}/{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:n_max]
    y = idx(f"{fm}/{split}-labels-idx1-ubyte.gz", 8)[:n_max]
    d = os.path.join(root, "train" if split == "train" else "test")
    for c in names:
        os.makedirs(os.path.join(d, c), exist_ok=True)
    for i, (img, lab) in enumerate(zip(x, y)):
        h = int(rng.integers(56, 161))
        w = int(np.clip(round(h * np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))), 56, 160))
        Image.fromarray(img).resize((w, h), Image.BICUBIC).save(
            os.path.join(d, names[lab], f"{i:05d}.jpg"), quality=90)
    print(f"   {len(y)} {'training' if split == 'train' else 'test'} pictures in {d}")
PY
du -sh "$out/jpeg" | sed 's/^/   on disk: /'
t_jpeg=$(($(date +%s) - t0))

echo "== 3/5 folders -> encoded HDF5 on $ranks ranks"
t0=$(date +%s)
for s in train test; do
  "${mpirun[@]}" "$sn" convert folder --root "$out/jpeg/$s" --out "$out/$s.h5" --encoded --size 64x64 \
    --force --quiet
done
[[ "${SN_IN_KEEP_JPEG:-0}" == 1 ]] || rm -rf "$out/jpeg"
ls -l "$out/train.h5" "$out/test.h5" | awk '{print "   " $NF ": " $5 " bytes"}'
t_convert=$(($(date +%s) - t0))

echo "== 4/5 train resnet18 at 64x64 on $ranks ranks, RandomResizedCrop at decode, $epochs epochs"
common=(--arch resnet18 --input 64x64x3 --data "$out/train.h5" --batch "$batch" --lr "$lr"
  --momentum 0.9 --nesterov --weight-decay 5e-5 --schedule cosine --warmup 1
  --augment resized-crop --crop-scale "$crop_scale" --threads "$threads")
rm -f "$out/metrics.jsonl"
t0=$(date +%s)
"${mpirun[@]}" "$sn" train "${common[@]}" --epochs "$epochs" --val "$out/test.h5" \
  --metrics "$out/metrics.jsonl" --out "$out/resnet18_fashion64.h5"
t_train=$(($(date +%s) - t0))
acc=$(tail -1 "$out/metrics.jsonl" | sed -E 's/.*"val_acc": ([0-9.]+).*/\1/')
ok=$(awk "BEGIN { print ($acc >= 0.90) ? 1 : 0 }")

drill="skipped (SN_IN_DRILL=0)"
if [[ "${SN_IN_DRILL:-1}" == 1 ]]; then
  echo "== 5/5 preemption drill: SIGTERM mid-epoch, resume, compare with the run left alone"
  t0=$(date +%s)
  steps=40 # of the first epoch's $((train_n / batch)) steps
  short=("${common[@]}" --steps "$steps" --quiet)
  rm -f "$out/drill_"*
  "${mpirun[@]}" "$sn" train "${short[@]}" --out "$out/drill_straight.h5"
  stopped=("${short[@]}" --checkpoint "$out/drill_ck.h5" --checkpoint-every 5
    --out "$out/drill_resumed.h5")
  "${mpirun[@]}" "$sn" train "${stopped[@]}" &
  job=$!
  # the first mid-epoch checkpoint, then the scheduler's signal to every rank (as Slurm sends it)
  for _ in $(seq 600); do [[ -f "$out/drill_ck.h5" ]] && break; sleep 0.5; done
  sleep 2
  kill -TERM $(ps -o pid= --ppid "$job") 2>/dev/null || true
  rc=0
  wait "$job" || rc=$?
  "${mpirun[@]}" "$sn" train "${stopped[@]}" --resume # the same options, and --resume
  if [[ $rc -eq 75 ]] && h5diff "$out/drill_straight.h5" "$out/drill_resumed.h5" >/dev/null; then
    drill="passed: stopped with exit 75, resumed; final weights equal the uninterrupted run's"
  else
    drill="FAILED: exit $rc on SIGTERM (want 75); h5diff: $(h5diff "$out/drill_straight.h5" \
      "$out/drill_resumed.h5" 2>&1 | head -2 | tr '\n' ' ')"
    ok=0
  fi
  t_drill=$(($(date +%s) - t0))
  echo "   $drill (${t_drill} s)"
fi

total=$(($(date +%s) - t_start))
last=$(tail -1 "$out/metrics.jsonl")
field() { sed -E "s/.*\"$1\": ([0-9.e+-]+).*/\1/" <<<"$last"; }
cat <<REPORT

========================= shardnet ImageNet-subset demo report =========================
data        Fashion-MNIST as JPEG: $train_n training / 10000 test pictures, 56..160 px, quality 90
            ($t_jpeg s to write), encoded HDF5 in $t_convert s: $out/train.h5, $out/test.h5
model       resnet18 at 64x64, $epochs epochs on $ranks MPI ranks x $threads threads, sync BN,
            RandomResizedCrop of $crop_scale..1 of the area at decode
test top-1  $(awk "BEGIN{printf \"%.2f%%\", 100*$acc}") (resize 73, centre crop 64; goal 90%)
training    ${t_train} s, $(field images_per_s) images/s in the last epoch, waiting for data
            $(awk "BEGIN{printf \"%.2f%%\", 100*$(field data_wait_s)/$(field seconds)}") of that epoch (rank 0)
drill       $drill
weights     $out/resnet18_fashion64.h5; metrics $out/metrics.jsonl
total       ${total} s
========================================================================================
REPORT
[[ $ok == 1 ]] || { echo "imagenet_subset_demo: FAILED" >&2; exit 1; }
