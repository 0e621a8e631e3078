#!/usr/bin/env bash
# train_imagenet_subset.sh - data-parallel training of a ResNet on an ImageNet-style subset
# (e.g. 100 classes) with mpirun, on one node or several through a hostfile. Without Slurm;
# jobs/slurm/train_imagenet_subset.sbatch is the same job for Slurm.
#
#   1. shardnet convert folder (all ranks): TRAIN_ROOT and VAL_ROOT -> raw HDF5 datasets at
#      SIZE x SIZE (Resize(256/224*SIZE) + CenterCrop, bilinear). Raw: every image is decoded
#      and resized once, not in every epoch.
#   2. shardnet train: global batch BATCH split over the ranks, synchronized batch norm, gradient
#      all-reduce in buckets, crop-flip augmentation, cosine schedule with linear warm-up,
#      validation after every epoch, a checkpoint after every epoch and every
#      CHECKPOINT_MINUTES, final weights.
#
# The learning rate follows Goyal et al.: LR = BASE_LR x BATCH / 256 unless LR is set. BATCH is
# global, so changing RANKS changes neither the schedule nor the result's meaning.
#
# Usage: edit the settings below, or override them from the environment:
#   TRAIN_ROOT=/data/in100/train VAL_ROOT=/data/in100/val OUT_DIR=/scratch/in100 \
#     ARCH=resnet50 RANKS=4 THREADS=8 EPOCHS=90 jobs/mpirun/train_imagenet_subset.sh
# RANKS x THREADS must not exceed the cores of a node (RANKS_PER_NODE x THREADS with HOSTFILE).
# Re-running continues from the last checkpoint ($OUT_DIR/checkpoint.h5), also on another rank
# count (the global batch is kept).
#
# Stopping: SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 to this script during training becomes SIGUSR1 to
# mpirun, which forwards it to every rank: they finish their step, write the checkpoint and exit
# 75 (so does this script); run it again to continue. mpirun runs in its own process group (setsid) because
# a SIGTERM or SIGINT sent to mpirun itself makes Open MPI kill the ranks about a second later,
# which may be too soon for the checkpoint (docs/checkpoints.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---------------------------------------------------------------- settings
SHARDNET="${SHARDNET:-}"         # default: this checkout's build/shardnet, else the installed
for c in "$here/../../build/shardnet" "$here/../../../bin/shardnet" shardnet; do # one, or PATH's
  if [[ -z "$SHARDNET" ]]; then SHARDNET="$(command -v "$c" || true)"; fi
done
: "${SHARDNET:?no shardnet program found: set SHARDNET}"
TRAIN_ROOT="${TRAIN_ROOT:-/data/imagenet100/train}" # one sub-folder per class
VAL_ROOT="${VAL_ROOT-/data/imagenet100/val}"        # same class folders; empty: no validation
OUT_DIR="${OUT_DIR:-$PWD/train_run}"
ARCH="${ARCH:-resnet50}"         # resnet18..152 (torch conventions) or keras_resnet50...
SIZE="${SIZE:-224}"              # training resolution (smaller is much faster: 112, 128, 160)
EPOCHS="${EPOCHS:-90}"
BATCH="${BATCH:-256}"            # global batch
BASE_LR="${BASE_LR:-0.1}"        # per 256 images
LR="${LR:-}"                     # empty: BASE_LR x BATCH / 256
WARMUP="${WARMUP:-5}"            # epochs of linear warm-up
WEIGHT_DECAY="${WEIGHT_DECAY:-1e-4}"
LABEL_SMOOTHING="${LABEL_SMOOTHING:-0.1}"
CHECKPOINT_MINUTES="${CHECKPOINT_MINUTES:-30}" # also checkpoint every M minutes (node failures)
INIT="${INIT:-}"                 # optional initial weights (same --classes as the subset)
TRAIN_ARGS="${TRAIN_ARGS:-}"     # extra train flags, e.g. "--bn local --bucket-mb 50"
RANKS="${RANKS:-2}"              # MPI ranks in total
RANKS_PER_NODE="${RANKS_PER_NODE:-$RANKS}"
THREADS="${THREADS:-1}"          # threads per rank
HOSTFILE="${HOSTFILE:-}"         # empty: this node only
MPIIO="${MPIIO:-default}"        # default|romio|ompio (docs/troubleshooting.md 6)

