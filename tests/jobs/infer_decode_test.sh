#!/usr/bin/env bash
# infer_decode_test.sh - what `infer` takes from the weights and label files and gives back
# decoded (jobs/infer_decode.c, docs/cli.md "Labels and decoded predictions"): the class count
# read from the weights file and an explicit --classes contradicting it; label files of the wrong
# class count; --decoded CSV and JSON Lines compared with Keras' own decode_predictions
# (keras_applications) over the output's /logits, identical at 1 and 2 ranks; --print; a weights
# file holding NaN. Every refusal: a one-line error naming the file and both counts, a non-zero
# exit, and no output created.
set -u
sn="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
py=/usr/bin/python3
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/sndecode.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
json="$here/jobs/data/imagenet_class_index.json"
list="$here/jobs/data/imagenet_labels.txt"
fm=/usr/share/datasets/fashion-mnist
cd "$t" || exit 1
$py - "$fm" <<'EOF' || { echo "FAIL: making the dataset"; exit 1; }
import gzip, sys, h5py, numpy as np
raw = gzip.open(sys.argv[1] + "/t10k-images-idx3-ubyte.gz").read()[16:16 + 60 * 784]
lab = gzip.open(sys.argv[1] + "/t10k-labels-idx1-ubyte.gz").read()[8:8 + 60]
with h5py.File("d.h5", "w") as f:
    f["images"] = np.frombuffer(raw, np.uint8).reshape(60, 28, 28, 1)
    f["labels"] = np.frombuffer(lab, np.uint8).astype(np.int32)
EOF
# A 1000-class lenet's weights (native file: records classes = 1000).
"$sn" train --arch lenet --classes 1000 --data d.h5 --steps 2 --batch 30 --out w1000.h5 --quiet \
  >/dev/null || { echo "FAIL: train"; exit 1; }

# expect NAME EXIT PATTERN OUTPUT -- command: exit code EXIT, one stderr line matching PATTERN,
# OUTPUT not created.
expect() {
  local name=$1 code=$2 pat=$3 out=$4
  shift 5
  "$@" >"$t/stdout" 2>"$t/stderr"
  local rc=$? lines
  lines=$(grep -c . "$t/stderr")
  if [[ $rc == "$code" && $lines == 1 ]] && grep -qE -- "$pat" "$t/stderr" && [[ ! -e $out ]]; then
    echo "ok: $name: $(cat "$t/stderr")"
  else
    die "$name: exit $rc (want $code), $lines stderr lines, output $([[ -e $out ]] && echo exists || echo absent): $(head -3 "$t/stderr")"
  fi
}

# 1. the class count comes from the weights file; --classes contradicting it is refused
common=(--arch lenet --data d.h5 --weights w1000.h5 --batch 16 --quiet)
"$sn" infer "${common[@]}" --out o.h5 --logits --labels "$json" --decoded top5.csv --print 3 \
  >print.txt || die "infer with the weights' class count"
$py -c "import h5py; assert h5py.File('o.h5')['logits'].shape == (60, 1000)" &&
  echo "ok: 1000 classes taken from the weights file" || die "/logits is not (60, 1000)"
expect "--classes 10 contradicts the weights file" 3 \
  "w1000\.h5 records 1000 classes but --classes is 10" o2.h5 -- \
  "$sn" infer "${common[@]}" --classes 10 --out o2.h5
"$sn" infer "${common[@]}" --classes 1000 --out o3.h5 || die "--classes equal to the file's"

# 2. label files whose class count is not the model's
expect "JSON labels for a 10-class model" 3 \
  "imagenet_class_index\.json names 1000 classes but the model has 10" o4.h5 -- \
  "$sn" infer --arch lenet --data d.h5 --out o4.h5 --quiet --labels "$json"
expect "plain labels for a 10-class model" 3 \
  "imagenet_labels\.txt names 1000 classes but the model has 10" o4.h5 -- \
  "$sn" infer --arch lenet --data d.h5 --out o4.h5 --quiet --labels "$list"
printf '{"0": ["n0", "a"], "2": ["n2", "c"]}' >gap.json
expect "JSON labels with a gap" 3 "gap\.json: line 1: class 1 missing" o4.h5 -- \
  "$sn" infer --arch lenet --data d.h5 --out o4.h5 --quiet --labels gap.json
expect "--decoded without a format" 2 "--decoded top5\.txt: the extension" o4.h5 -- \
  "$sn" infer "${common[@]}" --out o4.h5 --decoded top5.txt
