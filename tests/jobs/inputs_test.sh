#!/usr/bin/env bash
# inputs_test.sh - the input forms of infer and convert on tiny images: a flat folder with every
# kind of bad image (truncated, zero bytes, not an image, wrong extension, absurd header
# dimensions) under --bad-images fail and skip at 1, 2 and 4 ranks (identical outputs, file
# names in line with rows, /skipped listing each bad file with its reason); class folders and
# --labels-from; a list with labels; several HDF5 files (repeated --data, a glob, a list of
# paths) as one dataset at 1, 2 and 4 ranks; feature maps kept as (N, H, W, C).
set -u
sn=$(realpath "$1")
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/sninputs.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok: $*"; }
cd "$t" || exit 1
/usr/bin/python3 - <<'PY' || { echo "FAIL: fixtures"; exit 1; }
import io, os, struct, zlib
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
def img(h, w, c=3):
    return Image.fromarray(rng.integers(0, 256, (h, w, c), dtype=np.uint8).squeeze())
os.makedirs("flat")
for i in range(6):  # good: JPEG (upper-case extension), PNG, greyscale, RGBA
    img(30 + i, 40).save("flat/img%d.JPG" % i, quality=90)
img(25, 25, 1).save("flat/grey.png"); img(20, 30, 4).save("flat/rgba.png")
open("flat/trunc.jpg", "wb").write(open("flat/img1.JPG", "rb").read()[:300])
open("flat/zero.png", "wb").write(b"")
open("flat/text.jpg", "wb").write(b"hello, not an image\n")
open("flat/gif.jpeg", "wb").write(b"GIF89a" + bytes(40))  # an extension that lies, unsupported data
def ch(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
open("flat/bomb.png", "wb").write(b"\x89PNG\r\n\x1a\n" + ch(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                                   + ch(b"IDAT", zlib.compress(bytes(100))) + ch(b"IEND", b""))
img(20, 20).save("flat/png_named.jpg", format="PNG")  # wrong extension, valid PNG: decoded by content
for c in ("cat", "dog"):  # class folders, one nested level inside a class
    os.makedirs("tree/%s/more" % c)
    for i in range(3):
        img(28, 28).save("tree/%s/%d.png" % (c, i))
    img(28, 28).save("tree/%s/more/x.jpg" % c)
with open("list.txt", "w") as f:  # a list with a label column, paths relative to the list
    for i, p in enumerate(["flat/img0.JPG", "tree/dog/1.png", "flat/grey.png"]):
        f.write("%s %d\n" % (p, 2 - i))
PY
L=(--arch lenet --input 28x28x1 --quiet --threads 1 --batch 3)
# feature maps at 224x224: a row is 56x56x16 floats, so an output chunk holds 5 rows and the
# ranks take chunks in turn (rank 1 of 2 gets rows 5-9, ...): every rank has work
W=(--arch lenet --input 224x224x1 --quiet --threads 1 --batch 3 --no-top --pooling none --features)
same() { # file file: every dataset and the root attributes but the run's own ones equal
  /usr/bin/python3 - "$@" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
names2 = []
b.visit(lambda n: names2.append(n) if isinstance(b[n], h5py.Dataset) else None)
assert sorted(names) == sorted(names2), (names, names2)
for n in names:
    assert a[n].shape == b[n].shape and np.array_equal(a[n][()], b[n][()]), n
PY
}
# ---------------------------------------------------------------- a folder with bad images
good="grey.png img0.JPG img1.JPG img2.JPG img3.JPG img4.JPG img5.JPG png_named.jpg rgba.png"
badf="bomb.png gif.jpeg text.jpg trunc.jpg zero.png"
not_complete() { # no output, or one without complete = 1 (never mistaken for a finished one)
  [[ ! -f "$1" ]] || /usr/bin/python3 -c "import h5py, sys; sys.exit(int(h5py.File(sys.argv[1]).attrs.get('complete', 0) == 1))" "$1"
}
out=$("$sn" infer "${L[@]}" --data flat --out fail.h5 2>&1); rc=$?
if [[ $rc -eq 3 ]] && grep -q "file flat/.*--bad-images skip" <<<"$out" && not_complete fail.h5; then
  ok "fail mode: exit 3, names the file and the way to skip"
else
  die "fail mode: exit $rc: $out"
fi
for np_ in 2 4; do # every rank stops with the input code, one line naming a bad file; no output
  out=$(timeout 120 $mpirun -np $np_ "$sn" infer "${W[@]}" --data flat --out "fail$np_.h5" 2>&1); rc=$?
  if [[ $rc -eq 3 ]] && grep -qE "file flat/(bomb.png|gif.jpeg|text.jpg|trunc.jpg|zero.png): .*--bad-images skip" <<<"$out" &&
    [[ $(grep -c "error" <<<"$out") -eq 1 ]] && not_complete "fail$np_.h5"; then
    ok "fail mode at np $np_: exit 3, one line naming a bad file"
  else
    die "fail mode at np $np_: exit $rc: $out"
  fi
done
for np_ in 1 2 4; do
  timeout 120 $mpirun -np $np_ "$sn" infer "${W[@]}" --data flat --bad-images skip --out "skip$np_.h5" ||
    die "skip at np $np_"
done
/usr/bin/python3 - "$good" "$badf" <<'PY' && ok "skip: rows are the good files in order, /skipped the bad ones" || die "skip: rows or /skipped"
import sys, h5py
good, bad = sys.argv[1].split(), sys.argv[2].split()
f = h5py.File("skip1.h5", "r")
names = sorted(good + bad)
assert [x.decode() for x in f["filenames"][:]] == good, f["filenames"][:]
assert f["index"][:].tolist() == [names.index(g) for g in good], f["index"][:]
assert [x.decode() for x in f["skipped/filename"][:]] == bad, f["skipped/filename"][:]
assert f["skipped/index"][:].tolist() == [names.index(b) for b in bad]
why = dict(zip(bad, (x.decode() for x in f["skipped/reason"][:])))
for b, w in [("bomb.png", "60000x60000"), ("zero.png", "empty"), ("text.jpg", "not an image"),
             ("trunc.jpg", "JPEG"), ("gif.jpeg", "")]:
    assert w in why[b] and why[b], (b, why[b])
assert f["features"].shape == (len(good), 56, 56, 16)
assert f.attrs["complete"] == 1 and f.attrs["source_kind"] == "folder"
PY
for np_ in 2 4; do same skip1.h5 "skip$np_.h5" && ok "skip: np $np_ = np 1" || die "skip: np $np_ differs from np 1"; done
# convert the same folder (encoded, skipping) and infer from the file: same predictions, names
"$sn" convert folder --root flat --encoded --bad-images skip --out flat.h5 --quiet || die "convert folder skip"
"$sn" infer "${W[@]}" --data flat.h5 --out fromh5.h5 || die "infer from converted folder"
/usr/bin/python3 - <<'PY' && ok "convert --encoded --bad-images skip, then infer: same rows and names" || die "converted folder"
import h5py, numpy as np
a, b, c = h5py.File("skip1.h5"), h5py.File("fromh5.h5"), h5py.File("flat.h5")
assert c["skipped/filename"].shape == (5,)
assert np.array_equal(a["filenames"][:], b["filenames"][:])
assert np.array_equal(a["features"][:], b["features"][:])
PY
# ---------------------------------------------------------------- class folders and lists
"$sn" convert folder --root tree --size 28x28 --channels 1 --out tree.h5 --quiet || die "convert tree"
"$sn" convert folder --root tree --size 28x28 --channels 1 --labels-from none --out tree_none.h5 --quiet || die "convert tree none"
"$sn" convert list --list list.txt --size 28x28 --channels 1 --out list.h5 --quiet || die "convert list"
/usr/bin/python3 - <<'PY' && ok "class folders, --labels-from none, a list with labels" || die "folders / list labels"
import h5py
f = h5py.File("tree.h5")
assert [x.decode() for x in f["classes"][:]] == ["cat", "dog"]
assert f["labels"][:].tolist() == [0] * 4 + [1] * 4, f["labels"][:]
assert [x.decode() for x in f["filenames"][:]][:4] == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/more/x.jpg"]
g = h5py.File("tree_none.h5")
assert "labels" not in g and g["images"].shape == (8, 28, 28, 1) and g.attrs["labels_from"] == "none"
h = h5py.File("list.h5")
assert h["labels"][:].tolist() == [2, 1, 0] and h["images"].shape == (3, 28, 28, 1)
PY
out=$("$sn" infer "${L[@]}" --data list.txt --out list_out.h5 2>&1) && [[ -f list_out.h5 ]] &&
  ok "infer --data a list" || die "infer --data list: $out"
# ---------------------------------------------------------------- formats Pillow reads
# EXIF orientations 1-8, progressive, greyscale and CMYK JPEG, palette, 16-bit and alpha PNG:
# decoded at their own size (24x32 once oriented) they equal Pillow's exif_transpose + RGB
/usr/bin/python3 - <<'PY' || die "format fixtures"
import os, numpy as np
from PIL import Image
os.makedirs("fmt")
rng = np.random.default_rng(7)
base = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
inv = {1: None, 2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM,
       5: Image.TRANSPOSE, 6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}
for o, op in inv.items():  # stored so that exif_transpose gives a 24x32 image back
    im = base if op is None else base.transpose(op)
    ex = Image.Exif(); ex[0x0112] = o
    im.save("fmt/exif%d.jpg" % o, quality=90, exif=ex.tobytes())
base.save("fmt/prog.jpg", quality=90, progressive=True)
base.convert("L").save("fmt/grey.jpg", quality=90)
base.convert("CMYK").save("fmt/cmyk.jpg", quality=90)
base.convert("P", palette=Image.ADAPTIVE, colors=16).save("fmt/palette.png")
Image.fromarray((rng.integers(0, 65536, (24, 32))).astype(np.uint16)).save("fmt/grey16.png")
base.convert("RGBA").save("fmt/alpha.png")
PY
"$sn" convert folder --root fmt --labels-from none --size 24x32 --out fmt.h5 --quiet || die "convert formats"
/usr/bin/python3 - <<'PY' && ok "EXIF orientations, progressive, grey, CMYK, palette, 16-bit, alpha = Pillow" || die "formats differ from Pillow"
import h5py, numpy as np
from PIL import Image, ImageOps
f = h5py.File("fmt.h5")
for name, got in zip(f["filenames"][:], f["images"][:]):
    im = ImageOps.exif_transpose(Image.open("fmt/" + name.decode()))
    if im.mode == "I;16" or im.mode == "I":  # 16-bit: the high byte, as libpng's strip
        want = np.repeat((np.asarray(im).astype(np.uint32) >> 8).astype(np.uint8)[..., None], 3, 2)
    else:
        want = np.asarray(im.convert("RGB"))
    assert want.shape == got.shape, (name, want.shape, got.shape)
    assert np.abs(want.astype(int) - got).max() == 0, (name, np.abs(want.astype(int) - got).max())
PY
# ---------------------------------------------------------------- several HDF5 files
/usr/bin/python3 - <<'PY' || die "multi-file fixtures"
import h5py, numpy as np
rng = np.random.default_rng(5)
x = rng.integers(0, 256, (23, 224, 224, 1), dtype=np.uint8); y = (np.arange(23) % 10).astype(np.int32)
with h5py.File("all.h5", "w") as f:
    f["images"] = x; f["labels"] = y
for k, (b, e) in enumerate([(0, 7), (7, 8), (8, 23)]):
    with h5py.File("part%d.h5" % k, "w") as f:
        f["images"] = x[b:e]; f["labels"] = y[b:e]
open("parts.txt", "w").write("part0.h5\npart1.h5\npart2.h5\n")
lay = h5py.VirtualLayout(shape=x.shape, dtype=np.uint8)  # an HDF5 virtual dataset of the parts
for k, (b, e) in enumerate([(0, 7), (7, 8), (8, 23)]):
    lay[b:e] = h5py.VirtualSource("part%d.h5" % k, "images", shape=(e - b,) + x.shape[1:])
with h5py.File("virtual.h5", "w") as f:
    f.create_virtual_dataset("images", lay)
PY
"$sn" infer "${W[@]}" --data all.h5 --out one.h5 || die "infer one file"
for np_ in 1 2 4; do
  timeout 120 $mpirun -np $np_ "$sn" infer "${W[@]}" --data part0.h5 --data part1.h5 --data part2.h5 \
    --out "rep$np_.h5" || die "repeated --data at np $np_"
done
"$sn" infer "${W[@]}" --data 'part*.h5' --out glob.h5 || die "glob --data"
"$sn" infer "${W[@]}" --data parts.txt --out listed.h5 || die "list of HDF5 files"
"$sn" infer "${W[@]}" --data virtual.h5 --out virtual_out.h5 || die "virtual dataset"
/usr/bin/python3 - <<'PY' && ok "three files = one file: repeated (np 1, 2, 4), glob, list; a virtual dataset" || die "multi-file outputs"
import h5py, numpy as np
a = h5py.File("one.h5")
for p in ["rep1.h5", "rep2.h5", "rep4.h5", "glob.h5", "listed.h5"]:
    b = h5py.File(p)
    for n in ["features", "index"]:
        assert np.array_equal(a[n][:], b[n][:]), (p, n)
    assert b["index"][:].tolist() == list(range(23))
    assert b["sources/path"].shape == (3,) and b["sources/rows"][:].tolist() == [7, 1, 15], p
assert np.array_equal(a["features"][:], h5py.File("virtual_out.h5")["features"][:])
PY
# ---------------------------------------------------------------- feature maps keep their shape
for dt in f32 f16; do
  "$sn" infer "${W[@]}" --features-dtype $dt --data all.h5 --out "fm_$dt.h5" ||
    die "feature maps $dt"
done
/usr/bin/python3 - <<'PY' && ok "--pooling none: /features (N, H, W, C) in f32 and f16" || die "feature map shape"
import h5py, numpy as np
a, b = h5py.File("fm_f32.h5"), h5py.File("fm_f16.h5")
s = a["features"].shape
assert s == (23, 56, 56, 16) and a["features"].dtype == np.float32, s
assert b["features"].shape == s and b["features"].dtype == np.float16
assert np.allclose(a["features"][:], b["features"][:].astype(np.float32), rtol=1e-3, atol=1e-3)
PY
exit $fail
