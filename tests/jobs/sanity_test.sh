#!/usr/bin/env bash
# sanity_test.sh - `shardnet train` says when a setup cannot be what was meant, one line per
# warning on rank 0 and the same lines in every --metrics line: one class, a global batch larger
# than the dataset, an input far from the architecture's design size, classes without examples.
# A sound setup has none. Metrics fields that do not apply are absent (val_* without --val,
# top-5 with 5 classes or fewer), not 0.
set -u
sn="$1"
py=/usr/bin/python3
mpirun=(mpirun --allow-run-as-root --oversubscribe -q)
t=$(mktemp -d /tmp/snsanity.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# four 64x64 images, all of class 3 (of the 10 that convert idx names), and 100 Fashion-MNIST rows
$py - "$t" <<'PY' || exit 1
import gzip, struct, sys
out, fm = sys.argv[1], "/usr/share/datasets/fashion-mnist/"
open(f"{out}/one-img", "wb").write(struct.pack(">IIII", 0x803, 4, 64, 64) + bytes(range(256)) * 64)
open(f"{out}/one-lab", "wb").write(struct.pack(">II", 0x801, 4) + bytes([3, 3, 3, 3]))
img = gzip.open(fm + "t10k-images-idx3-ubyte.gz").read()
lab = gzip.open(fm + "t10k-labels-idx1-ubyte.gz").read()
open(f"{out}/fm-img", "wb").write(img[:4] + struct.pack(">I", 100) + img[8:16] + img[16:16 + 78400])
open(f"{out}/fm-lab", "wb").write(lab[:4] + struct.pack(">I", 100) + lab[8:108])
PY
"$sn" convert idx --images "$t/one-img" --labels "$t/one-lab" --out "$t/one.h5" --quiet || exit 1
"$sn" convert idx --images "$t/fm-img" --labels "$t/fm-lab" --out "$t/fm.h5" --quiet || exit 1

# check NAME METRICS EXPECTED-WARNINGS... : stderr's warning lines and the metrics' "warnings"
check() {
  local name=$1 m=$2
  shift 2
  $py - "$t/err" "$m" "$@" <<'PY' && echo "ok: $name" || die "$name: $(cat "$t/err")"
import json, sys
err, metrics, want = sys.argv[1], sys.argv[2], sys.argv[3:]
got = [l[len("shardnet: warning: "):].rstrip("\n") for l in open(err) if l.startswith("shardnet: warning: ")]
assert len(got) == len(want) and all(w in g for g, w in zip(got, want)), (got, want)
for r in map(json.loads, open(metrics)):
    assert r.get("warnings", []) == got, (r.get("warnings"), got)
for g in got:
    print("   ", g)
PY
}

# the setup of the report: a CIFAR-style net on 64x64 images of a single class, batch 128
"$sn" train --arch lenet --data "$t/one.h5" --steps 1 --threads 2 --metrics "$t/m1.jsonl" \
  >/dev/null 2>"$t/err" || die "one class: exit $?"
check "one class, batch > dataset, input far from the design size" "$t/m1.jsonl" \
  "file $t/one.h5: every training label is class 3 (3): the model can only learn to predict it" \
  "global batch 128 is larger than the 4 rows of $t/one.h5" \
  "input 64x64 is far from lenet's design size 28x28 (more than 2x apart)"
# classes without examples: 12 outputs for 10 classes; under mpirun rank 0 alone prints
"${mpirun[@]}" -np 2 "$sn" train --arch lenet_bn --data "$t/fm.h5" --classes 12 --batch 20 \
  --steps 2 --threads 1 --metrics "$t/m2.jsonl" >/dev/null 2>"$t/err" || die "12 classes: exit $?"
check "classes without examples, 2 ranks" "$t/m2.jsonl" \
  "file $t/fm.h5: 2 of the model's 12 classes have no training example (classes 10, 11)"
# a sound setup: no warning, no "warnings" field
"$sn" train --arch lenet_bn --data "$t/fm.h5" --batch 20 --steps 2 --threads 2 --val "$t/fm.h5" \
  --metrics "$t/m3.jsonl" >/dev/null 2>"$t/err" || die "sound setup: exit $?"
check "sound setup: no warning" "$t/m3.jsonl"

# absent rather than 0: val_* only with --val, top-5 only with more than 5 classes
$py - "$t/m1.jsonl" "$t/m2.jsonl" "$t/m3.jsonl" <<'PY' && echo "ok: absent fields" || fail=1
import json, sys
one, twelve, sound = (json.loads(open(p).readline()) for p in sys.argv[1:])
assert not any(k.startswith("val_") for k in twelve), twelve
assert "train_top5" in twelve and "val_top5" not in twelve, twelve
assert "val_loss" in sound and "val_acc" in sound and "val_top5" in sound, sound
assert 0 <= sound["val_top5"] <= 1 and sound["val_top5"] >= sound["val_acc"], sound
assert "train_top5" in one, one  # 10 classes named by /classes
print("    12 classes without --val:", sorted(twelve))
PY
exit $fail
