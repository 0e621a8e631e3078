#!/usr/bin/env bash
# degradation.sh - He et al. 2015's degradation experiment on real data: plain20, plain56,
# resnet20 and resnet56 trained on Fashion-MNIST with one recipe, on 2 MPI ranks; training and
# test error after every epoch; one PNG in the style of their Fig. 6 and a Markdown table.
#
# Usage: jobs/experiments/degradation.sh [--quick] [--epochs N] [--out DIR] [--archs "a b ..."]
#   --quick     3 steps per network on 256 training and 256 test rows (for the tests)
#   --epochs N  epochs per network (default 12)
#   --out DIR   results (default ./experiments-out/degradation): metrics-<arch>.jsonl,
#               degradation.png, degradation.md, times.txt
# Recipe (the same for every network): batch 128, SGD momentum 0.9, weight decay 1e-4, learning
# rate 0.1 with a cosine schedule, random 4-pixel translation + flip (He et al.'s CIFAR recipe
# with a cosine instead of a step schedule), synchronized batch norm, seed 1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
quick=0 epochs=12 out="$PWD/experiments-out/degradation" archs="plain20 plain56 resnet20 resnet56"
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --epochs) epochs=$2; shift ;;
    --out) out=$2; shift ;;
    --archs) archs=$2; shift ;;
    *) echo "degradation.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
source "$here/jobs/experiments/common.sh"
exp_setup "$out"

steps=()
train="$out/fashion_train.h5" test="$out/fashion_test.h5"
if ((quick)); then
  exp_subset "$out/fashion_train.h5" "$out/train_small.h5" 256
  exp_subset "$out/fashion_test.h5" "$out/test_small.h5" 256
  train="$out/train_small.h5" test="$out/test_small.h5"
  steps=(--steps 3)
fi
: >"$out/times.txt"
for arch in $archs; do
  rm -f "$out/metrics-$arch.jsonl"
  t0=$(date +%s)
  "${mpirun[@]}" "$sn" train --arch "$arch" --input 28x28x1 --data "$train" \
    --val "$test" --epochs "$epochs" "${steps[@]}" --batch 128 \
    --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --schedule cosine --augment crop-flip --bn sync \
    --seed 1 --threads "$threads" --metrics "$out/metrics-$arch.jsonl" --quiet
  echo "$arch $(($(date +%s) - t0))" >>"$out/times.txt"
  echo "   $arch: $(tail -1 "$out/metrics-$arch.jsonl")"
done
/usr/bin/python3 "$here/jobs/experiments/report.py" degradation "$out" $archs
echo "results: $out/degradation.md, $out/degradation.png"
