"""Tests of docs/python.md: its examples run as printed, with the file names pointed at files
made here (a full-size keras_resnet50 with random weights in Keras' layout, a JPEG, an HDF5
dataset), and give what the steps done in this process give."""
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

from shardnet.applications import ResNet50, preprocess_input
from sn_testutil import TempDirTest, write_keras_h5

try:
    from PIL import Image as PILImage
except ImportError:
    PILImage = None

DOC = os.path.join(os.environ.get("SN_SOURCE_DIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")), "docs", "python.md")


def blocks(containing):
    with open(DOC) as f:
        text = f.read()
    found = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if containing in b]
    assert len(found) == 1, "docs/python.md: %d python blocks contain %r" % (len(found), containing)
    return found[0]


def substitute(code, old, new):
    assert old in code, "docs/python.md: %r not in the example" % old
    return code.replace(old, new)


@unittest.skipIf(PILImage is None, "Pillow (python3-pil) missing")
class Examples(TempDirTest):

    @classmethod
    def setUpClass(cls):  # one weights file (100 MB) for both examples
        cls.shared = tempfile.mkdtemp(prefix="sn-pytest-docs-")
        native = os.path.join(cls.shared, "native.h5")
        ResNet50(weights=None, seed=5).save_weights(native)
        cls.weights = write_keras_h5(native, os.path.join(cls.shared, "keras_resnet50.h5"))
        os.unlink(native)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.shared, ignore_errors=True)

    def run_example(self, code):
        path = self.path("example.py")
        with open(path, "w") as f:
            f.write(code)
        ast.parse(code)
        p = subprocess.run([sys.executable, path], cwd=self.tmp, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_pretrained_workflow(self):
        rs = np.random.RandomState(1)
        photo = np.clip(np.cumsum(rs.randint(-6, 7, (240, 320, 3)), axis=0) + 100, 0, 255)
        PILImage.fromarray(photo.astype(np.uint8)).save(self.path("photo.jpg"), quality=90)
        code = blocks("decode_predictions(model.predict")
        code = substitute(code, '"resnet50_weights_tf_dim_ordering_tf_kernels.h5"',
                          repr(self.weights))
        code = substitute(code, '"elephant.jpg"', repr(self.path("photo.jpg")))
        top3 = ast.literal_eval(re.sub(r"np\.float32\(([^)]*)\)", r"\1", self.run_example(code)))
        self.assertEqual(len(top3), 3)
        scores = [t[2] for t in top3]
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertTrue(all(re.match(r"n\d{8}$", t[0]) for t in top3))

    def test_multiprocessing_blocks(self):
        x = np.random.RandomState(2).randint(0, 256, (20, 48, 40, 3)).astype(np.uint8)
        with h5py.File(self.path("images.h5"), "w") as f:
            f["images"] = x
        code = blocks("multiprocessing")
        code = substitute(code, 'WEIGHTS = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"',
                          "WEIGHTS = %r" % self.weights)
        code = substitute(code, "WORKERS, THREADS, BLOCK = 2, 1, 64",
                          "WORKERS, THREADS, BLOCK = 2, 1, 8")
        self.run_example(code)
        with h5py.File(self.path("features.h5"), "r") as f:
            got = f["features"][()]
        m = ResNet50(weights=self.weights, include_top=False, pooling="avg")
        np.testing.assert_array_equal(got, m.predict(preprocess_input(x), batch_size=16))


if __name__ == "__main__":
    unittest.main()
