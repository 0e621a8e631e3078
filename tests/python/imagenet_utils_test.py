"""Tests of python/shardnet/applications/imagenet_utils.py against Keras' own
keras_applications/imagenet_utils.py (Debian's python3-keras-applications): preprocess_input
gives the same arrays bit for bit, in place as Keras does; decode_predictions gives the same
(wnid, name, score) tuples, sorted, and refuses the same shapes."""
import hashlib
import json
import os
import unittest

import numpy as np

from shardnet import _lib
from shardnet.applications import decode_predictions, imagenet_utils, preprocess_input

try:
    from keras_applications import imagenet_utils as keras_utils
except ImportError:  # jobs/test.sh installs python3-keras-applications
    keras_utils = None


class _Backend:  # the one thing Keras' numpy path asks of its backend
    @staticmethod
    def floatx():
        return "float32"


def keras_preprocess(x, data_format, mode):
    return keras_utils.preprocess_input(x, data_format=data_format, mode=mode, backend=_Backend)


@unittest.skipIf(keras_utils is None, "keras_applications (python3-keras-applications) missing")
class PreprocessEqualsKeras(unittest.TestCase):

    def test_every_mode_format_and_dtype(self):
        rs = np.random.RandomState(0)
        for mode in ("caffe", "tf", "torch"):
            for fmt, shape in (("channels_last", (2, 5, 7, 3)), ("channels_last", (5, 7, 3)),
                               ("channels_first", (2, 3, 5, 7)), ("channels_first", (3, 5, 7))):
                for dtype in (np.uint8, np.float32, np.float64):
                    x = rs.randint(0, 256, size=shape).astype(dtype)
                    ours = preprocess_input(x.copy(), data_format=fmt, mode=mode)
                    ref = keras_preprocess(x.copy(), fmt, mode)
                    what = "%s %s %s %s" % (mode, fmt, shape, dtype.__name__)
                    self.assertEqual(ours.dtype, ref.dtype, what)
                    self.assertEqual(ours.shape, ref.shape, what)
                    np.testing.assert_array_equal(ours, ref, what)

    def test_float_input_is_changed_in_place_like_keras(self):
        x = np.full((1, 2, 2, 3), 200.0, np.float32)
        y = preprocess_input(x, mode="tf")
        self.assertIs(y, x)
        np.testing.assert_array_equal(x, np.float32(200.0) / np.float32(127.5) - np.float32(1))
        u = np.full((1, 2, 2, 3), 200, np.uint8)
        self.assertEqual(preprocess_input(u).dtype, np.float32)
        self.assertEqual(u[0, 0, 0, 0], 200)  # integer input is converted, not changed

    def test_default_mode_is_caffe(self):
        x = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
        np.testing.assert_array_equal(preprocess_input(x.copy()),
                                      keras_preprocess(x.copy(), "channels_last", "caffe"))


class PreprocessModes(unittest.TestCase):

    def test_unit_and_unknown_modes(self):
        x = np.array([[[[0, 51, 255]]]], np.uint8)
        np.testing.assert_array_equal(preprocess_input(x, mode="unit"),
                                      np.array([[[[0, 51, 255]]]], np.float32) / np.float32(255))
        with self.assertRaises(ValueError):
            preprocess_input(x, mode="caffee")
        with self.assertRaises(ValueError):
            preprocess_input(x, data_format="nhwc")


class DecodePredictions(unittest.TestCase):

    def test_class_index_is_keras_file(self):
        path = os.path.join(_lib.package_path("DATA"), "imagenet_class_index.json")
        with open(path, "rb") as f:
            self.assertEqual(hashlib.md5(f.read()).hexdigest(), "c2c37ea517e94d9795004a39431a14cb")

    def test_tuples_sorted_by_score(self):
        rs = np.random.RandomState(1)
        preds = rs.dirichlet(np.ones(1000), size=4).astype(np.float32)
        preds[2, 7] = preds[2, 9] = 0.9  # a tie
        got = decode_predictions(preds, top=6)
        self.assertEqual(len(got), 4)
        index = imagenet_utils.class_index()
        for row, p in zip(got, preds):
            self.assertEqual(len(row), 6)
            scores = [t[2] for t in row]
            self.assertEqual(scores, sorted(scores, reverse=True))
            self.assertEqual(scores[0], p.max())
            for wnid, name, score in row:
                i = [k for k, v in index.items() if v[0] == wnid][0]
                self.assertEqual(index[i][1], name)
                self.assertEqual(score, p[int(i)])
                self.assertIsInstance(score, np.float32)
        self.assertEqual(got[0][0][:2], tuple(index[str(int(np.argmax(preds[0])))]))
        self.assertEqual(decode_predictions(preds[:1], top=1)[0][0][0],
                         index[str(int(np.argmax(preds[0])))][0])

    @unittest.skipIf(keras_utils is None, "keras_applications missing")
    def test_equals_keras(self):
        path = os.path.join(_lib.package_path("DATA"), "imagenet_class_index.json")
        with open(path) as f:
            keras_utils.CLASS_INDEX = json.load(f)  # Keras would download this very file
        preds = np.random.RandomState(2).rand(3, 1000).astype(np.float32)
        for top in (1, 3, 5, 1000):
            self.assertEqual(decode_predictions(preds, top=top),
                             keras_utils.decode_predictions(preds, top=top))

    def test_refuses_other_shapes(self):
        for shape in ((1000,), (2, 10), (2, 1000, 1)):
            with self.assertRaises(ValueError) as e:
                decode_predictions(np.zeros(shape, np.float32))
            self.assertIn("(samples, 1000)", str(e.exception))
            self.assertIn(str(shape), str(e.exception))


if __name__ == "__main__":
    unittest.main()
