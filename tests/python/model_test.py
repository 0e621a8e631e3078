"""Tests of python/shardnet/model.py: Model.predict, extract_features and classify give the bits
`shardnet infer` writes for the same weights and input (/logits, /features, /predictions); the
Keras conventions (softmax outputs, input shapes, flexible size without classifier); weights
round trips; errors carry the library's message."""
import os
import unittest

import h5py
import numpy as np

import shardnet
from shardnet import errors
from shardnet.applications import preprocess_input
from sn_testutil import TempDirTest, cli, images, write_dataset

THREADS = 2


def infer_outputs(t, arch, weights, data, batch, extra=()):
    """`shardnet infer` on data: the output file's datasets as a dict."""
    out = t.path("out-%s-%d.h5" % (arch, batch))
    cli("infer", "--arch", arch, "--width", 8, "--classes", 10, "--weights", weights, "--data", data, "--out", out,
        "--logits", "--features", "--top-k", 3, "--batch", batch, "--threads", THREADS, "--quiet",
        "--force", *extra)
    with h5py.File(out, "r") as f:
        return {k: f[k][()] for k in ("logits", "features", "predictions/top_k_indices",
                                      "predictions/top_k_scores")}


class PredictEqualsCli(TempDirTest):
    """Same weights, same input, same batch size: the same bits as the command line."""

    def check_arch(self, arch, hw, c, preprocess_in_python):
        model = shardnet.Model(arch, base_width=8, input_shape=(hw, hw, c), classes=10,
                               classifier_activation=None, threads=THREADS, seed=7)
        weights = self.path(arch + ".h5")
        model.save_weights(weights)
        x8 = images(11, hw, hw, c, seed=3)
        if preprocess_in_python:
            # uint8 dataset preprocessed by the program; preprocess_input here
            data = write_dataset(self.path(arch + "-u8.h5"), x8)
            x = preprocess_input(x8, mode=model.preprocessing)
            extra = ()
        else:
            x = np.random.RandomState(5).standard_normal((11, hw, hw, c)).astype(np.float32)
            data = write_dataset(self.path(arch + "-f32.h5"), x)
            extra = ("--preprocess", "none")
        for batch in (4, 32):
            ref = infer_outputs(self, arch, weights, data, batch, extra)
            logits = model.predict(x, batch_size=batch)
            self.assertEqual(logits.dtype, np.float32)
            np.testing.assert_array_equal(logits, ref["logits"], "%s batch %d" % (arch, batch))
            np.testing.assert_array_equal(model.extract_features(x, batch_size=batch),
                                          ref["features"])
            idx, p = model.classify(x, top=3, batch_size=batch)
            np.testing.assert_array_equal(idx, ref["predictions/top_k_indices"])
            np.testing.assert_array_equal(p, ref["predictions/top_k_scores"])
        # the softmax output is the probabilities the program's top-k scores are taken from
        model.classifier_activation = "softmax"
        probs = model.predict(x, batch_size=32)
        np.testing.assert_array_equal(np.take_along_axis(probs, idx, axis=1), p)
        model.close()

    def test_keras_resnet50_uint8_preprocessed_in_python(self):
        self.check_arch("keras_resnet50", 40, 3, True)

    def test_resnet18_float_input(self):
        self.check_arch("resnet18", 36, 3, False)

    def test_lenet_bn_grey(self):
        self.check_arch("lenet_bn", 28, 1, True)

    def test_keras_resnet50v2_uint8(self):
        self.check_arch("keras_resnet50v2", 36, 3, True)


