# common.sh - sourced by the experiment scripts: installs and builds like jobs/demo.sh, converts
# Fashion-MNIST once into $out, and sets sn, mpirun and threads for 2 ranks. With SN_CLI set to a
# built shardnet program, the set-up and build are skipped and that program is used (the tests).
exp_setup() {
  local out=$1
  mkdir -p "$out"
  if [[ -n ${SN_CLI:-} ]]; then
    sn=$SN_CLI
  else
    "$here/jobs/setup.sh" "${SN_BUILD_DIR:-$here/build}" shardnet_cli >/dev/null
    sn="${SN_BUILD_DIR:-$here/build}/shardnet"
  fi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE
  local cores ranks=2
  cores=$(nproc)
  threads=$((cores / ranks))
  ((threads < 1)) && threads=1
  mpirun=(mpirun --oversubscribe -q -np "$ranks")
  ((ranks * threads <= cores)) && mpirun+=(--map-by "slot:PE=$threads")
  local fm=/usr/share/datasets/fashion-mnist
  [[ -f "$out/fashion_train.h5" ]] ||
    "$sn" convert idx --images $fm/train-images-idx3-ubyte.gz --labels $fm/train-labels-idx1-ubyte.gz \
      --out "$out/fashion_train.h5" --fashion --quiet
  [[ -f "$out/fashion_test.h5" ]] ||
    "$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
      --out "$out/fashion_test.h5" --fashion --quiet
}

# exp_subset IN OUT N: the first N rows of a converted dataset (for --quick runs).
exp_subset() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import sys, h5py
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(src, "r") as a, h5py.File(dst, "w") as b:
    for k in a.keys():
        d = a[k]
        b.create_dataset(k, data=d[:n] if d.shape and d.shape[0] == a["images"].shape[0] else d[()])
    for k, v in a.attrs.items():
        b.attrs[k] = v
PY
}
