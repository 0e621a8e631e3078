#!/usr/bin/env python3
"""cost_model.py - data-parallel step-time model for shardnet (docs/distributed.md).

Layers, parameter counts and output shapes come from `shardnet summary` (network order = the
order of the gradient block). Backward visits the layers in reverse; the gradient buckets are
formed exactly as src/train.c forms them (a bucket is launched after a layer's backward once the
pending range holds >= bucket_mb MiB; the rest is launched after the last layer). Backward time
is spread over the layers in proportion to their backward multiply-adds (2x forward: dX and dW;
the first convolution has no dX).

All-reduce of s bytes on p ranks, link bandwidth B (bytes/s per direction), latency alpha:
  ring           T = 2(p-1)/p * s/B + 2(p-1) * alpha
  rabenseifner   T = 2(p-1)/p * s/B + 2 log2(p) * alpha   (reduce-scatter + allgather, halving/doubling)
  binomial       T = 2 ceil(log2 p) * (alpha + s/B)        (reduce to a root, then broadcast; Open
                                                            MPI's libnbc choice for in-place
                                                            MPI_Iallreduce at any size)
Buckets share the link: bucket i starts at max(launch_i, end_{i-1}).
  overlap    the all-reduces progress while backward runs (polling, src/train.c)
  no overlap every bucket starts after backward (no progress before the final wait)
Sync BN adds, per BN layer, one blocking all-reduce of 2C+1 doubles in forward and one in backward
(recursive doubling for small messages: ceil(log2 p) * (alpha + m/B)); they cannot overlap.

step = t_compute + exposed gradient communication + sync-BN all-reduces
efficiency = t_compute / step (images/s per rank relative to one rank with the same local batch)

Usage:
  cost_model.py --shardnet build/shardnet --arch resnet50 [--input 224x224x3] [--classes 1000]
                [--bucket-mb 25] [--rate-per-rank 32] [--local-batch 32] table
  cost_model.py ... predict --p 2 --bw 1.2e9 --alpha 30e-6 --t-compute 1.0 --algo binomial
"""
import argparse
import json
import math
import re
import subprocess
import sys


