#!/usr/bin/env bash
# resume_test.sh - resuming `shardnet train` from a checkpoint is bit-identical to an
# uninterrupted run: after step 1, in the middle of an epoch, at the end of an epoch and in the
# middle of the next (the weights, and every metrics line's losses, accuracies, step and lr), at 1
# and at 2 ranks, also with per-rank batch-norm statistics (--bn local, where rank 1's moving
# statistics decide its validation rows); a checkpoint resumed on another rank count trains on
# and says what changes; options that contradict the checkpoint's recipe are an error listing
# each difference, unless --allow-recipe-change, which prints them.
set -u
sn="$1"
py=/usr/bin/python3
mpirun=(mpirun --allow-run-as-root --oversubscribe -q)
t=$(mktemp -d /tmp/snresume.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# 200 training and 100 validation rows of the Fashion-MNIST test set, as idx files
$py - "$t" <<'PY' || exit 1
import gzip, struct, sys
fm, out = "/usr/share/datasets/fashion-mnist/", sys.argv[1]
img = gzip.open(fm + "t10k-images-idx3-ubyte.gz").read()
lab = gzip.open(fm + "t10k-labels-idx1-ubyte.gz").read()
for name, a, b in (("train", 0, 200), ("val", 200, 300)):
    n = struct.pack(">I", b - a)
    open(f"{out}/{name}-img", "wb").write(img[:4] + n + img[8:16] + img[16 + 784 * a:16 + 784 * b])
    open(f"{out}/{name}-lab", "wb").write(lab[:4] + n + lab[8 + a:8 + b])
PY
for s in train val; do
  "$sn" convert idx --images "$t/$s-img" --labels "$t/$s-lab" --out "$t/$s.h5" --quiet || exit 1
done

# 10 steps per epoch, 20 in all. Warm-up, then a constant rate: a step's learning rate does not
# depend on the run's length, so a run cut by --steps S is the first S steps of the whole run.
# (tests/jobs/signal_test.sh resumes cosine runs stopped by signals.)
common=(--arch resnet20 --width 4 --input 28x28x1 --data "$t/train.h5" --val "$t/val.h5"
  --batch 20 --epochs 2 --warmup 1 --schedule constant --augment crop-flip --quiet)

# run NP ARGS...: shardnet train on NP ranks (1: without mpirun)
run() {
  local np=$1
  shift
  if [[ $np == 1 ]]; then
    "$sn" train "$@" --threads 2
  else
    "${mpirun[@]}" -np "$np" "$sn" train "$@" --threads 1
  fi
}

# same_metrics A.jsonl B.jsonl: every line of B equals A's line of the same epoch
same_metrics() {
  $py - "$1" "$2" <<'PY'
import json, sys
a = {r["epoch"]: r for r in map(json.loads, open(sys.argv[1]))}
b = [json.loads(l) for l in open(sys.argv[2])]
keys = ["step", "train_loss", "train_acc", "train_top5", "val_loss", "val_acc", "val_top5", "lr"]
assert b, "no metrics lines"
for r in b:
    bad = [f"{k} {r.get(k)} != {a[r['epoch']].get(k)}" for k in keys if r.get(k) != a[r["epoch"]].get(k)]
    assert not bad, f"epoch {r['epoch']}: " + ", ".join(bad)
PY
}

# check_resume NP S REF [ARGS...]: --steps S with a checkpoint, then resume to the end (a recipe
# change: the run's length); weights and metrics must equal REF's.
check_resume() {
  local np=$1 s=$2 ref=$3
  shift 3
  local ck="$t/ck_${np}_$s.h5" out="$t/r_${np}_$s.h5" m="$t/r_${np}_$s.jsonl"
  run "$np" "${common[@]}" "$@" --steps "$s" --checkpoint "$ck" || { die "np $np: --steps $s"; return; }
  cp "$ck" "$ck.at$s"
  if ! run "$np" "${common[@]}" "$@" --checkpoint "$ck" --resume --allow-recipe-change \
    --out "$out" --metrics "$m" 2>"$t/err"; then
    die "np $np: resume after step $s: $(cat "$t/err")"
    return
  fi
  grep -q "changed recipe: steps $s -> 0" "$t/err" || die "np $np: no note of the change: $(cat "$t/err")"
  if h5diff "$ref.h5" "$out" >/dev/null && same_metrics "$ref.jsonl" "$m"; then
    echo "ok: np $np${*:+ $*}: resumed after step $s == uninterrupted (weights and metrics)"
  else
    die "np $np${*:+ $*}: resumed after step $s differs: $(h5diff "$ref.h5" "$out" | head -2)"
  fi
}

run 1 "${common[@]}" --out "$t/ref1.h5" --metrics "$t/ref1.jsonl" || die "reference, 1 rank"
for s in 1 7 10 13; do check_resume 1 "$s" "$t/ref1"; done
run 2 "${common[@]}" --out "$t/ref2.h5" --metrics "$t/ref2.jsonl" || die "reference, 2 ranks"
check_resume 2 7 "$t/ref2"
run 2 "${common[@]}" --bn local --out "$t/ref2l.h5" --metrics "$t/ref2l.jsonl" || die "ref --bn local"
check_resume 2 13 "$t/ref2l" --bn local

# Another rank count: 1 rank's checkpoint after step 7, continued on 2 ranks. Not bit for bit
# (sums are reduced in another order), but the same training: the note says what changes.
cp "$t/ck_1_7.h5.at7" "$t/x.h5"
run 2 "${common[@]}" --checkpoint "$t/x.h5" --resume --allow-recipe-change --metrics "$t/x.jsonl" \
  2>"$t/err" || die "1 -> 2 ranks: $(cat "$t/err")"
grep -q "checkpoint written by 1 rank(s), resuming on 2 with the same global batch 20: up to 10 rows per rank and step instead of 20; batch norm still normalises over the global batch" "$t/err" \
  && echo "ok: 1 -> 2 ranks: $(grep 'written by' "$t/err")" || die "1 -> 2 ranks: no note: $(cat "$t/err")"
$py - "$t/ref1.jsonl" "$t/x.jsonl" <<'PY' || die "1 -> 2 ranks trained something else"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert [r["step"] for r in b] == [10, 20], b
for x, y in zip(a, b):
    assert abs(x["train_loss"] - y["train_loss"]) < 0.01 * x["train_loss"], (x, y)
print("ok: 1 -> 2 ranks: epoch losses %s vs %s" % ([r["train_loss"] for r in b], [r["train_loss"] for r in a]))
PY

# The recipe: contradicting options are refused with every difference listed ...
ck="$t/ck_1_10.h5" # at the end of the run now, recipe of the whole run
out=$("$sn" train "${common[@]}" --checkpoint "$ck" --resume --lr 0.05 --epochs 3 --seed 4 --bn local \
  --threads 2 2>&1)
rc=$?
want="checkpoint $ck: 4 options differ from the run it continues: epochs 2 -> 3, lr 0.1 -> 0.05, seed 1 -> 4, bn sync -> local (resume with the same options, or accept the change with --allow-recipe-change)"
if [[ $rc == 2 && $(wc -l <<<"$out") == 1 && $out == *"$want" ]]; then
  echo "ok: recipe mismatch: $out"
else
  die "recipe mismatch: exit $rc: $out"
fi
# ... accepted with --allow-recipe-change, which prints them; the checkpoint then records the new
# recipe, so the same new options resume without a word
new=(--lr 0.05 --epochs 3)
"$sn" train "${common[@]}" "${new[@]}" --checkpoint "$ck" --resume --allow-recipe-change --threads 2 \
  --metrics "$t/n.jsonl" 2>"$t/err" || die "allowed change: $(cat "$t/err")"
grep -q "note: resuming $ck with a changed recipe: epochs 2 -> 3, lr 0.1 -> 0.05" "$t/err" \
  && echo "ok: allowed change: $(cat "$t/err")" || die "allowed change not printed: $(cat "$t/err")"
grep -q '"epoch": 3, "step": 30' "$t/n.jsonl" || die "allowed change: epoch 3 not trained: $(cat "$t/n.jsonl")"
"$sn" train "${common[@]}" "${new[@]}" --checkpoint "$ck" --resume --threads 2 2>"$t/err" \
  && [[ ! -s "$t/err" ]] && echo "ok: the new recipe is recorded" || die "new recipe: $(cat "$t/err")"
exit $fail
