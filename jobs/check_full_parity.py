#!/usr/bin/python3
"""check_full_parity.py - full-size inference parity of the C engine against PyTorch (not in CI).

Builds torchvision resnet50 (torchvision's own module) and the Keras ResNet50V2 reproduction of
tests/fixtures/gen_fixtures.py at full width (64) and 224x224, 1000 classes, with random weights
and calibrated BN statistics; writes the weights (torchvision HDF5 / Keras legacy HDF5 layout), a
preprocessed input batch and the float64 reference to a temporary directory; runs the engine
through ctypes on libshardnet.so (default) or through `shardnet infer` (--cli); and compares with
docs/models.md, "Numerical parity": logits max|d| <= 1e-4 + 1e-4 max|ref|, features max|d|/max|ref| <= 1e-4,
softmax max|d| <= 1e-4. Also prints PyTorch's own float32 error (the noise floor) in the same units.

  /usr/bin/python3 jobs/check_full_parity.py --build build            # both models, ctypes
  /usr/bin/python3 jobs/check_full_parity.py --build build --cli --models resnet50 --keep

Exit status 0 when every comparison passes. Takes a few minutes (float64 references, 2 cores).
"""
import argparse
import copy
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import gen_fixtures as G  # noqa: E402  (the reference models, init and file writers)


# ----------------------------------------------------------------------------- references


def build_reference(arch, n, rscale, log):
    """(model (float64, float32-representable weights), x (N, 224, 224, 3) preprocessed)."""
    gen = torch.Generator().manual_seed(G.seed_of(arch, 101))
    rng = np.random.default_rng(G.seed_of(arch, 102))
    if arch == "resnet50":
        import torchvision
        model = torchvision.models.resnet50(weights=None, num_classes=1000)
    else:
        model = G.make_keras_resnet(arch, 64, 1000)
    G.init_random(model, gen)
    G.scale_residuals(model, rscale)
    mode = G.default_preprocess(arch)
    t0 = time.time()
    calib = [G.nchw(G.preprocess(G.synth_images(rng, 8, 224, 224, 3), mode)).float()
             for _ in range(4)]
    G.calibrate_bn(model, calib, gen)  # float32: statistics need no float64
    model.double()
    x = G.preprocess(G.synth_images(rng, n, 224, 224, 3), mode)
    G.round_to_f32(model)
    with torch.no_grad():
        logits, _ = forward(model, x)
        s = 10.0 / float(logits.abs().max())
        fc = G.classifier(model)
        fc.weight.mul_(s)
        fc.bias.mul_(s)
    G.round_to_f32(model)
    log("%s: reference model built in %.0f s" % (arch, time.time() - t0))
    return model, x


def forward(model, x, dtype=torch.float64):
    """(logits, features) for x (N, H, W, C) numpy; torchvision's own resnet50 has no feature
    output, so its avgpool is hooked."""
    xt = G.nchw(x).to(dtype)
    if G.is_keras(model):
        return model(xt)
    feats = {}
    h = model.avgpool.register_forward_hook(lambda m, i, o: feats.__setitem__("f", o))
    logits = model(xt)
    h.remove()
    return logits, torch.flatten(feats["f"], 1)


def tolerances_used(logits, feat, l_got, f_got, p_got):
    """Errors as fractions of the tolerances of docs/models.md, "Numerical parity"."""
    tl = 1e-4 + 1e-4 * np.abs(logits).max()
    rl = np.abs(l_got - logits).max() / tl
    rf = np.abs(f_got - feat).max() / np.abs(feat).max() / 1e-4
    rp = np.abs(p_got - G.softmax64(logits)).max() / 1e-4
    return rl, rf, rp


# ----------------------------------------------------------------------------- engine


class ModelConfig(ctypes.Structure):
    """sn_model_config (src/shardnet.h)."""
    _fields_ = [("arch", ctypes.c_char_p), ("classes", ctypes.c_int), ("height", ctypes.c_int),
                ("width", ctypes.c_int), ("channels", ctypes.c_int),
                ("include_top", ctypes.c_int), ("pooling", ctypes.c_int),
                ("base_width", ctypes.c_int), ("bn_momentum_style", ctypes.c_int)]


