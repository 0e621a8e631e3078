#!/usr/bin/python3
"""binding_bench.py - what the Python binding adds to a forward pass: Model.predict (input
checks, conversion, the loop over batches, the output array) against bare sn_net_forward calls
through ctypes on the same planned network and the same float32 input, alternated call by call
(A B, then B A) in one process. Prints the median and quartiles of each and of the per-round
ratio predict / bare (docs/python.md, "Performance").

  PYTHONPATH=build/python jobs/bench/binding_bench.py --arch resnet50 --images 64 --batch 16
  PYTHONPATH=build/python jobs/bench/binding_bench.py --arch lenet --size 28 --channels 1 \
      --images 4096 --batch 256 --rounds 20
"""
import argparse
import ctypes
import time

import numpy as np

import shardnet
from shardnet import _lib


def quartiles(v):
    q = np.percentile(v, [25, 50, 75])
    return "%.4g [%.4g, %.4g]" % (q[1], q[0], q[2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    m = shardnet.Model(a.arch, input_shape=(a.size, a.size, a.channels), threads=a.threads)
    x = np.random.RandomState(0).standard_normal((a.images, a.size, a.size, a.channels))
    x = x.astype(np.float32)
    m.predict(x[:a.batch], batch_size=a.batch)  # plans the net, warms up
    out = np.empty((a.images, m.classes), np.float32)
    fp = ctypes.POINTER(ctypes.c_float)

    def bare():
        for i in range(0, a.images, a.batch):
            n = min(a.batch, a.images - i)
            _lib.check(_lib.lib.sn_net_forward(m._net, x[i:i + n].ctypes.data_as(fp), n,
                                               out[i:i + n].ctypes.data_as(fp)))

    def predict():
        m.predict(x, batch_size=a.batch)

    times = {"predict": [], "bare": []}
    for r in range(a.rounds):
        order = (("predict", predict), ("bare", bare))
        for name, fn in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    ratio = np.array(times["predict"]) / np.array(times["bare"])
    print("%s, %d images %dx%d, batch %d, %d threads, %d rounds" % (
        a.arch, a.images, a.size, a.size, a.batch, shardnet.get_threads(), a.rounds))
    for name in ("predict", "bare"):
        print("  %-8s s per call %s" % (name, quartiles(times[name])))
    print("  ratio predict / bare  %s" % quartiles(ratio))


if __name__ == "__main__":
    main()