# ---------------------------------------------------------------- environment
export OMP_NUM_THREADS="$THREADS"      # shardnet itself follows --threads; other tools follow this
export OMP_WAIT_POLICY=passive         # idle OpenMP threads sleep (ranks share nodes with MPI)
export OMP_PROC_BIND=close OMP_PLACES=cores
export HDF5_USE_FILE_LOCKING=FALSE     # NFS/Lustre/GPFS without flock (errno 524)

mpi=(mpirun -np "$RANKS" --map-by "ppr:$RANKS_PER_NODE:node:PE=$THREADS" --bind-to core)
mpi+=(-x OMP_NUM_THREADS -x OMP_WAIT_POLICY -x OMP_PROC_BIND -x OMP_PLACES -x HDF5_USE_FILE_LOCKING)
if [[ -n "$HOSTFILE" ]]; then mpi+=(--hostfile "$HOSTFILE"); fi
if [[ "$(id -u)" -eq 0 ]]; then mpi+=(--allow-run-as-root); fi # containers only
case "$MPIIO" in
  romio) mpi+=(--mca io romio321) ;;
  ompio) mpi+=(--mca io ompio) ;;
  default) ;;
  *) echo "MPIIO must be default, romio or ompio" >&2; exit 2 ;;
esac

mkdir -p "$OUT_DIR"
if [[ -z "$LR" ]]; then
  LR="$(awk -v b="$BASE_LR" -v n="$BATCH" 'BEGIN { printf "%g", b * n / 256 }')"
fi

# ---------------------------------------------------------------- 1. folders -> datasets
convert() { # convert ROOT OUT
  if [[ -f "$2" ]]; then
    echo "dataset $2 exists; reusing it"
    return
  fi
  local fit=(--resize bilinear --resize-shorter "$(((SIZE * 256 + 112) / 224))")
  if [[ "$ARCH" == keras_* ]]; then fit=(--resize nearest); fi
  "${mpi[@]}" "$SHARDNET" convert folder --root "$1" --out "$2" --size "${SIZE}x${SIZE}" \
    "${fit[@]}" --quiet
}
convert "$TRAIN_ROOT" "$OUT_DIR/train_${SIZE}.h5"
val=()
if [[ -n "$VAL_ROOT" ]]; then
  convert "$VAL_ROOT" "$OUT_DIR/val_${SIZE}.h5"
  val=(--val "$OUT_DIR/val_${SIZE}.h5")
fi

# ---------------------------------------------------------------- 2. train
read -ra extra <<<"$TRAIN_ARGS"
init=()
if [[ -n "$INIT" ]]; then init=(--init "$INIT"); fi
echo "training $ARCH on $RANKS rank(s) x $THREADS thread(s): global batch $BATCH, lr $LR"
signals=0 train_pid=""
forward_stop() { # SIGUSR1 to mpirun, which forwards it to every rank
  signals=$((signals + 1))
  if [[ -n "$train_pid" ]]; then kill -USR1 "$train_pid" 2>/dev/null || true; fi
}
trap forward_stop TERM INT USR1
setsid "${mpi[@]}" "$SHARDNET" train --arch "$ARCH" --data "$OUT_DIR/train_${SIZE}.h5" \
  ${val[@]+"${val[@]}"} --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --warmup "$WARMUP" \
  --schedule cosine --weight-decay "$WEIGHT_DECAY" --no-decay-bn-bias \
  --label-smoothing "$LABEL_SMOOTHING" --augment crop-flip --bn sync --threads "$THREADS" \
  ${init[@]+"${init[@]}"} \
  --checkpoint "$OUT_DIR/checkpoint.h5" --checkpoint-minutes "$CHECKPOINT_MINUTES" --resume \
  --metrics "$OUT_DIR/metrics.jsonl" --out "$OUT_DIR/${ARCH}_final.h5" \
  ${extra[@]+"${extra[@]}"} </dev/null &
train_pid=$!
while :; do
  n=$signals
  rc=0
  wait "$train_pid" || rc=$?
  if [[ "$n" == "$signals" ]]; then break; fi # not the trap interrupting the wait
done
if ((rc == 75)); then
  echo "stopped: run $0 again to continue from $OUT_DIR/checkpoint.h5"
fi
if ((rc != 0)); then exit "$rc"; fi
echo "weights: $OUT_DIR/${ARCH}_final.h5; per-epoch metrics: $OUT_DIR/metrics.jsonl"