class KerasConventions(TempDirTest):

    def test_defaults_follow_the_framework(self):
        m = shardnet.Model("keras_resnet50", base_width=8, input_shape=(32, 32, 3))
        self.assertEqual(m.classifier_activation, "softmax")
        self.assertEqual(m.preprocessing, "caffe")
        self.assertEqual(m.input_shape, (None, 32, 32, 3))
        self.assertEqual(m.output_shape, (None, 1000))
        self.assertEqual(m.classes, 1000)
        p = m.predict(np.zeros((2, 32, 32, 3), np.float32))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        t = shardnet.Model("resnet18", base_width=8, input_shape=(32, 32, 3), classes=5)
        self.assertIsNone(t.classifier_activation)
        self.assertEqual(t.preprocessing, "torch")
        self.assertEqual(t.output_shape, (None, 5))
        self.assertEqual(shardnet.Model("resnet20").input_shape, (None, 32, 32, 3))
        self.assertEqual(shardnet.Model("lenet").preprocessing, "unit")

    def test_no_top_shapes_and_pooling(self):
        m = shardnet.Model("keras_resnet50v2", include_top=False, base_width=8,
                           input_shape=(64, 64, 3))
        self.assertEqual(m.classes, 0)
        self.assertIsNone(m.classifier_activation)
        self.assertEqual(m.output_shape, (None, 2, 2, 256))
        x = np.random.RandomState(1).standard_normal((3, 64, 64, 3)).astype(np.float32)
        maps = m.predict(x)
        self.assertEqual(maps.shape, (3, 2, 2, 256))
        avg = shardnet.Model("keras_resnet50v2", include_top=False, pooling="avg", base_width=8,
                             input_shape=(64, 64, 3))
        self.assertEqual(avg.output_shape, (None, 256))
        with self.assertRaises(ValueError):
            m.classify(x)

    def test_without_input_shape_a_feature_extractor_takes_any_size(self):
        # Keras' (None, None, 3): the net is rebuilt for each size with the same parameters
        m = shardnet.Model("resnet18", include_top=False, pooling="avg", base_width=8, seed=3)
        self.assertEqual(m.input_shape, (None, None, None, 3))
        x = np.random.RandomState(2).standard_normal((2, 48, 40, 3)).astype(np.float32)
        got = m.predict(x)
        fixed = shardnet.Model("resnet18", include_top=False, pooling="avg", base_width=8, seed=3,
                               input_shape=(48, 40, 3))
        np.testing.assert_array_equal(got, fixed.predict(x))
        y = np.random.RandomState(3).standard_normal((1, 64, 64, 3)).astype(np.float32)
        self.assertEqual(m.predict(y).shape, (1, 64))
        np.testing.assert_array_equal(m.predict(x), got)

    def test_dtype_and_layout_are_converted(self):
        m = shardnet.Model("lenet", seed=2)
        x = np.random.RandomState(4).uniform(0, 1, (5, 28, 28, 1))
        ref = m.predict(x.astype(np.float32))
        np.testing.assert_array_equal(m.predict(x), ref)  # float64 in
        xf = np.asfortranarray(x.astype(np.float32))
        np.testing.assert_array_equal(m.predict(xf), ref)  # not C-contiguous
        self.assertEqual(m.predict(x[:0]).shape, (0, 10))

    def test_summary_is_the_programs(self):
        m = shardnet.Model("resnet20", input_shape=(28, 28, 1))
        lines = []
        m.summary(print_fn=lines.append)
        ref = cli("summary", "--arch", "resnet20", "--input", "28x28x1").stdout
        self.assertEqual(lines[0].rstrip("\n"), ref.rstrip("\n"))
        self.assertIn("Total params: %s" % format(m.count_params(), ","), lines[0])

    def test_threads(self):
        before = shardnet.get_threads()
        shardnet.set_threads(1)
        self.assertEqual(shardnet.get_threads(), 1)
        with self.assertRaises(errors.InvalidArgumentError) as e:
            shardnet.set_threads(0)
        self.assertIn("0 threads", str(e.exception))
        shardnet.set_threads(before)
        m = shardnet.Model("lenet", threads=1)
        x = np.zeros((2, 28, 28, 1), np.float32)
        one = m.predict(x)
        self.assertEqual(shardnet.get_threads(), 1)
        m.threads = 2
        np.testing.assert_array_equal(m.predict(x), one)
        shardnet.set_threads(before)


