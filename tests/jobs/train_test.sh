#!/usr/bin/env bash
# train_test.sh - short training on the real Fashion-MNIST test set: the loss falls and accuracy
# rises above chance; 2 epochs straight equal 1 epoch + --resume 1 epoch bit for bit (same
# thread count; --allow-recipe-change for the added epoch); 2 ranks with synchronized BN train; a
# NaN never produces weights.
set -u
sn="$1"
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/sntrain.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
fm=/usr/share/datasets/fashion-mnist
"$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  --out "$t/test.h5" --fashion --quiet || { echo "FAIL: convert"; exit 1; }
common=(--arch lenet_bn --data "$t/test.h5" --batch 100 --lr 0.05 --schedule constant --quiet --threads 2)
"$sn" train "${common[@]}" --epochs 2 --val "$t/test.h5" --metrics "$t/m.jsonl" --out "$t/straight.h5" || die "train"
python3 - "$t/m.jsonl" <<'PY' || fail=1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 2, rows
assert rows[1]["train_loss"] < rows[0]["train_loss"], rows
assert rows[1]["val_acc"] > 0.6, rows
print("ok: loss %.3f -> %.3f, val acc %.3f" % (rows[0]["train_loss"], rows[1]["train_loss"], rows[1]["val_acc"]))
PY
"$sn" train "${common[@]}" --epochs 1 --checkpoint "$t/ck.h5" || die "train epoch 1"
cp "$t/ck.h5" "$t/ck1.h5"
# 1 more epoch than the checkpoint's run planned: a recipe change, allowed explicitly (constant
# schedule: the steps are those of the 2-epoch run)
"$sn" train "${common[@]}" --epochs 2 --checkpoint "$t/ck.h5" --resume --out "$t/resumed.h5" \
  --allow-recipe-change 2>"$t/resume.err" || die "resume"
grep -q "changed recipe: epochs 1 -> 2" "$t/resume.err" || die "no note of the change: $(cat "$t/resume.err")"
h5diff "$t/straight.h5" "$t/resumed.h5" >/dev/null && echo "ok: resumed == straight (bit for bit)" \
  || die "resumed weights differ: $(h5diff "$t/straight.h5" "$t/resumed.h5" | head -3)"
# resuming with another global batch: epoch 2 runs in full at the new batch (10000 / 200 = 50 steps)
"$sn" train "${common[@]}" --epochs 2 --batch 200 --checkpoint "$t/ck1.h5" --resume --metrics "$t/mb.jsonl" \
  --allow-recipe-change || die "resume with another batch"
python3 - "$t/mb.jsonl" <<'PY' || die "resume with another batch trained the wrong steps"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 1 and rows[0]["epoch"] == 2 and rows[0]["step"] == 100, rows
print("ok: resume at another batch: epoch 2 = steps 51..100 of batch 200")
PY
$mpirun -np 2 "$sn" train "${common[@]}" --epochs 1 --threads 1 --metrics "$t/m2.jsonl" || die "np2 train"
grep -q '"ranks": 2' "$t/m2.jsonl" && echo "ok: 2-rank training" || die "no 2-rank metrics"
# --val-every: a metrics line at steps 40 and 80 (step 100 ends the epoch: its report has the
# evaluation), and the evaluations leave the training untouched (weights equal a run without them)
$mpirun -np 2 "$sn" train "${common[@]}" --epochs 1 --threads 1 --val "$t/test.h5" --val-every 40 \
  --metrics "$t/mv.jsonl" --out "$t/v2.h5" || die "--val-every"
$mpirun -np 2 "$sn" train "${common[@]}" --epochs 1 --threads 1 --out "$t/nv2.h5" || die "np2 train"
python3 - "$t/mv.jsonl" <<'PY' || die "--val-every metrics"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == [40, 80, 100], rows
assert "train_loss" not in rows[0] and 0 < rows[0]["val_acc"] < rows[2]["val_acc"] + 0.2, rows
print("ok: --val-every 40: evaluations at steps 40, 80 and the epoch's end")
PY
h5diff "$t/v2.h5" "$t/nv2.h5" >/dev/null && echo "ok: --val-every leaves the weights bit for bit" \
  || die "--val-every changed the training: $(h5diff "$t/v2.h5" "$t/nv2.h5" | head -3)"
"$sn" train "${common[@]}" --steps 1 --val-every 5 2>&1 | grep -q "val-every needs --val" \
  && echo "ok: --val-every without --val refused" || die "--val-every without --val accepted"
# more threads than the affinity mask allows (as under `mpirun -np 1`, which binds to one core):
# a warning naming the rank and the fix; none with the mask widened, none with --quiet
loud=()
for a in "${common[@]}"; do [[ $a == --quiet ]] || loud+=("$a"); done
w=$(taskset -c 0 "$sn" train "${loud[@]}" --steps 1 2>&1 >/dev/null)
grep -q "rank 0: 2 threads but its CPU affinity mask allows 1 core" <<<"$w" \
  && echo "ok: binding warning: $(grep 'affinity mask' <<<"$w")" || die "no binding warning: $w"
w=$(taskset -c 0,1 "$sn" train "${loud[@]}" --steps 1 2>&1 >/dev/null)
! grep -q "affinity mask" <<<"$w" || die "binding warning with 2 cores: $w"
w=$(taskset -c 0 "$sn" train "${common[@]}" --steps 1 2>&1 >/dev/null)
! grep -q "affinity mask" <<<"$w" || die "binding warning despite --quiet: $w"
# fine-tuning from the trained weights with a new 12-class head
"$sn" train "${common[@]}" --steps 3 --init "$t/straight.h5" --classes 12 --out "$t/ft.h5" \
  && echo "ok: --init with a new head" || die "--init with a new head"
out=$("$sn" train "${common[@]}" --epochs 1 --lr 1000 --schedule constant --out "$t/nan.h5" 2>&1); rc=$?
if [[ $rc -ne 0 ]] && grep -qE "NaN|infinite|non-finite" <<<"$out" && [[ ! -f "$t/nan.h5" ]]; then
  echo "ok: divergence stops training: $(tail -1 <<<"$out")"
else
  die "divergence: exit $rc, $(tail -2 <<<"$out")"
fi
exit $fail
