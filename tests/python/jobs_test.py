"""Tests of python/shardnet/jobs.py: `shardnet train` and `shardnet infer` on 2 MPI ranks from
Python return the output path and the metrics lines; the predictions equal Model.predict on the
trained weights; a failing run raises JobError with the program's message and exit status."""
import os
import unittest

import h5py
import numpy as np

import shardnet
from shardnet import errors, jobs
from sn_testutil import TempDirTest, images, write_dataset

MODEL = dict(arch="resnet20", input="28x28x1", width=8)


class Options(unittest.TestCase):

    def test_keywords_become_options(self):
        self.assertEqual(jobs.options(top_k=0, logits=True, features=False, weights=None,
                                      features_dtype="f16"),
                         ["--top-k", "0", "--logits", "--features-dtype", "f16"])


class TrainThenInfer(TempDirTest):

    def test_two_ranks(self):
        x = images(48, 28, 28, 1, seed=1)
        labels = np.arange(48) % 10
        data = write_dataset(self.path("train.h5"), x, labels)
        w = self.path("w.h5")
        r = jobs.train(data, out=w, ranks=2, threads=1, epochs=2, batch=16, lr=0.05, quiet=True,
                       input=MODEL["input"], width=MODEL["width"], arch=MODEL["arch"])
        self.assertEqual(r.out, os.path.abspath(w))
        self.assertTrue(os.path.isfile(w))
        self.assertEqual([m["epoch"] for m in r.metrics], [1, 2])
        self.assertEqual(r.metrics[-1]["ranks"], 2)
        self.assertEqual(r.metrics[-1]["step"], 6)
        self.assertTrue(np.isfinite(r.metrics[-1]["train_loss"]))

        out = self.path("preds.h5")
        metrics = self.path("infer.jsonl")
        with open(metrics, "w") as f:
            f.write('{"earlier": 1}\n')  # only this run's lines are returned
        r = jobs.infer(data, out, weights=w, ranks=2, threads=1, batch=8, logits=True, top_k=2,
                       quiet=True, metrics=metrics, input=MODEL["input"], width=MODEL["width"],
                       arch=MODEL["arch"])
        self.assertEqual(r.out, os.path.abspath(out))
        self.assertEqual(len(r.metrics), 1)
        self.assertEqual(r.metrics[0]["rows"], 48)
        self.assertEqual(r.metrics[0]["ranks"], 2)
        with h5py.File(out, "r") as f:
            self.assertEqual(int(f.attrs["complete"]), 1)
            logits = f["logits"][()]
        m = shardnet.Model("resnet20", input_shape=(28, 28, 1), base_width=8, weights=w)
        pred = m.predict(m.preprocess_input(x), batch_size=8)
        np.testing.assert_array_equal(pred, logits)


class Environment(TempDirTest):

    def test_the_modules_openmp_settings_stay_out_of_the_program(self):
        # the program sets how its ranks' threads wait; what this module set for itself must
        # not reach it, what the user set must
        from shardnet import _lib
        probe = self.path("env.sh")
        with open(probe, "w") as f:
            f.write('#!/bin/sh\necho "${OMP_WAIT_POLICY:-unset} ${SN_PROBE:-unset}"\n')
        os.chmod(probe, 0o755)
        saved, saved_set = dict(os.environ), dict(_lib.ENV_SET)
        try:
            os.environ["SHARDNET_PROGRAM"] = probe
            os.environ["OMP_WAIT_POLICY"] = "passive"
            _lib.ENV_SET["OMP_WAIT_POLICY"] = "passive"
            r = jobs.run("infer", env={"SN_PROBE": "1"})
            self.assertEqual(r.stdout.split(), ["unset", "1"])
            os.environ["OMP_WAIT_POLICY"] = "active"  # the user's own value is passed on
            self.assertEqual(jobs.run("infer").stdout.split(), ["active", "unset"])
        finally:
            os.environ.clear()
            os.environ.update(saved)
            _lib.ENV_SET.clear()
            _lib.ENV_SET.update(saved_set)


class Failures(TempDirTest):

    def test_missing_data_is_a_job_error(self):
        missing = self.path("missing.h5")
        with self.assertRaises(errors.JobError) as e:
            jobs.infer(missing, self.path("p.h5"), arch="resnet20", quiet=True)
        self.assertEqual(e.exception.returncode, 3)
        self.assertIn(missing, str(e.exception))
        self.assertIn("error:", str(e.exception))
        self.assertIn("infer", e.exception.command)

    def test_bad_option_is_a_usage_error(self):
        data = write_dataset(self.path("d.h5"), images(4, 28, 28, 1))
        with self.assertRaises(errors.JobError) as e:
            jobs.train(data, arch="resnet20", ranks=2, no_such_option=3)
        self.assertEqual(e.exception.returncode, 2)
        self.assertIn("--no-such-option", str(e.exception))


if __name__ == "__main__":
    unittest.main()
