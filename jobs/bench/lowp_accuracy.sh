#!/usr/bin/env bash
# lowp_accuracy.sh - test accuracy of bf16 and int8 inference against float32 on real data: trains
# a model on Fashion-MNIST with the jobs/demo.sh recipe (or takes --weights), calibrates int8
# scales on --rows training images, runs `infer` on the 10,000 test images in fp32, bf16 and int8
# (each also with SN_FP32_LAYERS=0, every layer in low precision) and prints accuracy, top-1
# agreement with fp32, the logits' relative L2 error and the features' cosine similarity.
# --train/--test/--input take another model's data instead (e.g. jobs/imagenet_subset_demo.sh's
# encoded train.h5 and test.h5 at 64x64x3, with its --weights); calibrate --report writes the
# per-layer errors to DIR/layers.csv.
# Usage: lowp_accuracy.sh [--arch resnet20] [--epochs 4] [--weights W.h5] [--rows 512]
#                         [--train T.h5 --test V.h5 --input HxWxC --classes N]
#                         [--build build] [--dir /tmp/sn_lowp_acc]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
arch=resnet20 epochs=4 weights="" rows=512 build="$here/build" dir=/tmp/sn_lowp_acc
train="" test="" input=28x28x1 classes=10
while [[ $# -gt 0 ]]; do
  case "$1" in
  --arch) arch="$2" ;; --epochs) epochs="$2" ;; --weights) weights="$2" ;; --rows) rows="$2" ;;
  --build) build="$2" ;; --dir) dir="$2" ;;
  --train) train="$2" ;; --test) test="$2" ;; --input) input="$2" ;; --classes) classes="$2" ;;
  *) echo "lowp_accuracy.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
sn="$build/shardnet"
mkdir -p "$dir"
export HDF5_USE_FILE_LOCKING=FALSE
fm=/usr/share/datasets/fashion-mnist
if [[ -z "$train" ]]; then
  for s in train t10k; do
    [[ -f "$dir/$s.h5" ]] || "$sn" convert idx --images $fm/$s-images-idx3-ubyte.gz \
      --labels $fm/$s-labels-idx1-ubyte.gz --out "$dir/$s.h5" --fashion --quiet
  done
  train="$dir/train.h5" test="$dir/t10k.h5"
fi
model=(--arch "$arch" --input "$input" --classes "$classes")
if [[ -z "$weights" ]]; then
  weights="$dir/${arch}_e$epochs.h5"
  [[ -f "$weights" ]] || "$sn" train "${model[@]}" --data "$train" --epochs "$epochs" \
    --batch 128 --lr 0.1 --momentum 0.9 --nesterov --weight-decay 5e-4 --schedule cosine \
    --augment flip --quiet --out "$weights"
fi
model+=(--weights "$weights")
"$sn" calibrate "${model[@]}" --data "$train" --rows "$rows" --out "$dir/scales.h5" --force \
  --report "$dir/layers.csv"
outs=()
for p in fp32 bf16 int8; do
  for keep in 3 0; do
    [[ $p == fp32 && $keep == 0 ]] && continue
    sc=()
    [[ $p == int8 ]] && sc=(--scales "$dir/scales.h5")
    o="$dir/out_${p}_keep$keep.h5"
    SN_FP32_LAYERS=$keep "$sn" infer "${model[@]}" --data "$test" --precision $p "${sc[@]}" \
      --out "$o" --force --batch 100 --top-k 1 --logits --features --quiet
    outs+=("$o")
  done
done
echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-); $arch, weights $weights, scales from $rows training rows"
/usr/bin/python3 - "$test" "${outs[@]}" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as f:
    y = f["labels"][:]
def load(p):
    with h5py.File(p) as f:
        return f["logits"][:], f["features"][:]
L0, F0 = load(sys.argv[2])
print("%-22s %8s %9s %12s %12s %12s" % ("run", "acc %", "vs fp32", "top-1 agree", "logits relL2", "cos min"))
for p in sys.argv[2:]:
    L, F = load(p)
    cos = (F * F0).sum(1) / np.linalg.norm(F, axis=1) / np.linalg.norm(F0, axis=1)
    acc, acc0 = (L.argmax(1) == y).mean() * 100, (L0.argmax(1) == y).mean() * 100
    print("%-22s %8.2f %+9.2f %11.2f%% %12.3e %12.6f" % (p.rsplit("/", 1)[1][4:-3], acc, acc - acc0,
          100 * (L.argmax(1) == L0.argmax(1)).mean(), np.linalg.norm(L - L0) / np.linalg.norm(L0), cos.min()))
PY
