"""Helpers of the Python tests (tests/python/*_test.py): temporary directories, small datasets
in the schema of docs/hdf5-schema.md, runs of the shardnet program, Keras-layout weight files."""
import os
import shutil
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

import shardnet


class TempDirTest(unittest.TestCase):
    """A test case with a fresh temporary directory self.tmp."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sn-pytest-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)


def images(n, h, w, c, seed=0, dtype=np.uint8):
    """Random pixels 0..255 (n, h, w, c)."""
    rs = np.random.RandomState(seed)
    return rs.randint(0, 256, size=(n, h, w, c)).astype(dtype)


def write_dataset(path, x, labels=None):
    """A raw dataset file: /images (and /labels)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=x)
        if labels is not None:
            f.create_dataset("labels", data=np.asarray(labels, np.int32))
    return path


def cli(*args, check=True):
    """Runs the shardnet program (the one the package runs) and returns the CompletedProcess."""
    p = subprocess.run([shardnet.jobs.program()] + [str(a) for a in args], capture_output=True,
                       text=True)
    if check and p.returncode != 0:
        raise AssertionError("shardnet %s failed (%d): %s" % (" ".join(map(str, args)),
                                                            p.returncode, p.stderr))
    return p


def write_keras_h5(native, path):
    """Rewrites a shardnet native weights file (/params/<layer>/<role>) in Keras 2's legacy HDF5
    layout, as model.save_weights("x.h5") writes it: root attribute layer_names, one group per
    layer with weight_names, datasets at <layer>/<layer>/<role>:0 (docs/models.md)."""
    order = {"kernel": 0, "bias": 1, "gamma": 0, "beta": 1, "moving_mean": 2,
             "moving_variance": 3}
    with h5py.File(native, "r") as src, h5py.File(path, "w") as dst:
        layers = list(src["params"].keys())
        dst.attrs["layer_names"] = np.array([n.encode() for n in layers])
        dst.attrs["backend"] = b"tensorflow"
        dst.attrs["keras_version"] = b"2.15.0"
        for name in layers:
            g = dst.create_group(name)
            roles = sorted(src["params"][name].keys(), key=lambda r: order[r])
            g.attrs["weight_names"] = np.array([("%s/%s:0" % (name, r)).encode() for r in roles])
            for r in roles:
                g.create_dataset("%s/%s:0" % (name, r), data=src["params"][name][r][()])
    return path