class Concurrency(TempDirTest):
    """The library holds no per-process state a pass depends on and ctypes releases the GIL:
    separate models used from separate Python threads give the bits they give one at a time,
    and a failure's message is the failing thread's own."""

    def test_models_in_parallel_threads(self):
        import threading
        rs = np.random.RandomState(6)
        jobs = [(shardnet.Model("resnet18", base_width=8, input_shape=(32, 32, 3), seed=s,
                                threads=1), rs.standard_normal((5, 32, 32, 3)).astype(np.float32))
                for s in (1, 2)]
        jobs.append((shardnet.Model("lenet_bn", seed=3, threads=1),
                     rs.uniform(0, 1, (9, 28, 28, 1)).astype(np.float32)))
        want = [m.predict(x, batch_size=4) for m, x in jobs]
        got, failures = [[] for _ in jobs], []

        def work(i):
            m, x = jobs[i]
            for _ in range(4):
                got[i].append(m.predict(x, batch_size=4))
            try:  # another thread's failure must not leak its message into this one's
                m.predict(np.zeros((1, 7, 7, 5), np.float32))
            except ValueError as e:
                failures.append(str(e))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (m, _) in enumerate(jobs):
            self.assertEqual(len(got[i]), 4)
            for g in got[i]:
                np.testing.assert_array_equal(g, want[i], m.arch)
        self.assertEqual(len(failures), len(jobs))
        for f in failures:
            self.assertIn("7x7x5", f)
        # a library error raised in a thread carries that thread's message
        msgs = {}

        def bad(name):
            try:
                shardnet.Model(name)
            except errors.InvalidArgumentError as e:
                msgs[name] = str(e)

        names = ["no_such_arch_%d" % i for i in range(8)]
        threads = [threading.Thread(target=bad, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in names:
            self.assertIn("'%s'" % n, msgs[n])


class Weights(TempDirTest):

    def test_native_round_trip_and_no_top_from_a_top_file(self):
        a = shardnet.Model("resnet18", base_width=8, input_shape=(32, 32, 3), classes=4, seed=1)
        w = self.path("a.h5")
        a.save_weights(w)
        b = shardnet.Model("resnet18", base_width=8, input_shape=(32, 32, 3), classes=4, seed=2,
                           weights=w)
        self.assertEqual(b.weights, w)
        self.assertEqual(len(b.weights_md5), 32)
        x = np.random.RandomState(0).standard_normal((3, 32, 32, 3)).astype(np.float32)
        np.testing.assert_array_equal(a.predict(x), b.predict(x))
        # a feature extractor skips the file's classifier
        c = shardnet.Model("resnet18", include_top=False, pooling="avg", base_width=8,
                           input_shape=(32, 32, 3), weights=w)
        np.testing.assert_array_equal(c.predict(x), a.extract_features(x))


class Errors(TempDirTest):

    def test_unknown_architecture_names_the_known_ones(self):
        with self.assertRaises(errors.InvalidArgumentError) as e:
            shardnet.Model("resnet9000")
        self.assertIn("unknown architecture 'resnet9000'", str(e.exception))
        self.assertIn("keras_resnet50", str(e.exception))
        self.assertEqual(e.exception.status, errors.INVALID)

    def test_weights_files(self):
        missing = self.path("nope.h5")
        with self.assertRaises(errors.FileError) as e:
            shardnet.Model("lenet", weights=missing)
        self.assertIn(missing, str(e.exception))
        self.assertIsInstance(e.exception, OSError)
        other = self.path("lenet10.h5")
        shardnet.Model("lenet", classes=10).save_weights(other)
        with self.assertRaises(errors.ShapeError) as e:  # wrong class count: names layer, shapes
            shardnet.Model("lenet", classes=3, weights=other)
        self.assertIn("dense_2", str(e.exception))
        self.assertIn("(84,3)", str(e.exception).replace(" ", ""))
        junk = self.path("junk.h5")
        with open(junk, "wb") as f:
            f.write(b"not hdf5 at all")
        with self.assertRaises(errors.FormatError) as e:
            shardnet.Model("lenet", weights=junk)
        self.assertIn(junk, str(e.exception))
        with self.assertRaises(FileNotFoundError) as e:
            os.environ["KERAS_HOME"] = self.tmp
            try:
                shardnet.Model("keras_resnet50", weights="imagenet")
            finally:
                del os.environ["KERAS_HOME"]
        self.assertIn("resnet50_weights_tf_dim_ordering_tf_kernels.h5", str(e.exception))

    def test_bad_inputs(self):
        m = shardnet.Model("lenet")
        with self.assertRaises(ValueError) as e:
            m.predict(np.zeros((28, 28, 1), np.float32))
        self.assertIn("x[None]", str(e.exception))
        with self.assertRaises(ValueError) as e:
            m.predict(np.zeros((2, 32, 32, 3), np.float32))
        self.assertIn("32x32x3", str(e.exception))
        self.assertIn("28x28x1", str(e.exception))
        x = np.zeros((3, 28, 28, 1), np.float32)
        x[2, 5, 5, 0] = np.nan
        with self.assertRaises(ValueError) as e:
            m.predict(x)
        self.assertIn("image 2", str(e.exception))
        with self.assertRaises(ValueError):
            m.predict(np.zeros((1, 28, 28, 1)), batch_size=0)
        with self.assertRaises(ValueError):
            m.classify(np.zeros((1, 28, 28, 1)), top=11)
        with self.assertRaises(ValueError):
            shardnet.Model("lenet", pooling="sum")
        with self.assertRaises(ValueError):
            shardnet.Model("lenet", input_shape=(28, 28))
        with self.assertRaises(ValueError):
            shardnet.Model("lenet", input_shape=(None, None, 1))  # a classifier needs a size
        with self.assertRaises(errors.ShapeError) as e:  # the library's size check
            shardnet.Model("resnet50", input_shape=(4, 4, 3))
        self.assertIn("4x4x3", str(e.exception))
        m.close()
        with self.assertRaises(ValueError) as e:
            m.predict(np.zeros((1, 28, 28, 1)))
        self.assertIn("closed", str(e.exception))


if __name__ == "__main__":
    unittest.main()
