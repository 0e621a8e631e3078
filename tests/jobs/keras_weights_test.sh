#!/usr/bin/env bash
# keras_weights_test.sh - Keras legacy .h5 files from the command line: `train --out-format keras`
# writes a file that Keras' load_weights pairs, layer by layer, with the course's model (checked
# with Keras' own pairing rule against the course's Sequential code on tests/fixtures'
# keras_standins.py), and that `infer` reads back to the same outputs as the native file; a file
# whose layer names differ gets one note line; a shape mismatch in the middle is refused naming
# the layer; `summary` prints Keras' rows. Needs /usr/bin/python3 with h5py and numpy.
set -u
sn="$1"
py=/usr/bin/python3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
t=$(mktemp -d /tmp/snkeras.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
fm=/usr/share/datasets/fashion-mnist
"$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  --out "$t/test.h5" --fashion --quiet || { echo "FAIL: convert"; exit 1; }
tr=(--arch lenet_bn --data "$t/test.h5" --steps 20 --batch 64 --lr 0.05 --quiet --threads 1)
"$sn" train "${tr[@]}" --out "$t/native.h5" || die "train --out (native)"
"$sn" train "${tr[@]}" --out "$t/keras.h5" --out-format keras || die "train --out-format keras"

# Keras 2's legacy load_weights (keras/saving/legacy/hdf5_format.py,
# load_weights_from_hdf5_group): the file's layers with weights, in layer_names order, are paired
# by position with the model's layers with weights; weight counts and shapes must agree.
"$py" - "$t/keras.h5" "$here/tests/fixtures" <<'PY' || die "the Keras file does not pair with the course's model"
import sys
import h5py
sys.path.insert(0, sys.argv[2])
import keras_standins as ks
ks.reset()
model = ks.course_lenet("lenet_bn")
def strs(a):
    return [x.decode() if isinstance(x, bytes) else x for x in a]
with h5py.File(sys.argv[1], "r") as f:
    assert "keras_version" in f.attrs and "backend" in f.attrs, dict(f.attrs)
    names = strs(f.attrs["layer_names"])
    assert names == [l.name for l in model.layers], names
    filtered = [(n, strs(f[n].attrs["weight_names"])) for n in names]
    filtered = [(n, w) for n, w in filtered if len(w)]
    layers = [l for l in model.layers if l.weights]
    assert len(filtered) == len(layers), (len(filtered), len(layers))
    for (n, wn), layer in zip(filtered, layers):
        values = [f[n][w][...] for w in wn]
        assert len(values) == len(layer.weights), n
        for v, (role, shape) in zip(values, layer.weights):
            assert v.shape == shape and v.dtype.name == "float32", (n, role, v.shape, shape)
print("ok: Keras pairs every layer of the written file with the course's LeNet-BN (%d with weights)"
      % len(layers))
PY

inf=(--arch lenet_bn --data "$t/test.h5" --logits --top-k 1 --batch 100 --threads 1)
"$sn" infer "${inf[@]}" --quiet --weights "$t/native.h5" --out "$t/o_native.h5" || die "infer native"
err=$("$sn" infer "${inf[@]}" --weights "$t/keras.h5" --out "$t/o_keras.h5" 2>&1 >/dev/null) \
  || die "infer keras: $err"
grep -q "note: .*layers" <<<"$err" && die "a note for a file whose names agree: $err"
h5diff "$t/o_native.h5" "$t/o_keras.h5" /logits /logits >/dev/null \
  && echo "ok: native and Keras files give the same logits" || die "logits differ"

# Another naming (the classifier called "predictions"): loaded by position, one note line.
"$py" - "$t/keras.h5" "$t/renamed.h5" "$t/shape.h5" <<'PY' || die "could not make variants"
import shutil, sys
import h5py, numpy as np
src, renamed, shape = sys.argv[1:]
shutil.copy(src, renamed)
with h5py.File(renamed, "a") as f:
    names = [n.decode() for n in f.attrs["layer_names"]]
    f.attrs["layer_names"] = np.array([("predictions" if n == "dense_2" else n).encode()
                                       for n in names])
    f.move("dense_2", "predictions")
    g = f["predictions"]
    g.move("dense_2", "predictions")
    g.attrs["weight_names"] = np.array([b"predictions/kernel:0", b"predictions/bias:0"])
shutil.copy(src, shape)
with h5py.File(shape, "a") as f:
    k = f["dense/dense/kernel:0"][...]
    del f["dense/dense/kernel:0"]
    f["dense/dense/kernel:0"] = k[:, :100]
PY
err=$("$sn" infer "${inf[@]}" --weights "$t/renamed.h5" --out "$t/o_renamed.h5" 2>&1 >/dev/null) \
  || die "infer renamed: $err"
notes=$(grep -c "note:" <<<"$err")
if [[ $notes == 1 ]] && grep -q "names of 1 of 7 layers with weights.*(predictions for dense_2).*paired by position" <<<"$err"; then
  echo "ok: one note: $(grep note: <<<"$err")"
else
  die "renamed file: expected one note line, got: $err"
fi
h5diff "$t/o_native.h5" "$t/o_renamed.h5" /logits /logits >/dev/null \
  && echo "ok: the renamed file gives the same logits" || die "renamed file: logits differ"
out=$("$sn" infer "${inf[@]}" --quiet --weights "$t/shape.h5" --out "$t/o_shape.h5" 2>&1); rc=$?
if [[ $rc != 0 && $(wc -l <<<"$out") == 1 ]] && grep -q "shape.h5.*dense/dense/kernel:0.*(784,100).*layer dense kernel (784,120)" <<<"$out"; then
  echo "ok: shape mismatch refused: $out"
else
  die "shape mismatch: exit $rc: $out"
fi

# Options and summary.
"$sn" train "${tr[@]}" --out "$t/x.h5" --out-format onnx >/dev/null 2>&1
[[ $? == 2 ]] && echo "ok: --out-format onnx is a usage error" || die "--out-format onnx accepted"
s=$("$sn" summary --arch lenet_bn)
grep -q "^ conv2d (Conv2D) .*(None, 28, 28, 6) .* 156$" <<<"$s" && grep -q "^ activation_1 (Activation) " <<<"$s" \
  && grep -q "^Total params: 107,874$" <<<"$s" && echo "ok: summary prints Keras' rows" \
  || die "summary: $s"
exit $fail
