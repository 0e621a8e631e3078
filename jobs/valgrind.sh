#!/usr/bin/env bash
# valgrind.sh - runs small shardnet jobs under valgrind memcheck (--leak-check=full): summary,
# convert (idx, and an encoded JPEG/PNG folder), train with a checkpoint, resume, infer (raw and
# encoded data, logits and features) and a few failing commands (their error paths must not leak
# or touch bad memory either). Any memcheck error or definite/indirect leak fails the script
# (exit 1); a subcommand that is not implemented yet is skipped with a notice.
#
# Usage: jobs/valgrind.sh [build-dir]   (default <repo>/build-valgrind: RelWithDebInfo, built here)
# Env: SN_VALGRIND_ARGS (extra valgrind options), SN_JOBS (build parallelism, default 2).
# Needs valgrind and /usr/bin/python3 with numpy, h5py and Pillow (tiny inputs are made here).
#
# Valgrind 3.19 does not decode AVX-512: it hides the feature from CPUID, so shardnet's runtime
# dispatch takes its AVX2/generic kernels, and OpenBLAS is pinned to its Haswell kernels.
# jobs/main.c restarts the program to fix OpenBLAS/OpenMP settings (execv /proc/self/exe, which
# under valgrind is valgrind's own tool binary): SN_NO_REEXEC=1 with the settings given here.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$here/build-valgrind}"
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed" >&2; exit 2; }
if [[ ! -x "$build/shardnet" || "${SN_VALGRIND_REBUILD:-1}" == 1 ]]; then
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null || exit 2
  cmake --build "$build" -j"${SN_JOBS:-2}" --target shardnet_cli >/dev/null || exit 2
fi
sn="$build/shardnet"
t=$(mktemp -d /tmp/snvalgrind.XXXXXX)
trap 'rm -rf "$t"' EXIT

export SN_NO_REEXEC=1 OPENBLAS_CORETYPE=Haswell OMP_WAIT_POLICY=passive
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 HDF5_USE_FILE_LOCKING=FALSE
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_memory="^patcher"
supp=()
for s in /usr/share/openmpi/openmpi-valgrind.supp "$here/jobs/valgrind.supp"; do
  [[ -f "$s" ]] && supp+=("--suppressions=$s")
done
# Leaks that count: definite and indirect (Open MPI and HDF5 keep "possibly lost" and "still
# reachable" blocks for the process lifetime). Uninitialised reads count everywhere.
vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=yes
    --num-callers=30 "${supp[@]}" ${SN_VALGRIND_ARGS:-})

fail=0
ran=0
skipped=0
# run NAME EXPECT(ok|fail) ARGS...: one command under memcheck; memcheck's verdict is exit 99.
run() {
  local name="$1" expect="$2"
  shift 2
  local sub="$1" log="$t/$name.log"
  if ! implemented "$sub"; then
    echo "skip: $name ('shardnet $sub' is not implemented yet)"
    skipped=$((skipped + 1))
    return
  fi
  local start=$SECONDS
  "${vg[@]}" --log-file="$log.vg" "$sn" "$@" >"$log" 2>&1
  local rc=$?
  ran=$((ran + 1))
  if ((rc == 99)) || grep -qE 'definitely lost: [1-9]|indirectly lost: [1-9]|Invalid (read|write|free)|uninitialised|Mismatched free' "$log.vg"; then
    echo "FAIL: $name: memcheck errors ($((SECONDS - start))s):"
    sed 's/^/    /' "$log.vg" | head -60
    fail=1
  elif [[ "$expect" == ok && $rc -ne 0 ]]; then
    echo "FAIL: $name: exit $rc: $(tail -3 "$log")"
    fail=1
  elif [[ "$expect" == fail && ($rc -eq 0 || $rc -gt 128) ]]; then
    echo "FAIL: $name: expected a clean failure, got exit $rc: $(tail -3 "$log")"
    fail=1
  else
    echo "ok: $name ($((SECONDS - start))s, exit $rc, no memcheck errors)"
  fi
}
# A subcommand exists unless its --help fails or says it is not implemented.
implemented() {
  local out
  out=$("$sn" "$1" --help 2>&1) || return 1
  ! grep -qi 'not implemented' <<<"$out"
}

# Tiny inputs: a 24-image idx pair (28x28), a folder of 6 JPEG/PNG images in 2 classes.
/usr/bin/python3 - "$t" <<'PY' || { echo "valgrind.sh: cannot make the inputs (numpy, Pillow)"; exit 2; }
import gzip, os, struct, sys
import numpy as np
from PIL import Image
t = sys.argv[1]
rng = np.random.RandomState(0)
img = rng.randint(0, 256, size=(24, 28, 28), dtype=np.uint8)
lab = (np.arange(24) % 10).astype(np.uint8)
with gzip.open(os.path.join(t, "img.gz"), "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 24, 28, 28) + img.tobytes())
with open(os.path.join(t, "lab"), "wb") as f:
    f.write(struct.pack(">II", 0x801, 24) + lab.tobytes())
for c, cls in enumerate(["cat", "dog"]):
    d = os.path.join(t, "photos", cls)
    os.makedirs(d)
    for i in range(3):
        im = Image.fromarray(rng.randint(0, 256, size=(20 + 7 * i, 31 - 5 * i, 3), dtype=np.uint8))
        im.save(os.path.join(d, "%d.%s" % (i, "png" if (i + c) % 2 else "jpg")))
PY

q=(--quiet)
small=(--arch resnet20 --input 28x28x1 --width 4 --classes 10 --threads 2)
run summary ok summary --arch resnet18 --width 4
run convert_idx ok convert idx --images "$t/img.gz" --labels "$t/lab" --fashion --out "$t/mnist.h5" "${q[@]}"
run convert_folder ok convert folder --root "$t/photos" --encoded --size 32x32 --out "$t/photos.h5" "${q[@]}"
run train ok train "${small[@]}" --data "$t/mnist.h5" --steps 2 --batch 8 --checkpoint "$t/ck.h5" \
  --out "$t/w.h5" --metrics "$t/m.json" "${q[@]}"
run train_resume ok train "${small[@]}" --data "$t/mnist.h5" --steps 3 --batch 8 --checkpoint "$t/ck.h5" \
  --resume --allow-recipe-change --out "$t/w2.h5" "${q[@]}"
run infer ok infer "${small[@]}" --data "$t/mnist.h5" --weights "$t/w.h5" --out "$t/pred.h5" --logits \
  --features --batch 10 "${q[@]}"
run infer_encoded ok infer --arch resnet18 --width 2 --input 32x32x3 --classes 2 --threads 2 \
  --data "$t/photos.h5" --out "$t/pred2.h5" --features --features-dtype f16 "${q[@]}"
# Error paths: a clean one-line failure, and still no memcheck error.
printf 'not hdf5' >"$t/junk.h5"
run err_weights fail infer "${small[@]}" --data "$t/mnist.h5" --weights "$t/junk.h5" --out "$t/e1.h5" "${q[@]}"
run err_data fail train "${small[@]}" --data "$t/missing.h5" --steps 1 --batch 8 "${q[@]}"
run err_arch fail infer --arch resnet18 --width 2 --input 28x28x1 --classes 10 --threads 2 --data "$t/mnist.h5" \
  --weights "$t/w.h5" --out "$t/e2.h5" "${q[@]}"

echo "valgrind.sh: $ran run, $skipped skipped, $([[ $fail == 0 ]] && echo ok || echo FAILED)"
exit $fail
