#!/usr/bin/python3
"""Convert torchvision ResNet weights (.pth) to shardnet's torchvision HDF5 layout.

Layout written (docs/models.md, "Weight layouts and names"): one float32 dataset per state_dict key at the root of the file,
named exactly by the key ("layer1.0.conv1.weight"), in PyTorch layout (conv OIHW, Linear
(out, in)); num_batches_tracked is dropped; root string attributes arch (e.g. "resnet50") and
source = "torchvision", plus source_file and source_sha256 for provenance. shardnet's loader
(io/weights.c) recognises the layout by its dotted root datasets, checks every key and shape and
transposes to its own layout itself.

Examples:
  # a downloaded torchvision file (the architecture is inferred from the keys)
  convert_torch_weights.py --pth resnet50-11ad3fa6.pth --out resnet50_v2.h5 --check
  # random weights for tests, also saved as .pth for comparison with PyTorch
  convert_torch_weights.py --random-init resnet18 --out r18.h5 --save-pth r18.pth --check

The .pth is loaded with torch.load(map_location="cpu", weights_only=True): a whole pickled
model needs --trust-pickle (pickles can run code; use it only for files you trust).

--check reads the file back with h5py, compares the parameter count with
`shardnet summary`, and, when `shardnet infer` exists, runs it on a few random images and
compares its logits with PyTorch's (the tolerance of docs/models.md, "Numerical parity").

Exit status: 0 success, 1 conversion or check failed, 2 bad arguments.
"""
import argparse
import hashlib
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile

ARCHS = {  # (bottleneck, blocks per stage) -> torchvision name
    (False, (2, 2, 2, 2)): "resnet18",
    (False, (3, 4, 6, 3)): "resnet34",
    (True, (3, 4, 6, 3)): "resnet50",
    (True, (3, 4, 23, 3)): "resnet101",
    (True, (3, 8, 36, 3)): "resnet152",
}


class ConvertError(Exception):
    pass