expect "--decoded in a missing directory" 3 "nodir/top5\.csv: cannot create it" o4.h5 -- \
  "$sn" infer "${common[@]}" --out o4.h5 --decoded nodir/top5.csv
expect "--decoded without predictions" 2 "need predictions" o4.h5 -- \
  "$sn" infer "${common[@]}" --out o4.h5 --decoded top5.csv --top-k 0 --logits

# 3. --decoded against Keras' decode_predictions over the same probabilities; 2 ranks identical
timeout 300 $mpirun -np 2 "$sn" infer "${common[@]}" --threads 1 --out o5.h5 --labels "$json" \
  --decoded top5.jsonl --print 0 >/dev/null || die "infer np2 --decoded jsonl"
timeout 300 $mpirun -np 2 "$sn" infer "${common[@]}" --threads 1 --out o6.h5 --labels "$json" \
  --decoded top5_np2.csv --print 0 >/dev/null || die "infer np2 --decoded csv"
cmp -s top5.csv top5_np2.csv && echo "ok: decoded CSV identical at 1 and 2 ranks" ||
  die "decoded CSV differs between 1 and 2 ranks"
$py - "$json" <<'EOF' && echo "ok: CSV, JSON Lines and --print agree with Keras' decode_predictions" || die "decoded predictions differ from Keras'"
import csv, hashlib, json, sys, types
import h5py, numpy as np
from keras_applications import imagenet_utils
index = sys.argv[1]
assert hashlib.md5(open(index, "rb").read()).hexdigest() == "c2c37ea517e94d9795004a39431a14cb"
# Keras fetches the class index with utils.get_file; hand it the shipped copy (same MD5)
utils = types.SimpleNamespace(get_file=lambda *a, **k: index)
logits = h5py.File("o.h5")["logits"][:].astype(np.float64)
p = np.exp(logits - logits.max(1, keepdims=True))
p /= p.sum(1, keepdims=True)
want = imagenet_utils.decode_predictions(p, top=5, backend=None, layers=None, models=None,
                                         utils=utils)
rows = list(csv.reader(open("top5.csv", newline="")))
lines = [json.loads(l) for l in open("top5.jsonl")]
printed = open("print.txt").read().splitlines()
assert rows[0][:6] == ["file", "index", "class_1", "wnid_1", "name_1", "probability_1"], rows[0]
assert len(rows) == 61 and len(lines) == 60 and len(printed) == 3, (len(rows), len(lines))
# shardnet's float32 softmax against float64: 5e-8 relative measured over these rows; 1e-6 is
# ample for float32 rounding and fails any other normalisation (a missing max shift, a wrong sum)
rtol = 1e-6
def same(got, ref, what):
    for j, ((gw, gn, gp), (rw, rn, rp)) in enumerate(zip(got, ref)):
        if (gw, gn) != (rw, rn):  # a different order is allowed only between equal probabilities
            assert abs(gp - rp) <= rtol * rp, (what, j, got, ref)
        assert abs(gp - float(rp)) <= rtol * float(rp), (what, j, gp, rp)
    assert len(got) == len(ref) == 5, what
for i, ref in enumerate(want):
    r = rows[1 + i]
    assert r[0] == "" and int(r[1]) == i, r[:2]
    same([(r[3 + 4 * j], r[4 + 4 * j], float(r[5 + 4 * j])) for j in range(5)], ref, f"csv row {i}")
    l = lines[i]
    assert l["file"] is None and l["index"] == i, l
    same([tuple(x) for x in l["predictions"]], ref, f"jsonl row {i}")
    if i < 3:
        top = ref[0]
        assert printed[i].startswith(f"row {i}: {top[0]} {top[1]} {top[2]:.4f} | "), printed[i]
EOF

# 4. a weights file holding a NaN: refused at load naming the tensor
$py - <<'EOF' || die "making the NaN weights file"
import shutil, h5py, numpy as np
shutil.copy("w1000.h5", "wnan.h5")
with h5py.File("wnan.h5", "r+") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" and o.size > 1 else None)
    d = f[names[0]]
    v = d[()]
    v.flat[1] = np.nan
    d[...] = v
    open("nan_tensor.txt", "w").write(names[0])
EOF
expect "NaN in the weights file" 4 "wnan\.h5.*$(sed 's/[.[\*^$]/\\&/g' nan_tensor.txt)" o7.h5 -- \
  "$sn" infer --arch lenet --data d.h5 --weights wnan.h5 --out o7.h5 --quiet
exit $fail