def layers_from_summary(shardnet, arch, inp, classes):
    cmd = [shardnet, "summary", "--arch", arch]
    if inp:
        cmd += ["--input", inp]
    if classes:
        cmd += ["--classes", str(classes)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    layers = []
    pat = re.compile(r"^\s(\S+) \((\w+)\)\s+\(None, ([\d, ]+)\)\s+([\d,]+)")
    for line in out.splitlines():
        m = pat.match(line)
        if not m:
            continue
        name, kind, shape, params = m.group(1), m.group(2), m.group(3), int(m.group(4).replace(",", ""))
        dims = [int(v) for v in shape.split(",")]
        hw = dims[0] * dims[1] if len(dims) == 3 else 1
        if kind == "Conv2D":
            trainable, macs, bn_c = params, hw * params, 0
        elif kind == "Dense":
            trainable, macs, bn_c = params, params, 0
        elif kind == "BatchNormalization":
            trainable, macs, bn_c = params // 2, 0, params // 4
        else:
            trainable, macs, bn_c = 0, 0, 0
        layers.append({"name": name, "kind": kind, "trainable": trainable, "macs": macs, "bn_c": bn_c})
    if not layers:
        sys.exit("cost_model.py: could not parse `%s`" % " ".join(cmd))
    return layers


def allreduce_time(s, p, bw, alpha, algo):
    if p <= 1:
        return 0.0
    lg = math.ceil(math.log2(p))
    if algo == "ring":
        return 2 * (p - 1) / p * s / bw + 2 * (p - 1) * alpha
    if algo == "rabenseifner":
        return 2 * (p - 1) / p * s / bw + 2 * lg * alpha
    if algo == "binomial":
        return 2 * lg * (alpha + s / bw)
    raise ValueError(algo)


def buckets(layers, bucket_mb, t_backward):
    """(launch time, bytes) of each bucket; the last one is launched when backward ends."""
    bwd = []
    first_conv = next(i for i, l in enumerate(layers) if l["kind"] == "Conv2D")
    for i, l in enumerate(layers):
        bwd.append(l["macs"] * (1 if i == first_conv else 2))
    total = float(sum(bwd)) or 1.0
    limit = bucket_mb * 1048576.0
    out, pending, t = [], 0.0, 0.0
    for i in range(len(layers) - 1, -1, -1):
        t += t_backward * bwd[i] / total
        pending += 4.0 * layers[i]["trainable"]
        if pending >= limit:
            out.append((t, pending))
            pending = 0.0
    if pending > 0:
        out.append((t_backward, pending))
    return out


def step_model(layers, p, bw, alpha, t_compute, bucket_mb, algo, sync_bn=True):
    t_b = t_compute * 2.0 / 3.0  # backward = 2x forward multiply-adds
    bk = buckets(layers, bucket_mb, t_b)
    end = 0.0
    for launch, s in bk:
        end = max(end, launch) + allreduce_time(s, p, bw, alpha, algo)
    exposed_overlap = max(0.0, end - t_b)
    exposed_none = sum(allreduce_time(s, p, bw, alpha, algo) for _, s in bk)
    bn = 0.0
    if sync_bn and p > 1:
        lg = math.ceil(math.log2(p))
        for l in layers:
            if l["bn_c"]:
                m = (2 * l["bn_c"] + 1) * 8.0
                bn += 2 * lg * (alpha + m / bw)  # forward and backward
    grad_bytes = sum(4.0 * l["trainable"] for l in layers)
    return {
        "p": p, "bw_Gbit": round(bw * 8 / 1e9, 3), "alpha_us": round(alpha * 1e6, 2), "algo": algo,
        "grad_MB": round(grad_bytes / 1e6, 2), "buckets": len(bk),
        "last_bucket_MB": round(bk[-1][1] / 1e6, 2) if bk else 0,
        "t_compute_s": round(t_compute, 4),
        "allreduce_total_ms": round(1e3 * exposed_none, 2),
        "exposed_overlap_ms": round(1e3 * exposed_overlap, 2),
        "sync_bn_ms": round(1e3 * bn, 2),
        "efficiency_overlap": round(t_compute / (t_compute + exposed_overlap + bn), 3),
        "efficiency_no_overlap": round(t_compute / (t_compute + exposed_none + bn), 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shardnet", default="build/shardnet")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--input", default=None)
    ap.add_argument("--classes", type=int, default=None)
    ap.add_argument("--bucket-mb", type=float, default=25.0)
    ap.add_argument("--no-sync-bn", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table", help="projection for 8/64/256 ranks, 100/25/10 Gbit/s, alpha 2/5 us")
    t.add_argument("--rate-per-rank", type=float, nargs="+", default=[32.0, 128.0],
                   help="training images/s of one rank alone (sets t_compute)")
    t.add_argument("--local-batch", type=int, default=32)
    t.add_argument("--algos", nargs="+", default=["ring", "rabenseifner", "binomial"])
    pr = sub.add_parser("predict", help="one configuration")
    pr.add_argument("--p", type=int, required=True)
    pr.add_argument("--bw", type=float, required=True, help="bytes/s")
    pr.add_argument("--alpha", type=float, required=True, help="seconds")
    pr.add_argument("--t-compute", type=float, required=True, help="forward + backward seconds per step")
    pr.add_argument("--algo", default="binomial")
    a = ap.parse_args()
    layers = layers_from_summary(a.shardnet, a.arch, a.input, a.classes)
    sync = not a.no_sync_bn
    if a.cmd == "predict":
        print(json.dumps(step_model(layers, a.p, a.bw, a.alpha, a.t_compute, a.bucket_mb, a.algo, sync)))
        return
    for rate in a.rate_per_rank:
        tc = a.local_batch / rate
        for algo in a.algos:
            for p in (8, 64, 256):
                for gbit in (100, 25, 10):
                    for alpha in (2e-6, 5e-6):
                        r = step_model(layers, p, gbit * 1e9 / 8, alpha, tc, a.bucket_mb, algo, sync)
                        r.update({"arch": a.arch, "rate_per_rank": rate, "local_batch": a.local_batch})
                        print(json.dumps(r))


if __name__ == "__main__":
    main()
