#!/usr/bin/env bash
# batchnorm.sh - Ioffe and Szegedy 2015's batch-normalization experiment on real data: the
# course's LeNet and LeNet-BN trained on Fashion-MNIST at several learning rates, on 2 MPI ranks;
# test accuracy every --every steps; one PNG in the style of their Fig. 1(a) and a Markdown table.
#
# Usage: jobs/experiments/batchnorm.sh [--quick] [--steps N] [--every N] [--lrs "a b ..."]
#                                      [--archs "a b ..."] [--out DIR]
#   --quick     20 steps, evaluated every 10, on 256 training and 256 test rows (for the tests)
#   --steps N   training steps per run (default 3000: 3.2 epochs at batch 64)
#   --every N   evaluate on the test set every N steps (default 100)
#   --lrs       learning rates (default "0.01 0.1 0.5")
#   --archs     networks (default "lenet lenet_bn")
#   --out DIR   results (default ./experiments-out/batchnorm): metrics-<arch>-lr<lr>.jsonl,
#               batchnorm.png, batchnorm.md, times.txt
# Recipe (the same for every run): batch 64, plain SGD (no momentum, no weight decay), constant
# learning rate, no augmentation, synchronized batch norm, seed 1. A run whose loss becomes
# non-finite stops there; the table says so.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
quick=0 steps=3000 every=100 lrs="0.01 0.1 0.5" archs="lenet lenet_bn"
out="$PWD/experiments-out/batchnorm"
while (($#)); do
  case $1 in
    --quick) quick=1 ;;
    --steps) steps=$2; shift ;;
    --every) every=$2; shift ;;
    --lrs) lrs=$2; shift ;;
    --archs) archs=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "batchnorm.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
source "$here/jobs/experiments/common.sh"
exp_setup "$out"

train="$out/fashion_train.h5" test="$out/fashion_test.h5"
if ((quick)); then
  exp_subset "$out/fashion_train.h5" "$out/train_small.h5" 256
  exp_subset "$out/fashion_test.h5" "$out/test_small.h5" 256
  train="$out/train_small.h5" test="$out/test_small.h5" steps=20 every=10
fi
: >"$out/times.txt"
runs=()
for arch in $archs; do
  for lr in $lrs; do
    run="$arch-lr$lr"
    runs+=("$run")
    rm -f "$out/metrics-$run.jsonl"
    t0=$(date +%s)
    status=0
    "${mpirun[@]}" "$sn" train --arch "$arch" --data "$train" --val "$test" --val-every "$every" \
      --steps "$steps" --batch 64 --lr "$lr" --momentum 0 --weight-decay 0 --schedule constant \
      --augment none --bn sync --seed 1 --threads "$threads" \
      --metrics "$out/metrics-$run.jsonl" --quiet 2>"$out/log-$run.txt" || status=$?
    echo "$run $(($(date +%s) - t0)) $status" >>"$out/times.txt"
    if ((status)); then
      grep -q -i "not finite\|non-finite\|nan" "$out/log-$run.txt" || {
        cat "$out/log-$run.txt" >&2
        exit "$status"
      }
      echo "   $run: diverged ($(head -1 "$out/log-$run.txt"))"
    else
      echo "   $run: $(tail -1 "$out/metrics-$run.jsonl")"
    fi
  done
done
/usr/bin/python3 "$here/jobs/experiments/report.py" batchnorm "$out" "${runs[@]}"
echo "results: $out/batchnorm.md, $out/batchnorm.png"
