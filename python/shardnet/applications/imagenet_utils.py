"""preprocess_input and decode_predictions with the semantics of Keras'
keras_applications/imagenet_utils.py (numpy arrays), so that code written for Keras' applications
gives the same arrays here.

The class index is Keras' own imagenet_class_index.json, shipped with shardnet (docs/models.md,
"Class labels"); nothing is downloaded.
"""
import json
import os

import numpy as np

from .. import _lib

MODES = ("caffe", "tf", "torch", "unit")
_CLASS_INDEX = None


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocesses a batch (4-D) or one image (3-D) of RGB values 0..255, as Keras'
    imagenet_utils.preprocess_input does to numpy arrays, operation for operation:

      caffe  RGB -> BGR, then subtract the ImageNet means (103.939, 116.779, 123.68), BGR order
      tf     x / 127.5 - 1
      torch  x / 255, then subtract the mean (0.485, 0.456, 0.406) and divide by the std
             (0.229, 0.224, 0.225)
      unit   x / 255 (shardnet's small models; not a Keras mode)

    A floating-point array is modified in place and returned (Keras does the same; pass
    numpy.copy(x) to keep x); any other dtype is converted to float32 first. data_format is
    "channels_last" (default) or "channels_first". Unlike Keras, an unknown mode is an error
    rather than "caffe".
    """
    if data_format is None:
        data_format = "channels_last"
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError("Unknown data_format " + str(data_format))
    if mode not in MODES:
        raise ValueError("preprocess_input: unknown mode %r (one of %s)" % (mode, ", ".join(MODES)))
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if not issubclass(x.dtype.type, np.floating):
        x = x.astype("float32", copy=False)

    if mode == "tf":
        x /= 127.5
        x -= 1.
        return x
    if mode == "unit":
        x /= 255.
        return x
    if mode == "torch":
        x /= 255.
        mean = [0.485, 0.456, 0.406]
        std = [0.229, 0.224, 0.225]
    else:
        if data_format == "channels_first":
            x = x[::-1, ...] if x.ndim == 3 else x[:, ::-1, ...]
        else:
            x = x[..., ::-1]
        mean = [103.939, 116.779, 123.68]
        std = None

    if data_format == "channels_first":
        ch = (lambda k: (k, Ellipsis)) if x.ndim == 3 else (lambda k: (slice(None), k, Ellipsis))
    else:
        ch = lambda k: (Ellipsis, k)  # noqa: E731
    for k in range(3):
        x[ch(k)] -= mean[k]
    if std is not None:
        for k in range(3):
            x[ch(k)] /= std[k]
    return x


def class_index():
    """Keras' ImageNet class index: {"0": ["n01440764", "tench"], ...}."""
    global _CLASS_INDEX
    if _CLASS_INDEX is None:
        path = os.path.join(_lib.package_path("DATA"), "imagenet_class_index.json")
        with open(path) as f:
            _CLASS_INDEX = json.load(f)
    return _CLASS_INDEX


def decode_predictions(preds, top=5):
    """Decodes ImageNet predictions (N, 1000) as Keras does: per image a list of the `top`
    (wnid, class name, score) tuples, highest score first, with Keras' class names
    (imagenet_class_index.json). preds of any other shape is a ValueError."""
    preds = np.asarray(preds)
    if len(preds.shape) != 2 or preds.shape[1] != 1000:
        raise ValueError("`decode_predictions` expects "
                         "a batch of predictions "
                         "(i.e. a 2D array of shape (samples, 1000)). "
                         "Found array with shape: " + str(preds.shape))
    index = class_index()
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda x: x[2], reverse=True)
        results.append(result)
    return results
