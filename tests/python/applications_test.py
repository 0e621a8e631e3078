"""Tests of python/shardnet/applications/: the course's pretrained workflow (load_img,
img_to_array, preprocess_input, predict, decode_predictions) on a Keras-layout weights file,
against the same steps done by hand; each constructor's architecture and defaults; the Keras
"imagenet" weights found where Keras keeps them; every architecture name passes through."""
import os
import unittest

import h5py
import numpy as np

import shardnet
from shardnet import applications
from shardnet.applications import resnet, resnet_v2, small, torchvision
from sn_testutil import TempDirTest, write_keras_h5

try:
    from PIL import Image as PILImage
except ImportError:
    PILImage = None


@unittest.skipIf(PILImage is None, "Pillow (python3-pil) missing")
class CourseWorkflow(TempDirTest):

    def test_the_course_code_runs_and_equals_the_steps_by_hand(self):
        # weights: a narrow keras_resnet50 saved in Keras' legacy layout
        src = shardnet.Model("keras_resnet50", base_width=8, seed=4)
        native = self.path("native.h5")
        src.save_weights(native)
        with h5py.File(native, "r+") as f:  # moderate logits: no probabilities rounded to 0
            k = f["params/predictions/kernel"]
            k[...] = k[()] * np.float32(1e-3)
        weights = write_keras_h5(native, self.path("resnet50_weights.h5"))
        rs = np.random.RandomState(0)
        photo = np.clip(np.cumsum(rs.randint(-5, 6, (300, 400, 3)), axis=1) + 120, 0, 255)
        path = self.path("elephant.jpg")
        PILImage.fromarray(photo.astype(np.uint8)).save(path, quality=92)

        from shardnet.applications import ResNet50, preprocess_input, decode_predictions
        from shardnet.preprocessing import image
        model = ResNet50(weights=weights, base_width=8)
        x = image.img_to_array(image.load_img(path, target_size=(224, 224)))[None]
        got = decode_predictions(model.predict(preprocess_input(x)), top=3)[0]

        # by hand: Pillow's nearest resize, Keras' caffe formula, the native file, softmax
        pix = np.asarray(PILImage.open(path).convert("RGB").resize((224, 224), PILImage.NEAREST))
        bgr = pix[..., ::-1].astype(np.float32)
        bgr -= np.array([103.939, 116.779, 123.68], np.float32)
        ref = shardnet.Model("keras_resnet50", base_width=8, weights=native)
        logits = shardnet.Model("keras_resnet50", base_width=8, weights=native,
                                classifier_activation=None).predict(bgr[None])
        probs = ref.predict(bgr[None])
        np.testing.assert_array_equal(model.predict(preprocess_input(
            image.img_to_array(image.load_img(path, target_size=(224, 224)))[None])), probs)
        e = np.exp(logits.astype(np.float64) - logits.max())
        np.testing.assert_allclose(probs, e / e.sum(), rtol=1e-5, atol=1e-7)
        top = np.argsort(-probs[0], kind="stable")[:3]
        index = applications.imagenet_utils.class_index()
        self.assertEqual([t[:2] for t in got], [tuple(index[str(i)]) for i in top])
        self.assertEqual([t[2] for t in got], [probs[0, i] for i in top])


class Constructors(unittest.TestCase):

    def test_architecture_and_defaults(self):
        cases = [
            (applications.ResNet50, "keras_resnet50", "caffe", "softmax"),
            (applications.ResNet101, "keras_resnet101", "caffe", "softmax"),
            (applications.ResNet152, "keras_resnet152", "caffe", "softmax"),
            (applications.ResNet50V2, "keras_resnet50v2", "tf", "softmax"),
            (applications.ResNet101V2, "keras_resnet101v2", "tf", "softmax"),
            (applications.ResNet152V2, "keras_resnet152v2", "tf", "softmax"),
            (applications.resnet18, "resnet18", "torch", None),
            (applications.resnet34, "resnet34", "torch", None),
            (applications.resnet50, "resnet50", "torch", None),
            (applications.resnet101, "resnet101", "torch", None),
            (applications.resnet152, "resnet152", "torch", None),
            (applications.resnet20, "resnet20", "unit", None),
            (applications.resnet32, "resnet32", "unit", None),
            (applications.resnet56, "resnet56", "unit", None),
            (applications.lenet, "lenet", "unit", "softmax"),  # Keras-style
            (applications.lenet_bn, "lenet_bn", "unit", "softmax"),
        ]
        for ctor, arch, pre, act in cases:
            kw = {"weights": None, "base_width": 8}
            m = ctor(**kw)
            self.assertEqual((m.arch, m.preprocessing, m.classifier_activation), (arch, pre, act))
            m.close()
        m = applications.ResNet50(weights=None, base_width=8, include_top=False, pooling="max",
                                  input_shape=(64, 64, 3))
        self.assertEqual(m.output_shape, (None, 256))
        self.assertEqual(applications.resnet18(num_classes=7, base_width=8).classes, 7)
        with self.assertRaises(ValueError):
            applications.resnet18(num_classes=7, classes=8)
        with self.assertRaises(ValueError):
            applications.ResNet50(weights=None, input_tensor=object())
        with self.assertRaises(ValueError):  # Keras: imagenet weights with a top need 1000
            applications.ResNet50(weights="imagenet", classes=10)

    def test_family_preprocess_input(self):
        x = np.full((1, 1, 1, 3), 100, np.uint8)
        for mod, mode in ((resnet, "caffe"), (resnet_v2, "tf"), (torchvision, "torch"),
                          (small, "unit")):
            np.testing.assert_array_equal(mod.preprocess_input(x),
                                          applications.preprocess_input(x, mode=mode))
        m = shardnet.Model("keras_resnet50v2", base_width=8)
        np.testing.assert_array_equal(m.preprocess_input(x), resnet_v2.preprocess_input(x))

    def test_every_architecture_name_passes_through(self):
        names = shardnet.architectures()
        self.assertIn("keras_resnet152v2", names)
        for arch in names:
            m = shardnet.Model(arch, base_width=8)
            self.assertEqual(m.name, arch)
            m.close()


class ImagenetWeights(TempDirTest):

    def test_found_in_keras_models_directory(self):
        os.makedirs(self.path("models"))
        for top, suffix in ((True, ""), (False, "_notop")):
            m = shardnet.Model("keras_resnet50v2", base_width=8, include_top=top, seed=9)
            native = self.path("n.h5")
            m.save_weights(native)
            name = "resnet50v2_weights_tf_dim_ordering_tf_kernels%s.h5" % suffix
            write_keras_h5(native, self.path(os.path.join("models", name)))
        os.environ["KERAS_HOME"] = self.tmp
        try:
            m = applications.ResNet50V2(base_width=8)  # weights="imagenet" is the default
            self.assertTrue(m.weights.endswith("resnet50v2_weights_tf_dim_ordering_tf_kernels.h5"))
            f = applications.ResNet50V2(base_width=8, include_top=False, pooling="avg")
            self.assertTrue(f.weights.endswith("_notop.h5"))
            with self.assertRaises(ValueError) as e:
                applications.resnet50(weights="imagenet")
            self.assertIn("convert_torch_weights.py", str(e.exception))
        finally:
            del os.environ["KERAS_HOME"]


if __name__ == "__main__":
    unittest.main()
