#!/usr/bin/env bash
# infer_pretrained.sh - ImageNet predictions with pretrained Keras or torchvision weights, with
# mpirun (one node, or several through a hostfile). Without Slurm;
# jobs/slurm/infer_pretrained.sbatch is the same job for Slurm.
#
#   1. weights: a Keras release .h5 is used as it is; a torchvision .pth is converted once with
#      jobs/convert_torch_weights.py (needs a Python with torch, torchvision and h5py);
#   2. images: an HDF5 dataset (DATA), or an ImageNet-style folder (IMAGE_ROOT) converted by all
#      ranks to the encoded form (JPEG bytes). infer then fits each image as the weights'
#      framework does (torchvision: Resize 256 + CenterCrop 224, bilinear; Keras: straight
#      224x224 resize, nearest) and preprocesses it (torch / caffe / tf) by itself;
#   3. shardnet infer: top-5 predictions and logits, rows in dataset order, in one file written
#      by all ranks; the first rows' predictions are printed with class names.
#
# Usage: edit the settings below, or override them from the environment:
#   ARCH=keras_resnet50 WEIGHTS=/w/resnet50_weights_tf_dim_ordering_tf_kernels.h5 \
#     IMAGE_ROOT=/data/photos OUT_DIR=/scratch/preds RANKS=4 THREADS=8 \
#     jobs/mpirun/infer_pretrained.sh
#   ARCH=resnet50 WEIGHTS=/w/resnet50-0676ba61.pth DATA=/data/val224.h5 ... (torchvision)
# Weight files and URLs: docs/weights.md. RANKS x THREADS must not exceed a node's cores.
# Re-running is safe: an incomplete output is resumed, a complete one is left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# ---------------------------------------------------------------- settings
SHARDNET="${SHARDNET:-}"         # default: this checkout's build/shardnet, else the installed
for c in "$here/../../build/shardnet" "$here/../../../bin/shardnet" shardnet; do # one, or PATH's
  if [[ -z "$SHARDNET" ]]; then SHARDNET="$(command -v "$c" || true)"; fi
done
: "${SHARDNET:?no shardnet program found: set SHARDNET}"
ARCH="${ARCH:-keras_resnet50}"   # keras_resnet50/101/152[v2] or resnet18/34/50/101/152
WEIGHTS="${WEIGHTS:-$PWD/resnet50_weights_tf_dim_ordering_tf_kernels.h5}" # .h5 or torchvision .pth
DATA="${DATA:-}"                 # an HDF5 dataset; empty: convert IMAGE_ROOT
IMAGE_ROOT="${IMAGE_ROOT:-/data/imagenet/val}"
OUT_DIR="${OUT_DIR:-$PWD/predictions}"
TOP_K="${TOP_K:-5}"
PRINT="${PRINT:-5}"              # rows whose predictions are printed
BATCH="${BATCH:-32}"             # images per forward pass per rank
PYTHON="${PYTHON:-/usr/bin/python3}" # for a .pth: a Python with torch, torchvision, h5py
LABELS_DIR="${LABELS_DIR:-$here/../data}"    # imagenet_labels[_keras].txt; empty: no names
RANKS="${RANKS:-2}"              # MPI ranks in total
RANKS_PER_NODE="${RANKS_PER_NODE:-$RANKS}"
THREADS="${THREADS:-1}"          # threads per rank
HOSTFILE="${HOSTFILE:-}"         # empty: this node only
MPIIO="${MPIIO:-default}"        # default|romio|ompio (docs/troubleshooting.md 6)
MODEL_ARGS="${MODEL_ARGS:-}"     # extra model flags, e.g. "--classes 10" for fine-tuned weights

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

# ---------------------------------------------------------------- 1. weights
weights="$WEIGHTS"
if [[ "$WEIGHTS" == *.pth ]]; then
  weights="$OUT_DIR/$(basename "${WEIGHTS%.pth}").h5"
  if [[ ! -f "$weights" ]]; then
    "$PYTHON" "$here/../convert_torch_weights.py" --pth "$WEIGHTS" --out "$weights" --check \
      --shardnet "$SHARDNET" --threads "$THREADS"
  fi
fi
if [[ "$ARCH" == keras_* ]]; then
  md5="$(md5sum <"$weights" | cut -d' ' -f1)"
  echo "weights $weights: MD5 $md5 (Keras release table: docs/weights.md)"
fi

# ---------------------------------------------------------------- 2. images
data="$DATA"
if [[ -z "$data" ]]; then
  data="$OUT_DIR/images_encoded.h5"
  if [[ ! -f "$data" ]]; then
    "${mpi[@]}" "$SHARDNET" convert folder --root "$IMAGE_ROOT" --out "$data" --encoded --quiet
  fi
fi

# ---------------------------------------------------------------- 3. inference
out="$OUT_DIR/predictions.h5"
if command -v h5dump >/dev/null && h5dump -a complete "$out" 2>/dev/null | grep -q '(0): 1'; then
  echo "output $out is complete; nothing to do"
  exit 0
fi
labels=()
# ImageNet names fit ImageNet's 1000 classes only: none for a model given another --classes
if [[ -n "$LABELS_DIR" && " $MODEL_ARGS " != *" --classes "* ]]; then
  if [[ "$ARCH" == keras_* ]]; then f="$LABELS_DIR/imagenet_labels_keras.txt"
  else f="$LABELS_DIR/imagenet_labels.txt"; fi
  if [[ -f "$f" ]]; then labels=(--labels "$f" --print "$PRINT"); fi
fi
read -ra extra <<<"$MODEL_ARGS"
"${mpi[@]}" "$SHARDNET" infer --arch "$ARCH" ${extra[@]+"${extra[@]}"} --weights "$weights" \
  --data "$data" --out "$out" --top-k "$TOP_K" --logits --batch "$BATCH" --threads "$THREADS" \
  --resume --metrics "$OUT_DIR/infer_metrics.jsonl" ${labels[@]+"${labels[@]}"}
echo "predictions: $out (/predictions/top_k_indices, /predictions/top_k_scores, /logits)"
