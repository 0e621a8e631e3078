#!/usr/bin/env bash
# bad_input_test.sh - malformed inputs to every subcommand (summary, convert, infer, train),
# serial and under `mpirun -np 2` with only one rank's part bad. Every case must end with
#   * a non-zero exit status that is not a signal (1..127; 124 = our timeout = a hang),
#   * exactly one line on stderr, starting "shardnet: " and naming the file/dataset/layer,
#   * no core file,
#   * no output that looks finished: infer outputs without the root attribute complete = 1,
#     train --out / convert --out files (and OUT.partial) absent, a pre-existing output unchanged.
# MPI cases must name the failing rank ("rank 1") and finish within `timeout 120`.
# Cases complementary to tests/jobs/infer_test.sh and train_test.sh (which already check, for
# infer: missing --data, non-HDF5 bytes, output = input, a complete output without --force, a wrong
# --input, a junk weights file, /images of rank 3, no /images, NaN with --preprocess none, a
# /labels length mismatch; for train: a diverging loss).
# Usage: bash tests/jobs/bad_input_test.sh path/to/shardnet   (about 1 minute on 2 busy cores)
# Cases that need /usr/bin/python3 with h5py, numpy and PIL are skipped with a notice without them.
set -u
sn="$(realpath "${1:?usage: $0 path/to/shardnet}")"
py=/usr/bin/python3
mpirun=(mpirun --allow-run-as-root --oversubscribe -q)
t="$(mktemp -d /tmp/snbad.XXXXXX)"
trap 'rm -rf "$t"' EXIT
cd "$t" || exit 1
ulimit -c 102400 2>/dev/null || true # core files (core_pattern permitting) would land in $t
# Cases that must fail cleanly on absurd sizes run under a 4 GB address-space cap. Under
# jobs/sanitize.sh (SN_SANITIZED) "ulimit -v" makes every ASan process fail at start (its shadow
# memory needs terabytes of address space); there ASan's allocator_may_return_null=1 refuses the
# absurd allocations instead, so the same error paths still run.
if [[ -n "${SN_SANITIZED:-}" ]]; then memcap=(); else memcap=(bash -c 'ulimit -v 4000000; exec "$@"' _); fi
export SN_PROGRESS=0 OMP_WAIT_POLICY=passive
fail=0 npass=0 nfail=0 nskip=0
failed=()

# check NAME PATTERN OUTKIND OUTPATH -- COMMAND...
#   PATTERN: extended regex the one stderr line must contain (file, dataset, layer, rank)
#   OUTKIND: infer (OUTPATH may exist but without complete = 1), absent (OUTPATH and
#            OUTPATH.partial must not exist), same (OUTPATH must keep its md5), none
#   want_rc (variable, optional): the exact exit status required (reset after each case)
want_rc=""
check() {
  local name="$1" pat="$2" kind="$3" outp="$4"
  shift 5
  local before=""
  [[ $kind == same ]] && before="$(md5sum <"$outp")"
  local t0=$SECONDS
  "$@" >"$t/stdout" 2>"$t/stderr"
  local rc=$? why=""
  local lines
  lines=$(wc -l <"$t/stderr")
  local first
  first="$(head -1 "$t/stderr")"
  if ((rc == 0)); then why="exit 0"
  elif ((rc == 124)); then why="timed out (hang)"
  elif ((rc >= 128)); then why="exit $rc (signal $((rc - 128)))"
  fi
  [[ -z $why && -n $want_rc && $rc -ne $want_rc ]] && why="exit $rc, expected $want_rc"
  want_rc=""
  [[ -z $why && $lines -ne 1 ]] && why="$lines lines on stderr"
  [[ -z $why && $first != "shardnet: "* ]] && why="stderr does not start with 'shardnet: '"
  [[ -z $why ]] && ! grep -qE -- "$pat" <<<"$first" && why="message does not match /$pat/"
  local cores
  cores="$(find "$t" -maxdepth 2 -name 'core*' -type f 2>/dev/null | head -3)"
  if [[ -n $cores ]]; then
    why="${why:+$why; }core file $cores"
    rm -f $cores
  fi
  case "$kind" in
  infer)
    if [[ -f $outp ]] && h5dump -a /complete "$outp" 2>/dev/null | grep -q "(0): 1"; then
      why="${why:+$why; }$outp has complete = 1"
    fi
    ;;
  absent)
    [[ -e $outp ]] && why="${why:+$why; }$outp exists"
    [[ -e $outp.partial ]] && why="${why:+$why; }$outp.partial exists"
    ;;
  same)
    [[ "$(md5sum <"$outp")" != "$before" ]] && why="${why:+$why; }$outp was changed"
    ;;
  esac
  if [[ -z $why ]]; then
    printf 'ok   %-58s exit %3d %3ds  %s\n' "$name" "$rc" $((SECONDS - t0)) "$first"
    npass=$((npass + 1))
  else
    printf 'FAIL %-58s exit %3d %3ds  %s\n' "$name" "$rc" $((SECONDS - t0)) "$why"
    sed 's/^/       stderr: /' "$t/stderr" | head -6
    fail=1 nfail=$((nfail + 1))
    failed+=("$name")
  fi
  [[ $kind == infer || $kind == absent ]] && rm -rf "$outp" "$outp.partial"
  return 0
}
# repeat N OUT CMD...: runs CMD up to N times (removing OUT between runs); stops at the first run
# with other than one line on stderr or a status outside 1..127, and passes on that run's stderr
# and status (else the last run's). For failures raced by the prefetching reader thread.
repeat() {
  local n="$1" o="$2" i rc=0
  shift 2
  for ((i = 1; i <= n; ++i)); do
    rm -rf "$o" "$o.partial"
    "$@" >/dev/null 2>"$t/repeat.err"
    rc=$?
    if [[ $(wc -l <"$t/repeat.err") -ne 1 ]] || ((rc == 0 || rc >= 124)); then
      echo "(run $i of $n)" >>"$t/repeat.err"
      break
    fi
  done
  cat "$t/repeat.err" >&2
  return $rc
}
skip() {
  printf 'skip %-58s %s\n' "$1" "$2"
  nskip=$((nskip + 1))
}

