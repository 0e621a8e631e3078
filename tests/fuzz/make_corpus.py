#!/usr/bin/python3
"""make_corpus.py - writes the seed corpora of the libFuzzer harnesses (tests/fuzz/corpus/).

Usage: /usr/bin/python3 tests/fuzz/make_corpus.py [--fuzz-build DIR]

Needs numpy, h5py and Pillow (Debian: python3-numpy python3-h5py python3-pil). The weight
files of corpus/fuzz_weights are written by the structure-aware harness itself
(SN_FUZZ_EMIT, DIR/fuzz_weights_h5, default <repo>/build-fuzz): they are skipped with a notice
if it is not built. Every seed is small; the whole corpus stays well under 2 MiB.
Deterministic: running it twice gives the same files (except HDF5 timestamps, which are off).
"""
import argparse
import gzip
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import h5py
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
rng = np.random.RandomState(1234)


def out(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pixels(h, w, c):
    return rng.randint(0, 256, size=(h, w, c) if c > 1 else (h, w), dtype=np.uint8)


def pil_bytes(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_raw(width, height, color_type, bit_depth, rows, interlace=False, extra=b""):
    """A PNG written by hand (Pillow cannot write Adam7 interlacing). rows: list of bytes per
    row of the full image (already packed for bit_depth); interlaced images are re-packed per
    pass from an 8-bit-per-sample source given as a numpy array in `rows` instead."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0)
    if not interlace:
        raw = b"".join(b"\x00" + r for r in rows)
    else:
        arr = rows  # (h, w, samples) uint8, bit depth 8
        raw = b""
        for (y0, x0, dy, dx) in [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4),
                                 (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]:
            sub = arr[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            for r in sub:
                raw += b"\x00" + r.tobytes()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def images():
    """(name, bytes) of small JPEG and PNG files covering the decoder's branches."""
    res = []
    rgb = Image.fromarray(pixels(6, 8, 3), "RGB")
    grey = Image.fromarray(pixels(7, 5, 1), "L")
    res.append(("rgb.jpg", pil_bytes(rgb, "JPEG", quality=90)))
    res.append(("rgb444.jpg", pil_bytes(rgb, "JPEG", quality=75, subsampling=0)))
    res.append(("rgb_prog.jpg", pil_bytes(Image.fromarray(pixels(9, 4, 3), "RGB"), "JPEG",
                                          progressive=True)))
    res.append(("grey.jpg", pil_bytes(grey, "JPEG")))
    res.append(("one.jpg", pil_bytes(Image.fromarray(pixels(1, 1, 3), "RGB"), "JPEG")))
    res.append(("cmyk.jpg", pil_bytes(Image.fromarray(pixels(3, 3, 3), "RGB").convert("CMYK"),
                                      "JPEG")))
    res.append(("rgb.png", pil_bytes(Image.fromarray(pixels(5, 6, 3), "RGB"), "PNG")))
    res.append(("grey.png", pil_bytes(grey, "PNG")))
    res.append(("rgba.png", pil_bytes(Image.fromarray(pixels(4, 4, 4), "RGBA"), "PNG")))
    res.append(("la.png", pil_bytes(Image.fromarray(pixels(3, 5, 3)).convert("LA"), "PNG")))
    res.append(("bits1.png", pil_bytes(Image.fromarray(pixels(3, 9, 1) > 127), "PNG")))
    pal = Image.fromarray(pixels(5, 5, 3), "RGB").convert("P", palette=Image.ADAPTIVE, colors=8)
    res.append(("pal.png", pil_bytes(pal, "PNG")))
    res.append(("pal_trns.png", pil_bytes(pal, "PNG", transparency=0)))
    i16 = Image.fromarray((rng.randint(0, 65536, size=(4, 3))).astype(np.uint16))
    res.append(("grey16.png", pil_bytes(i16, "PNG")))
    g4 = pixels(4, 4, 1) >> 4
    rows4 = [bytes((int(r[x]) << 4) | int(r[x + 1]) for x in range(0, 4, 2)) for r in g4]
    res.append(("grey4.png", png_raw(4, 4, 0, 4, rows4)))
    res.append(("interlaced.png", png_raw(9, 10, 2, 8, pixels(10, 9, 3), interlace=True)))
    # rgb 16-bit by hand
    rows16 = [rng.randint(0, 256, size=3 * 2 * 2, dtype=np.uint8).tobytes() for _ in range(2)]
    res.append(("rgb16.png", png_raw(2, 2, 2, 16, rows16)))
    # a wide, thin image (resize-shorter edge cases)
    res.append(("thin.png", pil_bytes(Image.fromarray(pixels(1, 40, 3), "RGB"), "PNG")))
    return res


def corpus_image(imgs):
    ctrls = [bytes([1, 15, 15, 0]), bytes([0, 3, 5, 0]), bytes([3 | (4 << 2), 7, 7, 0]),
             bytes([2 | (6 << 2), 31, 31, 0])]
    for i, (name, data) in enumerate(imgs):
        out("fuzz_image", name, ctrls[i % len(ctrls)] + data)
    good = imgs[0][1]
    out("fuzz_image", "truncated.jpg", ctrls[0] + good[: len(good) // 2])
    png = imgs[6][1]
    out("fuzz_image", "truncated.png", ctrls[1] + png[: len(png) - 20])


def idx_bytes(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    hdr = struct.pack(">I", 0x800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return hdr + arr.tobytes()


def corpus_idx():
    def prog(opt, img, lab):
        return bytes([opt]) + struct.pack("<H", len(img)) + img + lab
    img = idx_bytes(rng.randint(0, 256, size=(3, 4, 5)))
    lab = idx_bytes([1, 9, 0])
    out("fuzz_idx", "plain", prog(0, img, lab))
    out("fuzz_idx", "fashion_gzip", prog(1 | (2 << 1) | (1 << 3), img, lab))
    out("fuzz_idx", "gzip_both", prog(0, gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)))
    img28 = idx_bytes(rng.randint(0, 256, size=(2, 28, 28)))
    out("fuzz_idx", "mnist2", prog(3 << 3, img28, idx_bytes([7, 2])))
    out("fuzz_idx", "bad_label", prog(0, img, idx_bytes([1, 10, 0])))
    out("fuzz_idx", "short", prog(0, img[:-3], lab))


def corpus_dataset(imgs):
    tmp = tempfile.mkdtemp()
    try:
        def save(name, fill, libver=None):
            p = os.path.join(tmp, name)
            kw = {"libver": libver} if libver else {}
            with h5py.File(p, "w", track_order=False, **kw) as f:
                fill(f)
            with open(p, "rb") as fh:
                out("fuzz_dataset", name, fh.read())

        def raw_u8(f):
            f.create_dataset("images", data=rng.randint(0, 256, size=(4, 5, 6, 3), dtype=np.uint8))
            f.create_dataset("labels", data=np.array([0, 2, 1, 2], dtype=np.int32))
            f.create_dataset("classes", data=np.array([b"cat", b"dog", b"eel"]))
        save("raw_u8.h5", raw_u8, "latest")

        def raw_f32(f):
            f.create_dataset("images", data=rng.rand(3, 4, 4, 1).astype(np.float32),
                             chunks=(1, 4, 4, 1), compression="gzip")
            f.create_dataset("labels", data=np.array([5, 0, 3], dtype=np.int64))
        save("raw_f32_chunked.h5", raw_f32, "latest")

        def encoded(f, pick, c=3):
            blobs = [imgs[i][1] for i in pick]
            offs = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
            d = f.create_dataset("encoded", data=np.frombuffer(b"".join(blobs), dtype=np.uint8))
            d.attrs["height"] = np.int64(8)
            d.attrs["width"] = np.int64(8)
            d.attrs["channels"] = np.int64(c)
            f.create_dataset("offsets", data=offs)
            f.create_dataset("labels", data=np.arange(len(blobs), dtype=np.int32) % 2)
            dt = h5py.string_dtype("utf-8")
            f.create_dataset("classes", data=np.array(["a", "b"], dtype=object), dtype=dt)
        save("encoded_jpeg.h5", lambda f: encoded(f, [0, 3]), "latest")
        save("encoded_png_grey.h5", lambda f: encoded(f, [6, 12, 15], c=1), "latest")
        save("encoded_mixed_v18.h5", lambda f: encoded(f, [2, 7, 10]))
    finally:
        shutil.rmtree(tmp)


def corpus_dataset_h5(imgs):
    # raw: ctrl what=0, opts, type, rank, n, h, w, c, storage, labels, classes
    out("fuzz_dataset_h5", "raw_u8", bytes([0x04, 0x80, 0, 0, 3, 3, 4, 1, 0, 1, 3, 1, 2]))
    out("fuzz_dataset_h5", "raw_f32_chunked", bytes([0x00, 0xC0, 3, 0, 4, 4, 6, 0, 1, 5, 1, 0]))
    out("fuzz_dataset_h5", "raw_c4_gzip", bytes([0x0C, 0x01, 0, 1, 2, 2, 3, 2, 2, 0, 2, 2]))

    def enc(name, ctrl, opts, pick, tail):
        b = bytes([ctrl, opts, len(pick)])
        for i in pick:
            data = imgs[i][1]
            b += struct.pack("<H", len(data)) + data
        out("fuzz_dataset_h5", name, b + bytes(tail))
    # offsets variant 0, encoded variant 0, attrs: 16,16,3 (index 0,0,3), labels 1 + values,
    # classes 1 with 3 names
    enc("enc_jpeg", 0x05, 0x03 | 0x40, [0, 3], [0, 0, 0, 0, 3, 1, 0, 1, 1, 2])
    enc("enc_png", 0x01, 0x21 | 0x80, [6, 7, 12], [0, 4, 0, 0, 2, 1, 1, 0, 1, 2, 2])
    enc("enc_mixed_shorter", 0x0D, 0x2B | 0x40, [2, 9, 16], [0, 0, 0, 1, 3, 5, 0, 1, 1, 2, 0])
    enc("enc_bad_offsets", 0x01, 0x00, [0, 6], [1, 0, 0, 0, 3, 0, 0])
    # both /images (n 1, 4x4x3) and /encoded (one image)
    data = imgs[1][1]
    out("fuzz_dataset_h5", "both", bytes([0x06, 0x00, 0, 0, 1, 3, 3, 1, 0, 1]) +
        struct.pack("<H", len(data)) + data + bytes([0, 0, 0, 0, 3, 1, 0]))


def corpus_weights_h5():
    seeds = []
    for layout in (0, 1, 2, 3, 4, 5, 7):
        for net in (0, 1):
            if layout == 5 and net == 1:
                continue
            latest = 1
            ctrl = net | (latest << 3) | ((layout % 2) << 4) | (layout << 5)
            opt = net | ((1 << 3) if layout == 2 else 0) | ((1 << 4) if layout == 3 else 0)
            seeds.append(("l%d_n%d" % (layout, net), bytes([ctrl, opt, 0])))
    # a few with perturbations (tensor 5: wrong shape; tensor 0: float64) and free operations
    seeds.append(("torch_pert", bytes([0x00 | (1 << 3), 0, 2, 5, 0, 1, 0, 0, 4])))
    seeds.append(("native_free", bytes([0x20 | (1 << 3), 0, 0, 1, 7, 0, 12, 0])))
    seeds.append(("keras_reorder", bytes([0x41 | (1 << 3), 1, 1, 3, 0, 15])))
    for name, data in seeds:
        out("fuzz_weights_h5", name, data)
    return seeds


def corpus_weights_raw(build, seeds):
    exe = os.path.join(build, "fuzz_weights_h5")
    if not os.access(exe, os.X_OK):
        print("make_corpus: %s not built: corpus/fuzz_weights not written "
              "(run tests/fuzz/build.sh, then this script again)" % exe, file=sys.stderr)
        return
    pick = ["l0_n0", "l1_n0", "l4_n0", "l5_n0", "l2_n1"]  # torch, native, keras 3, ckpt, keras
    tmp = tempfile.mkdtemp()
    try:
        emit = os.path.join(tmp, "emit")
        os.makedirs(emit)
        for name in pick:
            p = os.path.join(tmp, name)
            with open(p, "wb") as f:
                f.write(dict(seeds)[name])
            # one process per seed: the harness numbers the files it emits from 0
            env = dict(os.environ, SN_FUZZ_EMIT=emit)
            subprocess.run([exe, "-runs=0", p], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(os.path.join(emit, "0.h5"), "rb") as fh:
                out("fuzz_weights", name + ".h5", fh.read())
            os.remove(os.path.join(emit, "0.h5"))
    finally:
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fuzz-build", default=os.path.join(REPO, "build-fuzz"))
    a = ap.parse_args()
    imgs = images()
    corpus_image(imgs)
    corpus_idx()
    corpus_dataset(imgs)
    corpus_dataset_h5(imgs)
    seeds = corpus_weights_h5()
    corpus_weights_raw(a.fuzz_build, seeds)
    total = 0
    for root, _, names in os.walk(CORPUS):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    print("make_corpus: %d bytes in %s" % (total, CORPUS))


if __name__ == "__main__":
    main()
