#!/usr/bin/env bash
# infer_test.sh - end to end on the real Fashion-MNIST test set: convert, infer on 1, 2 and 4
# ranks (outputs identical dataset by dataset), kill -9 half way + --resume equals an
# uninterrupted run, and the bad-input rules of `infer` (each a one-line error, non-zero exit).
set -u
sn="$1"
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/sninfer.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
fm=/usr/share/datasets/fashion-mnist
"$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  --out "$t/test.h5" --fashion --quiet || { echo "FAIL: convert"; exit 1; }
common=(--arch resnet20 --input 28x28x1 --width 8 --data "$t/test.h5" --logits --features --batch 50 --quiet)
"$sn" infer "${common[@]}" --out "$t/np1.h5" --confusion "$t/c1.tsv" || die "infer np1"
# --confusion: rank 0 writes the matrix; under mpirun every rank must still end (a rank-0-only
# agreement once left rank 0 waiting 600 s for the others, who had finalized)
timeout 120 $mpirun -np 2 "$sn" infer "${common[@]}" --out "$t/np2.h5" --threads 1 --confusion "$t/c2.tsv" || die "infer np2"
timeout 120 $mpirun -np 4 "$sn" infer "${common[@]}" --out "$t/np4.h5" --threads 1 --confusion "$t/c4.tsv" || die "infer np4"
for n in 2 4; do
  h5diff "$t/np1.h5" "$t/np$n.h5" >/dev/null && echo "ok: np1 == np$n" || die "np1 != np$n: $(h5diff "$t/np1.h5" "$t/np$n.h5" | head -3)"
  cmp -s "$t/c1.tsv" "$t/c$n.tsv" && echo "ok: confusion np1 == np$n" || die "confusion matrices np1 != np$n"
done
awk -F'\t' '{ for (i = 1; i <= NF; i++) s += $i } END { exit !(NR == 10 && NF == 10 && s == 10000) }' "$t/c1.tsv" \
  && echo "ok: confusion matrix 10x10 sums to 10000" || die "confusion matrix shape or sum: $(head -2 "$t/c1.tsv")"
h5dump -a /complete "$t/np1.h5" | grep -q "(0): 1" && echo "ok: complete attribute" || die "no complete=1"

# kill -9 one rank part way, then resume: the result must equal the uninterrupted run. Width 32
# makes a run last about 8 s on the development machine, so that the kill (1.5 s after the
# output appears) lands part way: at width 8 the direct tiles (f47c09c) finish in 2 s.
common2=(--arch resnet20 --input 28x28x1 --width 32 --data "$t/test.h5" --logits --batch 20 --quiet --threads 1)
$mpirun -np 2 "$sn" infer "${common2[@]}" --out "$t/full.h5" || die "infer full"
$mpirun -np 2 "$sn" infer "${common2[@]}" --out "$t/killed.h5" & pid=$!
for i in $(seq 1 100); do
  sleep 0.1
  [[ -f "$t/killed.h5" ]] && python3 -c "import sys" 2>/dev/null && break
done
sleep 1.5
victim=$(pgrep -f "shardnet infer.*killed.h5" | tail -1)
[[ -n "$victim" ]] && kill -9 "$victim"
wait $pid; rc=$?
[[ $rc -ne 0 ]] && echo "ok: killed run exited $rc" || echo "note: run finished before the kill"
if h5dump -a /complete "$t/killed.h5" 2>/dev/null | grep -q "(0): 1"; then
  [[ $rc -ne 0 ]] && die "killed output is marked complete"
fi
out=$("$sn" infer "${common2[@]}" --out "$t/killed.h5" 2>&1); rc=$?
if [[ $rc -eq 0 ]]; then die "rerun without --resume accepted an existing output"; fi
$mpirun -np 2 "$sn" infer "${common2[@]}" --out "$t/killed.h5" --resume || die "resume"
h5diff "$t/full.h5" "$t/killed.h5" >/dev/null && echo "ok: resumed == uninterrupted" || die "resumed output differs: $(h5diff "$t/full.h5" "$t/killed.h5" | head -3)"

# bad inputs: one line, non-zero exit, no output that looks complete
bad() { # description, pattern, args...
  local what="$1" pat="$2"; shift 2
  local out rc
  out=$("$sn" infer "$@" 2>&1); rc=$?
  if [[ $rc -eq 0 ]] || ! grep -qE -- "$pat" <<<"$out" || [[ $(grep -vc "^input: " <<<"$out") -gt 2 ]] || [[ $rc -gt 128 ]]; then
    die "$what: exit $rc, output: $out"
  else
    echo "ok: $what"
  fi
}
printf 'not hdf5' >"$t/junk.h5"
/usr/bin/python3 - "$t" <<'PY' 2>/dev/null || true
import sys, numpy as np
try:
    import h5py
except ImportError:
    sys.exit(0)
t = sys.argv[1]
with h5py.File(t + "/rank3.h5", "w") as f: f["images"] = np.zeros((4, 28, 28), np.uint8)
with h5py.File(t + "/noimages.h5", "w") as f: f["pixels"] = np.zeros((4, 28, 28, 1), np.uint8)
with h5py.File(t + "/nan.h5", "w") as f:
    x = np.zeros((4, 28, 28, 1), np.float32); x[1, 3, 3, 0] = np.nan; f["images"] = x
with h5py.File(t + "/badlabels.h5", "w") as f:
    f["images"] = np.zeros((4, 28, 28, 1), np.uint8); f["labels"] = np.arange(5, dtype=np.int32)
PY
bad "missing input" "missing.h5" --arch lenet --data "$t/missing.h5" --out "$t/o.h5"
bad "non-HDF5 input" "junk.h5" --arch lenet --data "$t/junk.h5" --out "$t/o.h5"
bad "output is input" "is the input file" --arch lenet --data "$t/test.h5" --out "$t/test.h5"
bad "complete output without --force" "complete already" --arch resnet20 --input 28x28x1 --data "$t/test.h5" --out "$t/np1.h5"
bad "wrong input shape" "images are 28x28x1 but resnet50 takes 224x224x3" --arch resnet50 --data "$t/test.h5" --out "$t/o2.h5" --input 224x224x3
bad "bad weights file" "junk.h5" --arch lenet --data "$t/test.h5" --out "$t/o3.h5" --weights "$t/junk.h5"
if [[ -f "$t/rank3.h5" ]]; then
  bad "images of rank 3" "rank3.h5" --arch lenet --data "$t/rank3.h5" --out "$t/o4.h5"
  bad "no /images" "noimages.h5" --arch lenet --data "$t/noimages.h5" --out "$t/o5.h5"
  bad "NaN image" "NaN|non-finite" --arch lenet --data "$t/nan.h5" --out "$t/o6.h5" --preprocess none
  bad "labels length mismatch" "badlabels.h5" --arch lenet --data "$t/badlabels.h5" --out "$t/o7.h5"
  for f in o4 o5 o6 o7; do
    [[ -f "$t/$f.h5" ]] && h5dump -a /complete "$t/$f.h5" 2>/dev/null | grep -q "(0): 1" && die "$f looks complete"
  done
fi
exit $fail
