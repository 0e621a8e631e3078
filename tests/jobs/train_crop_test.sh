#!/usr/bin/env bash
# train_crop_test.sh - the ImageNet-subset path through the command line: a folder of JPEG and PNG
# pictures of different sizes -> `convert folder --encoded` -> `train --augment resized-crop`
# (the crop taken from the original pictures at decode) with an encoded validation set. The crops
# depend on (seed, epoch, row) only, so 1 and 2 ranks train the same steps (equal losses with
# sync BN), also when the 2 ranks decode on 3 threads each (--decode-threads); the same pictures
# stored raw at the model's size train differently (their crops are crops of the resized picture).
set -u
sn="$1"
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/sncrop.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
/usr/bin/python3 - "$t" <<'PY' || { echo "FAIL: writing the pictures (python3-pil)"; exit 1; }
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(3)
for split, n in (("train", 10), ("val", 3)):
    for c in ("ant", "bee", "cat"):
        d = os.path.join(sys.argv[1], split, c)
        os.makedirs(d)
        for i in range(n):
            h, w = (int(v) for v in rng.integers(40, 121, size=2))
            base = rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, 3)).astype(np.uint8)
            im = Image.fromarray(base).resize((w, h), Image.BILINEAR)
            im.save(os.path.join(d, f"{i}.png" if i % 4 == 3 else f"{i}.jpg"), quality=90)
PY
for s in train val; do
  "$sn" convert folder --root "$t/$s" --out "$t/$s.h5" --encoded --size 32x32 --quiet ||
    die "convert $s --encoded"
done
"$sn" convert folder --root "$t/train" --out "$t/raw.h5" --size 32x32 --quiet || die "convert raw"
common=(--arch resnet18 --width 4 --batch 8 --steps 3 --seed 5 --augment resized-crop --quiet
  --lr 0.05)
loss() { sed -E 's/.*"train_loss": ([0-9.e+-]+).*/\1/' "$1" | tail -1; }
"$sn" train "${common[@]}" --data "$t/train.h5" --val "$t/val.h5" --threads 2 \
  --metrics "$t/m1.jsonl" || die "train, 1 rank"
$mpirun -np 2 "$sn" train "${common[@]}" --data "$t/train.h5" --val "$t/val.h5" --threads 1 \
  --decode-threads 3 --metrics "$t/m2.jsonl" || die "train, 2 ranks"
"$sn" train "${common[@]}" --data "$t/train.h5" --decode-threads 0 2>"$t/err" &&
  die "--decode-threads 0 accepted"
grep -q "decode-threads" "$t/err" || die "--decode-threads 0: $(cat "$t/err")"
"$sn" train "${common[@]}" --data "$t/raw.h5" --threads 2 --metrics "$t/mraw.jsonl" ||
  die "train on the raw form"
/usr/bin/python3 - "$(loss "$t/m1.jsonl")" "$(loss "$t/m2.jsonl")" "$(loss "$t/mraw.jsonl")" \
  "$(sed -E 's/.*"val_acc": ([0-9.]+).*/\1/' "$t/m1.jsonl" | tail -1)" <<'PY' || fail=1
import sys
one, two, raw, val = (float(v) for v in sys.argv[1:])
assert abs(one - two) <= 1e-5 * max(1.0, abs(one)), ("1 rank, 2 x 3 decode threads", one, two)
assert abs(one - raw) > 1e-4, ("crops of the original equal crops of the stored size", one, raw)
assert 0.0 <= val <= 1.0, val
print(f"ok: resized-crop at decode: loss {one:.6f} on 1 rank, {two:.6f} on 2; "
      f"{raw:.6f} from the raw 32x32 copies; val acc {val:.3f}")
PY
exit $fail
