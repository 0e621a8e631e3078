#!/usr/bin/env bash
# calibrate_test.sh - `shardnet calibrate` and `infer --precision` on real Fashion-MNIST images
# with a briefly trained resnet20: the scales file is the same for 1 and 2 ranks, bf16 and int8
# outputs are identical for 1, 2 and 4 ranks, the precision is recorded in the output, and the
# refusals (int8 without scales, scales of another model or other weights, a CPU without the
# instructions) are one-line errors that leave no output behind.
set -u
sn="$1"
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/sncalib.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
fm=/usr/share/datasets/fashion-mnist
"$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  --out "$t/all.h5" --fashion --quiet || { echo "FAIL: convert"; exit 1; }
/usr/bin/python3 - "$t" <<'PY' || { echo "FAIL: subset"; exit 1; }
import sys, h5py
t = sys.argv[1]
with h5py.File(t + "/all.h5") as a, h5py.File(t + "/d.h5", "w") as b:
    b["images"] = a["images"][:1000]
    b["labels"] = a["labels"][:1000]
PY
model=(--arch resnet20 --input 28x28x1 --width 8)
"$sn" train "${model[@]}" --data "$t/d.h5" --steps 15 --batch 64 --quiet --out "$t/w.h5" >/dev/null || die "train"
cal=("${model[@]}" --weights "$t/w.h5" --data "$t/d.h5" --rows 200 --batch 32 --quiet)
"$sn" calibrate "${cal[@]}" --out "$t/s1.h5" || die "calibrate np1"
timeout 120 $mpirun -np 2 "$sn" calibrate "${cal[@]}" --out "$t/s2.h5" --threads 1 || die "calibrate np2"
for d in layers threshold min max scale zero_point; do
  h5diff "$t/s1.h5" "$t/s2.h5" "/$d" >/dev/null || die "scales /$d differ between 1 and 2 ranks"
done
h5dump -a /rows "$t/s1.h5" | grep -q "(0): 200" && echo "ok: scales np1 == np2, 200 rows" || die "rows attribute"

inf=("${model[@]}" --weights "$t/w.h5" --data "$t/d.h5" --logits --features --batch 50 --quiet)
for p in bf16 int8; do
  sc=()
  [[ $p == int8 ]] && sc=(--scales "$t/s1.h5")
  "$sn" infer "${inf[@]}" --precision $p "${sc[@]}" --out "$t/${p}1.h5" || die "infer $p np1"
  for n in 2 4; do
    timeout 120 $mpirun -np $n "$sn" infer "${inf[@]}" --precision $p "${sc[@]}" --threads 1 \
      --out "$t/$p$n.h5" || die "infer $p np$n"
    h5diff "$t/${p}1.h5" "$t/$p$n.h5" >/dev/null && echo "ok: $p np1 == np$n" ||
      die "$p np1 != np$n: $(h5diff "$t/${p}1.h5" "$t/$p$n.h5" | head -3)"
  done
  h5dump -a /precision "$t/${p}1.h5" | grep -q "\"$p\"" && echo "ok: precision $p recorded" ||
    die "no precision attribute $p"
done

bad() { # description, pattern, command args...
  local what="$1" pat="$2"; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc -eq 0 ]] || ! grep -qE -- "$pat" <<<"$out" || [[ $(wc -l <<<"$out") -gt 2 ]] || [[ $rc -gt 128 ]]; then
    die "$what: exit $rc, output: $out"
  else
    echo "ok: $what"
  fi
}
# --report: one CSV row per layer with both precisions' columns, the same at 1 and 2 ranks (sums
# over the ranks: equal up to the order of additions), int8 features close to float32's.
rep=("${model[@]}" --weights "$t/w.h5" --data "$t/d.h5" --rows 200 --batch 32 --report-rows 40 --force)
"$sn" calibrate "${rep[@]}" --out "$t/sr1.h5" --report "$t/r1.csv" >"$t/r1.log" || die "report np1"
timeout 120 $mpirun -np 2 "$sn" calibrate "${rep[@]}" --out "$t/sr2.h5" --report "$t/r2.csv" \
  --threads 1 || die "report np2"
/usr/bin/python3 - "$t/r1.csv" "$t/r2.csv" "$sn" <<'PY' && echo "ok: report np1 == np2" || die "report"
import csv, subprocess, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
assert len(a) == len(b) and len(a) >= 20, (len(a), len(b))
assert [r["layer"] for r in a] == [r["layer"] for r in b]
cols = [c for c in a[0] if c.endswith(("rel_l2", "cos_mean", "cos_min"))]
assert "int8_rel_l2" in cols, cols
for r, s in zip(a, b):
    for c in cols:
        x, y = float(r[c]), float(s[c])
        assert abs(x - y) <= 1e-9 * max(1.0, abs(x)), (r["layer"], c, x, y)
feat = [r for r in a if r["role"] == "features"]
out = [r for r in a if r["role"] == "output"]
assert len(feat) == 1 and len(out) == 1, (feat, out)
assert 0.99 < float(feat[0]["int8_cos_mean"]) <= 1 + 1e-12, feat
assert 0 < float(out[0]["int8_rel_l2"]) < 0.1, out
PY
grep -q "^report: int8: largest layer error" "$t/r1.log" || die "report summary line: $(cat "$t/r1.log")"
SN_NO_AVX512=1 bad "report on a CPU without bf16 and int8" "runs neither bf16 nor int8" \
  "$sn" calibrate "${cal[@]}" --out "$t/s8.h5" --report "$t/r8.csv"

bad "int8 without scales" "needs it" "$sn" infer "${inf[@]}" --precision int8 --out "$t/o1.h5"
bad "unknown precision" "not fp32, bf16 or int8" "$sn" infer "${inf[@]}" --precision int4 --out "$t/o2.h5"
"$sn" calibrate "${model[@]}" --data "$t/d.h5" --rows 64 --quiet --out "$t/srand.h5" 2>/dev/null || die "calibrate random"
bad "scales of other weights" "md5" "$sn" infer "${inf[@]}" --precision int8 --scales "$t/srand.h5" --out "$t/o3.h5"
bad "scales of another model" "calibrated for resnet20" "$sn" infer --arch resnet32 --input 28x28x1 \
  --data "$t/d.h5" --precision int8 --scales "$t/srand.h5" --out "$t/o4.h5" --quiet
bad "not a scales file" "not a shardnet scales file" "$sn" infer "${inf[@]}" --precision int8 --scales "$t/d.h5" --out "$t/o5.h5"
SN_NO_AVX512=1 bad "CPU without the instructions" "precision bf16 needs AVX-512" \
  "$sn" infer "${inf[@]}" --precision bf16 --out "$t/o6.h5"
bad "calibrate over an existing file" "exists" "$sn" calibrate "${cal[@]}" --out "$t/s1.h5"
bad "calibrate method" "not mse, max or percentile" "$sn" calibrate "${cal[@]}" --method kl --out "$t/s9.h5"
for f in o1 o2 o3 o4 o5 o6 s9 s8; do
  [[ -e "$t/$f.h5" ]] && die "$f.h5 left behind"
done
[[ -e "$t/r8.csv" ]] && die "r8.csv left behind"
exit $fail