def run_ctypes(lib_path, arch, weights, x):
    lib = ctypes.CDLL(lib_path)
    lib.sn_last_error.restype = ctypes.c_char_p
    lib.sn_net_features.restype = ctypes.POINTER(ctypes.c_float)
    lib.sn_net_create.argtypes = [ctypes.POINTER(ModelConfig), ctypes.c_uint64,
                                  ctypes.POINTER(ctypes.c_void_p)]
    for f in ("sn_weights_load", "sn_net_plan", "sn_net_forward", "sn_net_feature_dim",
              "sn_net_features", "sn_net_destroy"):
        getattr(lib, f).argtypes = None
    arch_b = arch.encode()
    cfg = ModelConfig()
    lib.sn_model_config_init(ctypes.byref(cfg), arch_b)
    cfg.classes, cfg.height, cfg.width, cfg.channels = 1000, 224, 224, 3
    cfg.include_top = 1

    def check(status, what):
        if status != 0:
            raise RuntimeError("%s: %s" % (what, lib.sn_last_error().decode()))

    net = ctypes.c_void_p()
    check(lib.sn_net_create(ctypes.byref(cfg), 1, ctypes.byref(net)), "sn_net_create")
    try:
        check(lib.sn_weights_load(net, weights.encode(), 0, None), "sn_weights_load")
        n = x.shape[0]
        check(lib.sn_net_plan(net, n, 0), "sn_net_plan")
        xc = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros((n, 1000), np.float32)
        fp = ctypes.POINTER(ctypes.c_float)
        t0 = time.time()
        check(lib.sn_net_forward(net, xc.ctypes.data_as(fp), n, out.ctypes.data_as(fp)),
              "sn_net_forward")
        dt = time.time() - t0
        d = lib.sn_net_feature_dim(net)
        feat = np.ctypeslib.as_array(lib.sn_net_features(net), shape=(n * d,)).reshape(n, d).copy()
        probs = np.zeros_like(out)
        lib.sn_softmax(out.ctypes.data_as(fp), n, 1000, probs.ctypes.data_as(fp))
    finally:
        lib.sn_net_destroy(net)
    return out, feat, probs, dt


def run_cli(exe, arch, weights, x, tmp):
    data = os.path.join(tmp, arch + ".data.h5")
    out = os.path.join(tmp, arch + ".out.h5")
    with h5py.File(data, "w") as f:
        f.create_dataset("images", data=np.ascontiguousarray(x, dtype=np.float32))
    cmd = [exe, "infer", "--arch", arch, "--weights", weights, "--data", data, "--out", out,
           "--preprocess", "none", "--logits", "--features", "--top-k", "0", "--quiet", "--force",
           "--batch", str(x.shape[0])]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    dt = time.time() - t0
    with h5py.File(out, "r") as f:
        logits = f["logits"][()].astype(np.float32)
        feat = f["features"][()].astype(np.float32)
    return logits, feat, G.softmax64(logits.astype(np.float64)).astype(np.float32), dt


# ----------------------------------------------------------------------------- main


def check_model(arch, args, tmp, log):
    model, x = build_reference(arch, args.batch, args.residual_scale, log)
    with torch.no_grad():
        logits, feat = forward(model, x)
        l32, f32 = forward(copy.deepcopy(model).float(), x, torch.float32)
    logits, feat = logits.numpy(), feat.numpy()
    floor = tolerances_used(logits, feat, l32.numpy(), f32.numpy(),
                            G.softmax64(l32.numpy().astype(np.float64)))
    weights = os.path.join(tmp, arch + ".h5")
    if G.is_keras(model):
        G.write_keras_weights(weights, model, "vlen")
    else:
        G.write_torch_weights(weights, model, arch)
    with h5py.File(os.path.join(tmp, arch + ".expected.h5"), "w") as f:
        f.create_dataset("input", data=x)
        f.create_dataset("logits", data=logits.astype(np.float32))
        f.create_dataset("features", data=feat.astype(np.float32))
    if args.cli:
        got = run_cli(os.path.join(args.build, "shardnet"), arch, weights, x, tmp)
    else:
        got = run_ctypes(os.path.join(args.build, "libshardnet.so"), arch, weights, x)
    rl, rf, rp = tolerances_used(logits, feat, *got[:3])
    ok = max(rl, rf, rp) <= 1.0
    same_top1 = bool((got[0].argmax(1) == logits.argmax(1)).all())
    log("%s: max|logit| %.2f; engine (%s, forward %.2f s) error / tolerance: logits %.3f, "
        "features %.3f, softmax %.3f; PyTorch float32: %.3f, %.3f, %.3f; top-1 %s -> %s" % (
            arch, np.abs(logits).max(), "cli" if args.cli else "ctypes", got[3], rl, rf, rp,
            floor[0], floor[1], floor[2], "identical" if same_top1 else "DIFFERENT",
            "PASS" if ok and same_top1 else "FAIL"))
    return ok and same_top1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build directory with libshardnet.so and shardnet (default: build)")
    ap.add_argument("--models", nargs="*", default=["resnet50", "keras_resnet50v2"],
                    choices=["resnet50", "keras_resnet50v2"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--residual-scale", type=float, default=1.0,
                    help="scale of the residual branches' last op (gen_fixtures.scale_residuals)")
    ap.add_argument("--cli", action="store_true", help="run `shardnet infer` instead of ctypes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="sn_full_parity.")
    log = print
    ok = True
    try:
        for arch in args.models:
            ok &= check_model(arch, args, tmp, log)
    finally:
        if args.keep:
            log("files kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    log("full parity: %s" % ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