def fail(msg):
    raise ConvertError(msg)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def unwrap_state_dict(obj, path):
    """A state_dict from what torch.load returned: a state_dict, a model, or a training
    checkpoint holding one under "state_dict" or "model"; DataParallel "module." prefixes go."""
    import torch

    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for k in ("state_dict", "model"):
            if k in obj and isinstance(obj[k], dict) and not torch.is_tensor(obj[k]):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not obj:
        fail(f"{path}: not a state_dict (got {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not torch.is_tensor(v)]
    if bad:
        fail(f"{path}: not a state_dict: entry {bad[0]!r} is a {type(obj[bad[0]]).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def infer_arch(sd, path):
    """torchvision ResNet name from the keys: blocks per stage and Basic vs Bottleneck."""
    blocks = []
    for stage in range(1, 5):
        idx = {int(m.group(1)) for k in sd for m in [re.match(rf"layer{stage}\.(\d+)\.", k)] if m}
        blocks.append(max(idx) + 1 if idx else 0)
    bottleneck = "layer1.0.conv3.weight" in sd
    arch = ARCHS.get((bottleneck, tuple(blocks)))
    if not arch:
        fail(f"{path}: keys do not describe a torchvision resnet18/34/50/101/152 "
             f"(blocks per stage {blocks}, {'bottleneck' if bottleneck else 'basic'} blocks)")
    return arch


def reference_model(arch, classes):
    import torchvision

    return getattr(torchvision.models, arch)(weights=None, num_classes=classes)


def validate(sd, arch, path):
    """Every key and shape of torchvision's own model, nothing else (num_batches_tracked aside).
    Returns the number of classes."""
    if "fc.weight" not in sd:
        fail(f"{path}: key fc.weight missing "
             "(shardnet needs the classifier of a torchvision ResNet)")
    classes = int(sd["fc.weight"].shape[0])
    ref = {k: tuple(v.shape) for k, v in reference_model(arch, classes).state_dict().items()
           if not k.endswith("num_batches_tracked")}
    got = {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    for k, shape in ref.items():
        if k not in got:
            fail(f"{path}: key {k} missing for {arch} (expected shape {shape})")
        if got[k] != shape:
            fail(f"{path}: key {k} has shape {got[k]}, {arch} with {classes} classes needs {shape}")
    extra = sorted(set(got) - set(ref))
    if extra:
        fail(f"{path}: key {extra[0]} is not a parameter of torchvision {arch}"
             f"{f' ({len(extra)} such keys)' if len(extra) > 1 else ''}")
    return classes


def write_h5(sd, arch, out, source_file, source_sha):
    import h5py
    import numpy as np
    import torch

    tmp = f"{out}.tmp.{os.getpid()}"
    n = 0
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["arch"] = arch
            f.attrs["source"] = "torchvision"
            f.attrs["source_file"] = source_file
            f.attrs["source_sha256"] = source_sha
            for key, t in sd.items():
                if key.endswith("num_batches_tracked"):
                    continue
                if not torch.is_floating_point(t):
                    fail(f"key {key}: dtype {t.dtype}, expected a floating-point tensor")
                a = t.detach().to("cpu", torch.float32).contiguous().numpy()
                if not np.isfinite(a).all():
                    fail(f"key {key}: contains NaN or infinity")
                # h5py would read "/" in a name as a group separator; state_dict keys have none.
                if "/" in key:
                    fail(f"key {key}: contains '/'")
                f.create_dataset(key, data=a)
                n += a.size
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return n


def find_shardnet(given):
    if given:
        return given
    here = os.path.dirname(os.path.abspath(__file__))
    # a checkout's jobs/ -> build/shardnet; installed share/shardnet/ -> bin/shardnet
    for cand in (os.path.join(here, "..", "build", "shardnet"),
                 os.path.join(here, "..", "..", "bin", "shardnet")):
        if os.access(cand, os.X_OK):
            return os.path.normpath(cand)
    return shutil.which("shardnet")


def clean_env():
    """The environment for a serial shardnet child: without the launcher's variables, so that a
    converter started under mpirun/srun does not make shardnet join (or create) an MPI job."""
    drop = ("OMPI_", "PMI_", "PMIX_", "SLURM_STEP", "SLURM_PROCID")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def run(cmd):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=clean_env())


def check(out, sd, arch, classes, shardnet, threads, log):
    """Reads the file back, compares with shardnet summary and (if available) shardnet infer."""
    import h5py
    import numpy as np
    import torch

    want = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    with h5py.File(out, "r") as f:
        keys = set(f.keys())
        if keys != set(want):
            diff = sorted(keys ^ set(want))
            fail(f"check: {out}: keys differ from the state_dict (first: {diff[0]})")
        for k, t in want.items():
            d = f[k]
            if d.dtype != np.float32 or d.shape != tuple(t.shape):
                fail(f"check: {out}: {k} is {d.dtype} {d.shape}, expected float32 {tuple(t.shape)}")
            if not np.array_equal(d[()], t.detach().float().numpy()):
                fail(f"check: {out}: {k} differs from the state_dict")
        if f.attrs.get("arch") != arch or f.attrs.get("source") != "torchvision":
            fail(f"check: {out}: root attributes arch/source are wrong")
    total = sum(int(t.numel()) for t in want.values())
    log(f"check: {len(want)} datasets, {total:,} floats, attributes arch={arch} source=torchvision")

    if not shardnet:
        log("check: no shardnet binary (use --shardnet); skipped the shardnet checks")
        return
    r = run([shardnet, "summary", "--arch", arch, "--classes", str(classes)])
    if r.returncode != 0:
        fail(f"check: shardnet summary failed ({r.returncode}): {r.stderr.strip()}")
    m = re.search(r"Total params: ([\d,]+)", r.stdout)
    if not m or int(m.group(1).replace(",", "")) != total:
        fail(f"check: shardnet summary --arch {arch} reports "
             f"{m.group(1) if m else '?'} parameters, the file holds {total:,}")
    log(f"check: shardnet summary --arch {arch} --classes {classes}: {total:,} parameters (match)")

    if run([shardnet, "infer", "--help"]).returncode != 0:
        log("check: shardnet infer is not available; skipped the logit comparison")
        return
    model = reference_model(arch, classes)
    model.load_state_dict(sd, strict=False)  # num_batches_tracked may be absent
    model.eval()
    n, side = 2, 64
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        data, res = os.path.join(tmp, "images.h5"), os.path.join(tmp, "out.h5")
        with h5py.File(data, "w") as f:
            f.create_dataset("images", data=images)
        cmd = [shardnet, "infer", "--arch", arch, "--classes", str(classes), "--weights", out,
               "--data", data, "--out", res, "--logits", "--top-k", "0", "--batch", str(n),
               "--threads", str(threads), "--quiet"]
        r = run(cmd)
        if r.returncode != 0:
            fail(f"check: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        with h5py.File(res, "r") as f:
            got = f["logits"][()]
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    x = (images.astype(np.float32) / 255.0 - mean) / std
    with torch.no_grad():
        ref = model(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
    diff = float(np.abs(got - ref).max())
    tol = 1e-4 + 1e-4 * float(np.abs(ref).max())
    if not diff <= tol:
        fail(f"check: shardnet infer logits differ from PyTorch by {diff:.3g} "
             f"(tolerance {tol:.3g})")
    log(f"check: shardnet infer logits on {n} images {side}x{side}: max |diff| {diff:.2e} "
        f"<= {tol:.2e} (PyTorch {torch.__version__})")


def main(argv=None):
    p = argparse.ArgumentParser(
        description="torchvision ResNet .pth -> shardnet torchvision HDF5 (docs/models.md)",
        epilog="Exit status: 0 success, 1 conversion or check failed, 2 bad arguments.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pth", help="torchvision state_dict (.pth), loaded with map_location=cpu")
    src.add_argument("--random-init", metavar="ARCH", choices=sorted(set(ARCHS.values())),
                     help="a randomly initialised torchvision model instead (for tests)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--arch", choices=sorted(set(ARCHS.values())),
                   help="architecture (default: inferred from the keys; must agree with them)")
    p.add_argument("--classes", type=int, default=1000,
                   help="--random-init: number of classes (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="--random-init: torch seed (default 0)")
    p.add_argument("--save-pth", metavar="FILE", help="--random-init: also save the state_dict")
    p.add_argument("--trust-pickle", action="store_true",
                   help="let torch.load run arbitrary pickle code (whole saved models); by default "
                   "only tensors and containers are loaded (weights_only=True)")
    p.add_argument("--force", action="store_true", help="replace an existing output")
    p.add_argument("--check", action="store_true",
                   help="read the output back and verify it with shardnet summary / infer")
    p.add_argument("--shardnet", help="shardnet binary for --check (default: build/shardnet "
                   "next to this script, the installed one beside it, else shardnet on PATH)")
    p.add_argument("--threads", type=int, default=1, help="--check: shardnet threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="print errors only")
    a = p.parse_args(argv)

    def log(msg):
        if not a.quiet:
            print(msg, flush=True)

    if os.path.exists(a.out) and not a.force:
        print(f"convert_torch_weights: error: {a.out} exists (use --force to replace it)",
              file=sys.stderr)
        return 2
    if a.save_pth and not a.random_init:
        p.error("--save-pth goes with --random-init")
    try:
        for mod in ("h5py", "torchvision", "torch"):
            importlib.import_module(mod)
        import torch
    except ImportError as e:
        print(f"convert_torch_weights: error: {sys.executable} lacks a module the converter needs "
              f"(torch, torchvision, h5py): {e}", file=sys.stderr)
        return 1
    try:
        if a.random_init:
            arch = a.random_init
            if a.arch and a.arch != arch:
                fail(f"--arch {a.arch} contradicts --random-init {arch}")
            torch.manual_seed(a.seed)
            sd = reference_model(arch, a.classes).state_dict()
            source, sha = f"random-init:{arch}:seed={a.seed}", ""
            if a.save_pth:
                torch.save(sd, a.save_pth)
                log(f"saved {a.save_pth}")
        else:
            if not os.path.isfile(a.pth):
                fail(f"{a.pth}: no such file")
            kw = {}
            if "weights_only" in inspect.signature(torch.load).parameters:
                kw["weights_only"] = not a.trust_pickle
            try:
                obj = torch.load(a.pth, map_location="cpu", **kw)
            except Exception as e:  # pickle and zip errors come in many types
                hint = ("" if a.trust_pickle or not kw else
                        " (only tensors and plain containers are loaded; for a whole pickled "
                        "model or a checkpoint with other objects, from a trusted source, add "
                        "--trust-pickle)")
                fail(f"{a.pth}: torch.load failed: {str(e).splitlines()[0]}{hint}")
            sd = unwrap_state_dict(obj, a.pth)
            arch = infer_arch(sd, a.pth)
            if a.arch and a.arch != arch:
                fail(f"{a.pth}: --arch {a.arch}, but the keys describe {arch}")
            source, sha = os.path.basename(a.pth), sha256_of(a.pth)
        classes = validate(sd, arch, a.pth or source)
        n = write_h5(sd, arch, a.out, source, sha)
        log(f"wrote {a.out}: {arch}, {classes} classes, {n:,} floats"
            f"{f', from {source} (sha256 {sha[:8]}...)' if sha else f', {source}'}")
        if a.check:
            check(a.out, sd, arch, classes, find_shardnet(a.shardnet), a.threads, log)
    except ConvertError as e:
        print(f"convert_torch_weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