# ---------------------------------------------------------------- inputs made without Python
mkdir -p "$t/adir"
: >"$t/empty.h5"
printf 'plain text, not a checkpoint\n' >"$t/text.txt"
have_py=0
"$py" -c 'import h5py, numpy, PIL' 2>/dev/null && have_py=1

# ---------------------------------------------------------------- inputs crafted with h5py/numpy/PIL
if ((have_py)); then
  "$py" - "$t" <<'PY' || { echo "FAIL: could not craft the inputs"; exit 1; }
import gzip, io, os, shutil, struct, sys
import h5py, numpy as np
from PIL import Image

t = sys.argv[1]
os.chdir(t)
rng = np.random.default_rng(7)
N = 64
img = rng.integers(0, 256, (N, 28, 28, 1), dtype=np.uint8)
lab = (np.arange(N) % 10).astype(np.int32)

def ds(name, images=None, labels=None, classes=None, **kw):
    with h5py.File(name, "w") as f:
        if images is not None:
            f.create_dataset("images", data=images, **kw)
        if labels is not None:
            f["labels"] = labels
        if classes is not None:
            f["classes"] = np.array(classes, dtype="S")

ds("good.h5", img, lab)                                       # the valid reference dataset
ds("val32.h5", rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8), lab[:8])
with open("good.h5", "rb") as f:
    b = f.read()
