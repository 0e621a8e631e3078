#!/usr/bin/env bash
# extract_features.sh - one feature vector per image of an ImageNet-style folder, with mpirun
# (one node, or several through a hostfile). Without Slurm; jobs/slurm/extract_features.sbatch
# is the same job for Slurm.
#
#   1. shardnet convert folder: IMAGE_ROOT/<class>/<file>.jpg -> $OUT_DIR/images.h5, converted by
#      all ranks (torchvision ImageFolder order: /labels, /classes and /filenames name each row);
#   2. shardnet infer --features: $OUT_DIR/features.h5 with /features (N, D) in dataset order
#      and /index; D = 2048 for ResNet-50/101/152, 512 for ResNet-18/34.
#
# Weights: a Keras "notop" release file with NO_TOP=1 (the model without classifier, pooled by
# POOLING), or any file with a classifier (torchvision HDF5 from jobs/convert_torch_weights.py,
# a Keras top file, a shardnet file) with NO_TOP=0: /features is then the pooled vector the
# classifier reads. See docs/weights.md.
#
# Usage: edit the settings below, or override them from the environment:
#   IMAGE_ROOT=/data/imagenet/val OUT_DIR=/scratch/feat ARCH=resnet50 WEIGHTS=/w/resnet50.h5 \
#     RANKS=4 THREADS=8 jobs/mpirun/extract_features.sh
# RANKS x THREADS must not exceed the cores of a node (RANKS_PER_NODE x THREADS with HOSTFILE).
# Re-running is safe: an existing dataset is reused, an incomplete output is resumed
# (only missing rows are computed), a complete one is left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---------------------------------------------------------------- settings
SHARDNET="${SHARDNET:-}"         # default: this checkout's build/shardnet, else the installed
for c in "$here/../../build/shardnet" "$here/../../../bin/shardnet" shardnet; do # one, or PATH's
  if [[ -z "$SHARDNET" ]]; then SHARDNET="$(command -v "$c" || true)"; fi
done
: "${SHARDNET:?no shardnet program found: set SHARDNET}"
IMAGE_ROOT="${IMAGE_ROOT:-/data/imagenet/val}" # one sub-folder per class
OUT_DIR="${OUT_DIR:-$PWD/features}"
ARCH="${ARCH:-resnet50}"                       # resnet18..152 or keras_resnet50[v2]...
WEIGHTS="${WEIGHTS:-$OUT_DIR/resnet50.h5}"     # see docs/weights.md
NO_TOP="${NO_TOP:-0}"                          # 1: weights without classifier (Keras *_notop.h5)
POOLING="${POOLING:-avg}"                      # with NO_TOP=1: avg|max|none
FEATURES_DTYPE="${FEATURES_DTYPE:-f16}"        # f16 halves the output; f32 for exact values
FORMAT="${FORMAT:-raw}"                        # raw: decode once, at conversion; encoded: JPEGs
SIZE="${SIZE:-224}"                            # model input HxW
BATCH="${BATCH:-64}"                           # images per forward pass per rank
RANKS="${RANKS:-2}"                            # MPI ranks in total
RANKS_PER_NODE="${RANKS_PER_NODE:-$RANKS}"
THREADS="${THREADS:-1}"                        # threads per rank
HOSTFILE="${HOSTFILE:-}"                       # empty: this node only
MPIIO="${MPIIO:-default}"                      # default|romio|ompio (docs/troubleshooting.md 6)
MODEL_ARGS="${MODEL_ARGS:-}"                   # extra model flags, e.g. "--classes 10 --width 32"

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
  romio)
    mpi+=(--mca io romio321)
    export ROMIO_HINTS="$OUT_DIR/romio_hints.txt" # collective buffering for the shared writes
    mpi+=(-x ROMIO_HINTS)
    ;;
  ompio) mpi+=(--mca io ompio) ;;
  default) ;;
  *) echo "MPIIO must be default, romio or ompio" >&2; exit 2 ;;
esac

mkdir -p "$OUT_DIR"
if [[ "$MPIIO" == romio ]]; then
  printf 'romio_cb_write enable\nromio_ds_write disable\ncb_buffer_size 16777216\n' >"$ROMIO_HINTS"
fi

# The fit of each image to SIZE follows the weights' framework (docs/models.md, "Preprocessing"): torchvision
# Resize(256/224*SIZE) + CenterCrop, bilinear; Keras straight resize, nearest.
if [[ "$ARCH" == keras_* ]]; then
  fit=(--resize nearest)
else
  fit=(--resize bilinear --resize-shorter "$(((SIZE * 256 + 112) / 224))")
fi

# ---------------------------------------------------------------- 1. folder -> dataset
data="$OUT_DIR/images.h5"
if [[ -f "$data" ]]; then
  echo "dataset $data exists; reusing it"
elif [[ "$FORMAT" == encoded ]]; then
  "${mpi[@]}" "$SHARDNET" convert folder --root "$IMAGE_ROOT" --out "$data" --encoded \
    --size "${SIZE}x${SIZE}" --quiet
else
  "${mpi[@]}" "$SHARDNET" convert folder --root "$IMAGE_ROOT" --out "$data" \
    --size "${SIZE}x${SIZE}" "${fit[@]}" --quiet
fi

# ---------------------------------------------------------------- 2. features
out="$OUT_DIR/features.h5"
if command -v h5dump >/dev/null && h5dump -a complete "$out" 2>/dev/null | grep -q '(0): 1'; then
  echo "output $out is complete; nothing to do"
  exit 0
fi
read -ra extra <<<"$MODEL_ARGS"
model=(--arch "$ARCH" --input "${SIZE}x${SIZE}x3" ${extra[@]+"${extra[@]}"})
if [[ "$NO_TOP" == 1 ]]; then
  model+=(--no-top --pooling "$POOLING")
else
  model+=(--features --top-k 0)
fi
"${mpi[@]}" "$SHARDNET" infer "${model[@]}" --weights "$WEIGHTS" --data "$data" --out "$out" \
  --features-dtype "$FEATURES_DTYPE" --batch "$BATCH" --threads "$THREADS" --resume \
  --metrics "$OUT_DIR/infer_metrics.jsonl"
echo "features: $out (/features, /index; names in $data:/filenames)"