with open("trunc.h5", "wb") as f:                             # a valid file cut in half
    f.write(b[: len(b) // 2])
ds("rank5.h5", img.reshape(N, 28, 28, 1, 1), lab)
ds("rank3.h5", img.reshape(N, 28, 28), lab)
ds("int16.h5", img.astype(np.int16), lab)
ds("f64.h5", img.astype(np.float64), lab)
ds("zero.h5", np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0, np.int32))
with h5py.File("absurd.h5", "w") as f:                        # 1e9 rows declared, one chunk stored
    d = f.create_dataset("images", shape=(10**9, 28, 28, 1), dtype=np.uint8, chunks=(1, 28, 28, 1))
    d[0] = img[0]
ds("lablen.h5", img, lab[:50])
ds("labfloat.h5", img, lab.astype(np.float32))
neg = lab.copy(); neg[5] = -1
ds("labneg.h5", img, neg)
big = lab.copy(); big[7] = 12
ds("labclasses.h5", img, big, classes=["a", "b", "c"])
ds("nolabels.h5", img)
with h5py.File("absurd_labels.h5", "w") as f:                 # the same with 1e9 /labels
    f.create_dataset("images", shape=(10**9, 28, 28, 1), dtype=np.uint8, chunks=(1, 28, 28, 1))
    f.create_dataset("labels", shape=(10**9,), dtype=np.int32, chunks=(1024,))
ds("small8.h5", img[:8])
ds("noimages.h5", None, lab)
x = img.astype(np.float32) / 255; x[3, 10, 10, 0] = np.nan
ds("nan_train.h5", x, lab)
x = img.astype(np.float32) / 255; x[2, 0, 0, 0] = np.inf
ds("inf.h5", x, lab)
# MPI: bad rows only in rank 1's half (rows 32..63 with 2 ranks, --shuffle off, --batch 64)
x = img.astype(np.float32) / 255; x[60, 5, 5, 0] = np.nan
ds("nan_rank1.h5", x, lab)
# 128 rows, NaN in row 12: with --batch 16 --shuffle off rank 1 (rows 8-15 of each step) fails at
# step 1 while both ranks' reader threads prefetch the next steps
img2 = np.concatenate([img, img]); x = img2.astype(np.float32) / 255; x[12, 5, 5, 0] = np.nan
ds("nan_rank1_steps.h5", x, np.concatenate([lab, lab]))
# infer splits rows by output chunks (1 MiB of the widest output row): with lenet --no-top
# --pooling none at 224x224 a row is 56x56x16 floats, 5 rows a chunk, and the ranks take chunks in
# turn, so of 16 rows rank 1 gets 5-9 and 15
x = np.random.default_rng(3).random((16, 224, 224, 1), dtype=np.float32); x[7, 7, 7, 0] = np.nan
ds("nan_rank1_224.h5", x)
# validation set whose rank-1 block holds a label the 10-class model cannot have (12 names)
vl = lab.copy(); vl[63] = 11
ds("val_badlab.h5", img, vl, classes=[str(i) for i in range(12)])

# encoded datasets: 16 small JPEGs; enc_bad_rank1.h5 has the corrupt one in rank 1's rows 5-9
def jpeg(seed):
    a = np.random.default_rng(seed).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    bio = io.BytesIO(); Image.fromarray(a).save(bio, "JPEG", quality=90); return bio.getvalue()
jp = [jpeg(i) for i in range(16)]
def corrupt(j):
    j = bytearray(j)
    return bytes(j[: len(j) // 3])  # valid header, truncated scan: "premature end"
def enc(name, files, offsets=True, stretch=0, attrs=True):
    off = np.cumsum([0] + [len(j) for j in files]).astype(np.int64)
    off[-1] += stretch
    with h5py.File(name, "w") as f:
        e = f.create_dataset("encoded", data=np.frombuffer(b"".join(files), np.uint8))
        if attrs:
            e.attrs["height"] = 28; e.attrs["width"] = 28; e.attrs["channels"] = 3
        if offsets:
            f["offsets"] = off
        f["labels"] = (np.arange(len(files)) % 2).astype(np.int32)
# decompression bombs: headers declaring 60000x60000 (PNG) and 65000x65000 (JPEG) pixels
import zlib
def pngchunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
bomb_png = (b"\x89PNG\r\n\x1a\n" + pngchunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
            + pngchunk(b"IDAT", zlib.compress(bytes(100))) + pngchunk(b"IEND", b""))
bomb_jpg = bytearray(jp[0]); i = bomb_jpg.find(b"\xff\xc0")
bomb_jpg[i + 5:i + 9] = struct.pack(">HH", 65000, 65000)
enc("enc_bomb_png.h5", jp[:3] + [bomb_png])
enc("enc_bomb_jpg.h5", jp[:3] + [bytes(bomb_jpg)])
bad1 = list(jp); bad1[7] = corrupt(bad1[7])
enc("enc_bad_rank1.h5", bad1)
bad = list(jp); bad[13] = corrupt(bad[13])
enc("enc_bad.h5", bad)
enc("enc_nooffsets.h5", jp, offsets=False)
enc("enc_offsets_past.h5", jp, stretch=1000)

# weights: valid native lenet weights are made by the test with `train --out`; variants later.
# old Keras (<= 2.2) ResNet50 layer names in a Keras legacy file
with h5py.File("oldkeras.h5", "w") as f:
    names = ["input_1", "conv1", "bn_conv1", "res2a_branch2a"]
    f.attrs["layer_names"] = np.array(names, dtype="S")
    for n in names:
        g = f.create_group(n)
        g.attrs["weight_names"] = np.array([], dtype="S") if n == "input_1" else \
            np.array([n + "/kernel:0"], dtype="S")
        if n != "input_1":
            g.create_group(n)["kernel:0"] = np.zeros((1, 1, 3, 4), np.float32)
with h5py.File("unknown_layout.h5", "w") as f:                # HDF5, but not a weights layout
    f["something"] = np.zeros(3, np.float32)

# idx files (big-endian header: magic, dims)
def idx(name, magic, dims, payload, gz=True):
    hdr = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    data = hdr + payload
    if gz:
        data = gzip.compress(data)
    with open(name, "wb") as f:
        f.write(data)
pix = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8).tobytes()
labs = (np.arange(20) % 10).astype(np.uint8).tobytes()
idx("img.gz", 0x803, (20, 28, 28), pix)
idx("lab.gz", 0x801, (20,), labs)
idx("img_magic.gz", 0x802, (20, 28, 28), pix)                 # wrong magic
idx("lab_19.gz", 0x801, (19,), labs[:19])                     # 19 labels for 20 images
idx("lab_ten.gz", 0x801, (20,), labs[:19] + b"\x0a")          # label 10
# a plain idx header declaring 2^31 - 1 images (1.7 TB) in a 1 KB file
with open("img_huge", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, 2**31 - 1, 28, 28) + bytes(1000))
with open("img.gz", "rb") as f:
    g = f.read()
with open("img_trunc.gz", "wb") as f:                         # gzip stream cut in half
    f.write(g[: len(g) // 2])
with open("img_notgz.gz", "wb") as f:                         # .gz name, random bytes
    f.write(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())

# image folders
def png(path, seed):
    a = np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(a).save(path, "PNG")
def folder(root, spec):  # spec: {class: [(name, bytes or None for a PNG)]}
    for c, files in spec.items():
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i, (n, data) in enumerate(files):
            p = os.path.join(root, c, n)
            if data is None:
                png(p, hash((root, c, n)) & 0xFFFF)
            else:
                with open(p, "wb") as f:
                    f.write(data)
folder("f_badjpeg", {"a": [("0.png", None), ("1.png", None)], "b": [("0.jpg", corrupt(jp[0])), ("1.png", None)]})
folder("f_zeropng", {"a": [("0.png", None), ("1.png", b"")], "b": [("0.png", None)]})
folder("f_emptyclass", {"a": [("0.png", None)], "b": []})
# MPI convert: 70 images, the corrupt JPEG 69th (at 300x300 the ranks take slabs of 66 images in
# turn: rank 1 converts rows 66-69)
folder("f_rank1", {"a": [("%02d.png" % i, None) for i in range(40)],
                   "b": [("%02d.png" % i, None) for i in range(28)] + [("28.jpg", corrupt(jp[1])), ("29.png", None)]})
PY
fi

# ---------------------------------------------------------------- summary
# 1: absurd --input: a 100000x100000x3 activation cannot be planned
check "summary: --input 100000x100000x3" "100000|input|too large|overflow" none - -- \
  timeout 60 "$sn" summary --arch resnet18 --input 100000x100000x3
# 2: an input too small for the network's pooling
check "summary: lenet --input 1x1x1 (too small)" "lenet.*1x1x1" none - -- \
  timeout 60 "$sn" summary --arch lenet --input 1x1x1
# 3: an absurd width: 2.4e11 parameters
check "summary: resnet152 --width 4096" "resnet152" none - -- \
  timeout 60 "$sn" summary --arch resnet152 --width 4096

# ---------------------------------------------------------------- convert
if ((have_py)); then
  # 4: idx images with a wrong magic number
  check "convert idx: wrong magic" "img_magic.gz" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert idx --images img_magic.gz --labels lab.gz --out "$t/c.h5" --quiet
  # 5: idx gzip stream cut in half
  check "convert idx: truncated .gz" "img_trunc.gz" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert idx --images img_trunc.gz --labels lab.gz --out "$t/c.h5" --quiet
  # 6: random bytes named .gz
  check "convert idx: not gzip, not idx" "img_notgz.gz" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert idx --images img_notgz.gz --labels lab.gz --out "$t/c.h5" --quiet
  # 7: 20 images, 19 labels
  check "convert idx: images/labels count mismatch" "lab_19.gz|img.gz" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert idx --images img.gz --labels lab_19.gz --out "$t/c.h5" --quiet
  # 8: label 10 in an MNIST-style file
  check "convert idx: label 10" "lab_ten.gz" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert idx --images img.gz --labels lab_ten.gz --out "$t/c.h5" --quiet
  # 9: output path = an input path (with --force the input would be replaced)
  cp lab.gz lab_copy.gz
  check "convert idx: --out = --labels (with --force)" "lab_copy.gz" same "$t/lab_copy.gz" -- \
    timeout 60 "$sn" convert idx --images img.gz --labels lab_copy.gz --out lab_copy.gz --force --quiet
  # 10: existing output without --force: refused, left unchanged
  cp good.h5 existing.h5
  check "convert idx: existing output without --force" "existing.h5" same "$t/existing.h5" -- \
    timeout 60 "$sn" convert idx --images img.gz --labels lab.gz --out existing.h5 --quiet
  # 11: an idx header declaring far more data than the (plain) file holds: refused as an input
  #     error (exit 3) before 1.7 TB is reserved, not an out-of-memory failure
  want_rc=3
  check "convert idx: header declares 2^31-1 images (1 KB file)" "img_huge" absent "$t/c.h5" -- \
    ${memcap[@]+"${memcap[@]}"} timeout 60 "$sn" convert idx --images img_huge --labels lab.gz --out "$t/c.h5" --quiet
  # 12: missing idx file
  check "convert idx: --images missing" "nothere.gz" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert idx --images nothere.gz --labels lab.gz --out "$t/c.h5" --quiet
  # 13: folder, raw: a truncated JPEG
  check "convert folder: corrupt JPEG (raw)" "0.jpg" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert folder --root f_badjpeg --size 16x16 --out "$t/c.h5" --quiet
  # 14: folder, encoded: a zero-byte PNG
  check "convert folder --encoded: zero-byte PNG" "1.png" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert folder --root f_zeropng --encoded --size 16x16 --out "$t/c.h5" --quiet
  # 15: folder, raw: a zero-byte PNG
  check "convert folder: zero-byte PNG (raw)" "1.png" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert folder --root f_zeropng --size 16x16 --out "$t/c.h5" --quiet
  # 16: a class folder without images
  check "convert folder: class without images" "f_emptyclass|/b" absent "$t/c.h5" -- \
    timeout 60 "$sn" convert folder --root f_emptyclass --size 16x16 --out "$t/c.h5" --quiet
else
  skip "convert idx/folder cases (4-16)" "no h5py/numpy/PIL in $py"
fi
# 17: --root does not exist
check "convert folder: --root missing" "noroot" absent "$t/c.h5" -- \
  timeout 60 "$sn" convert folder --root "$t/noroot" --out "$t/c.h5" --quiet
# 18: --root is a regular file
check "convert folder: --root is a file" "text.txt" absent "$t/c.h5" -- \
  timeout 60 "$sn" convert folder --root "$t/text.txt" --out "$t/c.h5" --quiet

# ---------------------------------------------------------------- infer
L=(--arch lenet --quiet --threads 1)
# 19: --data is a directory
check "infer: --data is a directory" "adir" infer "$t/o.h5" -- \
  timeout 60 "$sn" infer "${L[@]}" --data "$t/adir" --out "$t/o.h5"
# 20: --data is an empty file
check "infer: --data is an empty file" "empty.h5" infer "$t/o.h5" -- \
  timeout 60 "$sn" infer "${L[@]}" --data "$t/empty.h5" --out "$t/o.h5"
if ((have_py)); then
  # 21: the first half of a valid HDF5 file
  check "infer: truncated HDF5" "trunc.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data trunc.h5 --out "$t/o.h5"
  # 22: /images of rank 5
  check "infer: /images rank 5" "rank5.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data rank5.h5 --out "$t/o.h5"
  # 23: /images int16
  check "infer: /images int16" "int16.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data int16.h5 --out "$t/o.h5"
  # 24: /images float64
  check "infer: /images float64" "f64.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data f64.h5 --out "$t/o.h5"
  # 25: zero rows
  check "infer: zero rows" "zero.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data zero.h5 --out "$t/o.h5"
  # 26: 1e9 x 28 x 28 x 1 declared with one stored chunk. Must be refused as an input error (exit
  #     3) naming the file; a 4 GB address-space limit keeps a run that accepts it from eating the
  #     shared machine's memory (unlimited, it grows past 9 GB and writes a 1 GB output).
  want_rc=3
  check "infer: absurd dims 1e9x28x28x1 (tiny chunked file)" "absurd.h5" infer "$t/o.h5" -- \
    ${memcap[@]+"${memcap[@]}"} timeout 60 "$sn" infer "${L[@]}" --data absurd.h5 --out "$t/o.h5"
  # 27: label 12 with 3 names in /classes
  check "infer: label outside /classes" "labclasses.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data labclasses.h5 --out "$t/o.h5"
  # 28: +inf in float32 images with --preprocess none
  check "infer: +inf in float32 images (--preprocess none)" "inf.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data inf.h5 --out "$t/o.h5" --preprocess none
  # 29: the same 40 times: the error is found while the reader thread prefetches the next batches
  #    (the process must not exit with that thread inside HDF5)
  check "infer: +inf, 40 runs (reader thread prefetching)" "inf.h5" infer "$t/o.h5" -- \
    repeat 40 "$t/o.h5" timeout 60 "$sn" infer "${L[@]}" --data inf.h5 --out "$t/o.h5" --preprocess none --batch 8
  # 30: encoded dataset without /offsets
  check "infer: encoded without /offsets" "enc_nooffsets.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --input 28x28x3 --data enc_nooffsets.h5 --out "$t/o.h5"
  # 31: encoded dataset whose /offsets end past /encoded
  check "infer: /offsets past the end of /encoded" "enc_offsets_past.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --input 28x28x3 --data enc_offsets_past.h5 --out "$t/o.h5"
  # 32: PNG header of 60000x60000 pixels (refused before decoding)
  check "infer: PNG bomb 60000x60000 in an encoded dataset" "enc_bomb_png.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --input 28x28x3 --data enc_bomb_png.h5 --out "$t/o.h5"
  # 33: JPEG header of 65000x65000 pixels
  check "infer: JPEG bomb 65000x65000 in an encoded dataset" "enc_bomb_jpg.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --input 28x28x3 --data enc_bomb_jpg.h5 --out "$t/o.h5"
  # 34: a truncated JPEG inside an encoded dataset
  check "infer: corrupt JPEG in an encoded dataset" "enc_bad.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --input 28x28x3 --data enc_bad.h5 --out "$t/o.h5"
  # 35: output = input through a symbolic link, with --force
  ln -sf good.h5 "$t/alias.h5"
  cp good.h5 good_keep.h5
  check "infer: --out = --data via a symlink (--force)" "alias.h5|good.h5" same "$t/good.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --out "$t/alias.h5" --force
  cmp -s good.h5 good_keep.h5 || cp good_keep.h5 good.h5
  # 36: --out is a directory (with --force)
  mkdir -p "$t/odir"
  check "infer: --out is a directory (--force)" "odir" none - -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --out "$t/odir" --force
  # 37: --labels file missing (checked before the output is created)
  check "infer: --labels file missing" "nolabels.txt" absent "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --out "$t/o.h5" --labels nolabels.txt
  # incomplete output of good.h5 (rows 40.. not done, no complete attribute) for the --resume cases
  timeout 60 "$sn" infer "${L[@]}" --data good.h5 --out "$t/inc.h5" || echo "FAIL: could not make an output"
  "$py" -c 'import h5py, sys
with h5py.File(sys.argv[1], "a") as f:
    del f.attrs["complete"]; f["done"][40:] = 0' "$t/inc.h5"
  head -c 3000 "$t/inc.h5" >"$t/inc_trunc.h5"
  # 38: --resume an output made for a dataset of another length
  check "infer --resume: output of another dataset" "inc.h5" infer "$t/inc.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data small8.h5 --out "$t/inc.h5" --resume
  # 39: --resume a truncated output
  check "infer --resume: truncated output" "inc_trunc.h5" infer "$t/inc_trunc.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --out "$t/inc_trunc.h5" --resume

  # weights: a valid native file, then broken copies
  "$sn" train --arch lenet --data good.h5 --steps 1 --batch 16 --quiet --threads 1 --out w.h5 \
    --checkpoint ck_lenet.h5 || { echo "FAIL: could not make reference weights"; exit 1; }
  "$sn" train --arch lenet_bn --data good.h5 --steps 1 --batch 16 --quiet --threads 1 \
    --checkpoint ck_lenet_bn.h5 || { echo "FAIL: could not make a lenet_bn checkpoint"; exit 1; }
  cp w.h5 w_nokey.h5 && cp w.h5 w_shape.h5
  "$py" - <<'PY'
import h5py, numpy as np
with h5py.File("w_nokey.h5", "a") as f:
    del f["params/conv2d_1/bias"]
with h5py.File("w_shape.h5", "a") as f:
    k = f["params/dense_1/kernel"][...]
    del f["params/dense_1/kernel"]
    f["params/dense_1/kernel"] = k[:, :80]
PY
  head -c $(($(stat -c %s ck_lenet.h5) / 2)) ck_lenet.h5 >ck_trunc.h5
  # 40: native weights with a key deleted
  check "infer --weights: a key missing" "w_nokey.h5.*conv2d_1|conv2d_1.*w_nokey.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --weights w_nokey.h5 --out "$t/o.h5"
  # 41: native weights with a wrong shape
  check "infer --weights: a wrong shape" "w_shape.h5.*dense_1|dense_1.*w_shape.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --weights w_shape.h5 --out "$t/o.h5"
  # 42: Keras <= 2.2.4 ResNet50 layer names into the current Keras ResNet50: the arch it fits
  check "infer --weights: old Keras (<= 2.2.4) layer names" "oldkeras.h5.*bn_conv1.*keras_resnet50_v02" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer --arch keras_resnet50 --width 4 --input 32x32x3 --quiet --threads 1 \
    --data enc_bad.h5 --weights oldkeras.h5 --out "$t/o.h5"
  # 43: an HDF5 file in no weights layout
  check "infer --weights: unrecognised layout" "unknown_layout.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --weights unknown_layout.h5 --out "$t/o.h5"
  # 44: a training checkpoint given as weights
  check "infer --weights: a checkpoint file" "ck_lenet.h5" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --weights ck_lenet.h5 --out "$t/o.h5"

  # ---------------------------------------------------------------- train
  T=(--quiet --threads 1 --batch 16 --steps 2 --out "$t/tw.h5")
  # 45: missing --data
  check "train: --data missing" "nothere.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data nothere.h5
  # 46: /images of rank 3
  check "train: /images rank 3" "rank3.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data rank3.h5
  # 47: no /images (only /labels)
  check "train: no /images" "noimages.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data noimages.h5
  # 48: no /labels
  check "train: no /labels" "nolabels.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data nolabels.h5
  # 49: zero rows
  check "train: zero rows" "zero.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data zero.h5
  # 50: /labels shorter than /images
  check "train: labels length mismatch" "lablen.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data lablen.h5
  # 51: float labels
  check "train: labels of type float32" "labfloat.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data labfloat.h5
  # 52: a negative label
  check "train: negative label" "labneg.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data labneg.h5
  # 53: labels 0..9 for a 5-class model
  check "train: labels out of range (--classes 5)" "good.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet --classes 5 "${T[@]}" --data good.h5
  # 54: NaN in float32 images
  check "train: NaN in float32 images" "nan_train.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data nan_train.h5 --preprocess none --batch 64 --shuffle off
  # 55: NaN found at step 1 while the reader thread prefetches steps 2-3, 40 times
  check "train: NaN at step 1, 40 runs (reader thread prefetching)" "nan_train.h5" absent "$t/tw.h5" -- \
    repeat 40 "$t/tw.h5" timeout 60 "$sn" train --arch lenet "${T[@]}" --data nan_train.h5 --preprocess none --shuffle off --steps 4
  # 56: --input not matching the data
  check "train: --input 32x32x3 for 28x28x1 data" "good.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet --input 32x32x3 "${T[@]}" --data good.h5
  # 57: --val of another image size
  check "train: --val of another image size" "val32.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data good.h5 --val val32.h5
  # 58: --resume from a checkpoint of another architecture
  cp ck_lenet_bn.h5 ck_other.h5
  check "train --resume: checkpoint of another arch" "ck_other.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data good.h5 --checkpoint ck_other.h5 --resume
  # 59: --resume from a truncated checkpoint
  check "train --resume: truncated checkpoint" "ck_trunc.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data good.h5 --checkpoint ck_trunc.h5 --resume
  # 60: --resume from a weights file (not a checkpoint)
  cp w.h5 w_as_ck.h5
  check "train --resume: a weights file as checkpoint" "w_as_ck.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data good.h5 --checkpoint w_as_ck.h5 --resume
  # 61: 1e9 rows and labels declared in a 2 KB file: an input error (exit 3), not an allocation
  want_rc=3
  check "train: absurd dims 1e9 rows (tiny chunked file)" "absurd_labels.h5" absent "$t/tw.h5" -- \
    ${memcap[@]+"${memcap[@]}"} timeout 60 "$sn" train --arch lenet "${T[@]}" --data absurd_labels.h5
  # 62: --val file missing
  check "train: --val missing" "noval.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data good.h5 --val noval.h5
  # 63: --init with a missing key
  check "train --init: weights with a key missing" "w_nokey.h5" absent "$t/tw.h5" -- \
    timeout 60 "$sn" train --arch lenet "${T[@]}" --data good.h5 --init w_nokey.h5
  # 64: --out in a directory that does not exist (found after training)
  check "train: --out in a missing directory" "nodir" absent "$t/nodir/w.h5" -- \
    timeout 60 "$sn" train --arch lenet --quiet --threads 1 --batch 16 --steps 1 --data good.h5 --out "$t/nodir/w.h5"
  # 64b: infer --metrics in a directory that does not exist (refused before any work)
  check "infer: --metrics in a missing directory" "metrics.*nodir" infer "$t/o.h5" -- \
    timeout 60 "$sn" infer "${L[@]}" --data good.h5 --out "$t/o.h5" --metrics "$t/nodir/m.jsonl"
else
  skip "infer/train cases on crafted files (21-64)" "no h5py/numpy/PIL in $py"
fi

# ---------------------------------------------------------------- mpirun -np 2: one rank's part bad
if ((have_py)) && command -v mpirun >/dev/null; then
  M=(timeout 120 "${mpirun[@]}" -np 2 "$sn")
  # rows are shared out by output chunks; 5 rows a chunk here (see nan_rank1_224.h5): rank 1 gets 5-9
  F=(--no-top --pooling none --input 224x224x3 --batch 4)
  # 65: corrupt JPEG (row 7) in the rows rank 1 infers (every rank exits 3, the input code)
  want_rc=3
  check "mpi infer: corrupt JPEG in rank 1's rows" "rank 1.*enc_bad_rank1.h5" infer "$t/o.h5" -- \
    "${M[@]}" infer "${L[@]}" "${F[@]}" --data enc_bad_rank1.h5 --out "$t/o.h5"
  # 66: NaN (row 7) in the float32 rows rank 1 infers
  check "mpi infer: NaN in rank 1's rows (--preprocess none)" "rank 1.*nan_rank1_224.h5" infer "$t/o.h5" -- \
    "${M[@]}" infer "${L[@]}" "${F[@]/224x224x3/224x224x1}" --preprocess none --data nan_rank1_224.h5 --out "$t/o.h5"
  # 67: NaN in the rows rank 1 trains on (no shuffling: rank 1 reads rows 32..63 of each batch of 64);
  #     every rank exits 4, the numeric code
  want_rc=4
  check "mpi train: NaN in rank 1's rows" "rank 1.*nan_rank1.h5" absent "$t/tw.h5" -- \
    "${M[@]}" train --arch lenet --quiet --threads 1 --batch 64 --steps 1 --shuffle off \
    --preprocess none --data nan_rank1.h5 --out "$t/tw.h5"
  # 68: the same at step 1 of 8, 12 times: every rank exits (sn_mpi_check) while its reader thread
  #    prefetches; no rank may print anything but the one line
  check "mpi train: NaN in rank 1's rows, 12 runs (readers prefetching)" "rank 1.*nan_rank1_steps.h5" absent "$t/tw.h5" -- \
    repeat 12 "$t/tw.h5" "${M[@]}" train --arch lenet --quiet --threads 1 --batch 16 --steps 8 --shuffle off \
    --preprocess none --data nan_rank1_steps.h5 --out "$t/tw.h5"
  # 69: a label out of the model's range in rank 1's block of the validation set (a label out of
  #     range in the rows rank 1 trains on cannot be made: every rank checks all /labels at open).
  #     Rank 1 alone finds it after the epoch; a check at start-up on every rank (rank 0 named)
  #     would be as good, hence "rank [01]".
  check "mpi train: --val label out of range in rank 1's block" "rank [01]: .*val_badlab.h5" absent "$t/tw.h5" -- \
    "${M[@]}" train --arch lenet --quiet --threads 1 --batch 16 --steps 1 --data good.h5 \
    --val val_badlab.h5 --out "$t/tw.h5"
  # 70: corrupt JPEG in the files rank 1 converts
  check "mpi convert folder: corrupt JPEG in rank 1's part" "rank 1.*28.jpg" absent "$t/c.h5" -- \
    "${M[@]}" convert folder --root f_rank1 --size 300x300 --out "$t/c.h5" --quiet
else
  skip "mpirun cases (65-70)" "no mpirun or no h5py/numpy/PIL"
fi

echo "bad_input_test: $npass passed, $nfail failed, $nskip skipped"
for f in "${failed[@]}"; do echo "  failed: $f"; done
exit $fail
