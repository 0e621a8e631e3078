"""shardnet.Model: one network of libshardnet (sn_net) with Keras' Model methods.

    model = shardnet.Model("keras_resnet50", weights="resnet50_weights_tf_dim_ordering_tf_kernels.h5")
    probs = model.predict(x)                 # x: (N, H, W, C) preprocessed float32
    feats = model.extract_features(x)        # (N, 2048): the pooled vector before the classifier
    idx, p = model.classify(x, top=5)        # the top classes and their probabilities

The architecture name is passed to the library as it is (shardnet.architectures() lists them), so
an architecture added to the library works here unchanged. A model is used by one thread at a
time; the library releases the GIL during its calls, so separate models run in parallel threads.
"""
import ctypes
import os

import numpy as np

from . import _lib
from ._lib import check, fptr, lib

# Where Keras keeps downloaded weights (keras.utils.get_file): weights="imagenet" looks there.
KERAS_RELEASE = {
    "keras_resnet50": "resnet50", "keras_resnet101": "resnet101", "keras_resnet152": "resnet152",
    "keras_resnet50v2": "resnet50v2", "keras_resnet101v2": "resnet101v2",
    "keras_resnet152v2": "resnet152v2",
}
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


def architectures():
    """The architecture names the library knows (sn_arch_names)."""
    names, p, i = [], lib.sn_arch_names(), 0
    while p[i]:
        names.append(p[i].decode())
        i += 1
    return names


def set_threads(n):
    """Threads of the kernels started from the calling thread (sn_threads_set)."""
    check(lib.sn_threads_set(int(n)))


def get_threads():
    """Threads a kernel started from the calling thread uses (sn_threads_get)."""
    return lib.sn_threads_get()


def _imagenet_weights(arch, include_top):
    """The Keras release file for weights="imagenet", from Keras' own download directory."""
    key = KERAS_RELEASE.get(arch)
    if key is None:
        raise ValueError("weights='imagenet' names the Keras release files, which exist only for "
                         "%s; for %s pass the path of a weights file (torchvision .pth files "
                         "are converted by convert_torch_weights.py, docs/weights.md)"
                         % (", ".join(sorted(KERAS_RELEASE)), arch))
    name = "%s_weights_tf_dim_ordering_tf_kernels%s.h5" % (key, "" if include_top else "_notop")
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    path = os.path.join(home, "models", name)
    if not os.path.isfile(path):
        raise FileNotFoundError("weights='imagenet': %s not found (shardnet does not download; "
                                "fetch %s%s, or pass the file's path as weights=)"
                                % (path, KERAS_URL, name))
    return path


class Model:
    """A network of libshardnet with Keras' Model methods (predict, summary, load_weights, ...).

    arch:        an architecture name (shardnet.architectures())
    weights:     None (random initialisation from seed), a weights file (Keras .h5 or
                 .weights.h5, torchvision HDF5, shardnet native; docs/weights.md), or "imagenet"
                 (the Keras release file in ~/.keras/models, for the keras_* architectures)
    include_top: keep the classifier; False gives a feature extractor
    input_shape: (H, W, C); None: the architecture's default, except that a model without
                 classifier then takes any image size (Keras' (None, None, C))
    pooling:     without classifier: None (the last 4-D map), "avg" or "max"
    classes:     classes of the classifier (None: 1000, or 10 for the small models)
    classifier_activation: "softmax" (predict returns probabilities) or None (logits);
                 default: "softmax" for Keras architectures, None for torchvision-style ones
    base_width:  reduced-width variants (the tests' small models); None: the architecture's
    threads:     threads of this model's passes (None: shardnet.set_threads / OMP_NUM_THREADS)
    seed:        random initialisation (1, as `shardnet infer` without --weights)
    Errors: the library's (shardnet.errors: an unknown architecture is InvalidArgumentError, a
    weights file that does not fit ShapeError / FormatError / NotFoundError, a missing one
    FileError), each with the library's message.
    """

    def __init__(self, arch, weights=None, include_top=True, input_shape=None, pooling=None,
                 classes=None, classifier_activation="default", base_width=None, threads=None,
                 seed=1):
        self._net = None
        if not isinstance(arch, str):
            raise TypeError("arch must be an architecture name (str), not %r" % (arch,))
        if pooling not in _lib.POOL:
            raise ValueError("pooling must be None, 'avg' or 'max', not %r" % (pooling,))
        if classifier_activation not in ("default", "softmax", None):
            raise ValueError("classifier_activation must be 'softmax' or None, not %r"
                             % (classifier_activation,))
        self.arch = arch
        self.include_top = bool(include_top)
        self.pooling = None if include_top else pooling
        self.threads = threads
        self._seed = int(seed)
        self._base_width = base_width
        self._classes = classes
        self._flexible = input_shape is None and not include_top
        self._input = self._parse_input_shape(input_shape)
        if weights == "imagenet":
            if include_top and classes not in (None, 1000):
                raise ValueError("weights='imagenet' with include_top needs classes=1000, not %r"
                                 % (classes,))
            weights = _imagenet_weights(arch, include_top)
        self._net = self._create(self._input, skip_init=weights is not None)
        if classifier_activation == "default":
            keras = lib.sn_net_style(self._net) == _lib.STYLE_KERAS
            classifier_activation = "softmax" if keras and self.include_top else None
        self.classifier_activation = classifier_activation if self.include_top else None
        self.weights = None
        self._planned = 0
        if weights is not None:
            self.load_weights(weights)

    # ------------------------------------------------------------------ building

    def _parse_input_shape(self, shape):
        if shape is None:
            return None
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError("input_shape must be (height, width, channels), not %r" % (shape,))
        h, w, c = shape
        if c is None or not all(v is None or (int(v) == v and v > 0) for v in shape):
            raise ValueError("input_shape %r: height, width and channels must be positive "
                             "integers (height and width may be None without a classifier)"
                             % (shape,))
        if (h is None or w is None) and self.include_top:
            raise ValueError("input_shape %r: a model with a classifier needs a fixed size"
                             % (shape,))
        if h is None or w is None:
            self._flexible = True
            self._channels = int(c)
            return None
        return (int(h), int(w), int(c))

    def _create(self, input_hwc, skip_init):
        cfg = _lib.ModelConfig()
        self._arch_b = self.arch.encode()
        lib.sn_model_config_init(ctypes.byref(cfg), self._arch_b)
        if self._classes is not None:
            cfg.classes = int(self._classes)
        if input_hwc is not None:
            cfg.height, cfg.width, cfg.channels = input_hwc
        elif getattr(self, "_channels", None):
            cfg.channels = self._channels
        cfg.include_top = int(self.include_top)
        cfg.pooling = _lib.POOL[self.pooling]
        if self._base_width is not None:
            cfg.base_width = int(self._base_width)
        cfg.skip_init = int(skip_init)
        net = ctypes.c_void_p()
        check(lib.sn_net_create(ctypes.byref(cfg), self._seed, ctypes.byref(net)))
        return net

    def _resize(self, h, w):
        """A model without classifier and without input_shape takes any image size: the network
        is rebuilt for it, with the same parameters."""
        c = self.input_shape[3]
        new = self._create((h, w, c), skip_init=True)
        n_old, n_new = ctypes.c_size_t(), ctypes.c_size_t()
        old_block = lib.sn_net_param_block(self._net, ctypes.byref(n_old))
        new_block = lib.sn_net_param_block(new, ctypes.byref(n_new))
        if n_old.value != n_new.value:
            lib.sn_net_destroy(new)
            raise ValueError("%s: its parameters depend on the input size; build the model "
                             "with input_shape=(%d, %d, %d)" % (self.arch, h, w, c))
        ctypes.memmove(new_block, old_block, n_old.value * 4)
        lib.sn_net_destroy(self._net)
        self._net, self._planned = new, 0

    def close(self):
        """Frees the network now (else when the model is garbage-collected)."""
        if self._net:
            lib.sn_net_destroy(self._net)
            self._net = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self):
        if not self._net:
            raise ValueError("%s: the model is closed" % self.arch)
        return self._net

    # ------------------------------------------------------------------ properties

    @property
    def name(self):
        return self.arch

    @property
    def input_shape(self):
        """(None, H, W, C); H and W are None for a model that takes any size."""
        h, w, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.sn_net_input_shape(self._handle(), ctypes.byref(h), ctypes.byref(w), ctypes.byref(c))
        if self._flexible:
            return (None, None, None, c.value)
        return (None, h.value, w.value, c.value)

    @property
    def output_shape(self):
        """(None, classes) with a classifier; (None, D) pooled; (None, H', W', C') without
        pooling (for the current input size)."""
        h, w, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.sn_net_output_shape(self._handle(), ctypes.byref(h), ctypes.byref(w), ctypes.byref(c))
        if self.include_top or self.pooling is not None:
            return (None, h.value * w.value * c.value)
        return (None, h.value, w.value, c.value)

    @property
    def classes(self):
        """Number of classes, 0 without a classifier (sn_net_classes)."""
        return lib.sn_net_classes(self._handle())

    @property
    def feature_dim(self):
        """Width of the pooled feature vector (extract_features), 0 if the model has none."""
        return lib.sn_net_feature_dim(self._handle())

    @property
    def preprocessing(self):
        """The preprocessing the architecture expects: "caffe", "tf", "torch" or "unit"."""
        return _lib.PREPROCESS[lib.sn_net_default_preprocess(self._handle())]

    def count_params(self):
        """All parameters, batch-norm moving statistics included (as Keras counts)."""
        total = ctypes.c_int64()
        lib.sn_net_param_counts(self._handle(), ctypes.byref(total), None, None)
        return total.value

    def summary(self, print_fn=None):
        """Prints the table of `shardnet summary` (layers, shapes, parameter counts)."""
        out = ctypes.c_void_p()
        check(lib.sn_net_summary(self._handle(), ctypes.byref(out)))
        text = _lib.take_string(out.value)
        (print_fn or print)(text.rstrip("\n"))

    def __repr__(self):
        return "<shardnet.Model %s input %s output %s>" % (self.arch, self.input_shape[1:],
                                                            self.output_shape[1:])

    # ------------------------------------------------------------------ weights

    def load_weights(self, path):
        """Loads a weights file (any layout of docs/weights.md; nothing is half-loaded). A model
        without classifier skips the file's classifier."""
        path = os.fspath(path)
        flags = _lib.LOAD_STRICT if self.include_top else _lib.LOAD_IGNORE_HEAD
        md5 = ctypes.create_string_buffer(33)
        check(lib.sn_weights_load_ex(self._handle(), path.encode(), _lib.WEIGHTS_AUTO, flags, md5))
        self.weights = path
        self.weights_md5 = md5.value.decode()
        self._planned = 0

    def save_weights(self, path):
        """Writes the weights in shardnet's native layout (atomically)."""
        check(lib.sn_weights_save(self._handle(), os.fspath(path).encode()))

    # ------------------------------------------------------------------ running

    def _batches(self, x, batch_size):
        """x as a C-contiguous float32 (N, H, W, C) array checked against the model, the plan
        made for batch_size (bigger plans are kept), and the batch size."""
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError("%s: input of shape %s; expected a batch (N, H, W, C)%s" % (
                self.arch, x.shape, " (add an axis: x[None])" if x.ndim == 3 else ""))
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
        _, h, w, c = self.input_shape
        if self._flexible and x.shape[3] == c and x.shape[1:3] != self._current_hw():
            self._resize(x.shape[1], x.shape[2])
            h, w = x.shape[1:3]
        if (x.shape[1], x.shape[2], x.shape[3]) != (h or x.shape[1], w or x.shape[2], c):
            raise ValueError("%s: input images are %dx%dx%d but the model takes %sx%sx%d" % (
                self.arch, x.shape[1], x.shape[2], x.shape[3], h, w, c))
        bad = ~np.isfinite(x).all(axis=(1, 2, 3))
        if bad.any():
            raise ValueError("%s: input image %d (of %d) contains NaN or infinity"
                             % (self.arch, int(np.argmax(bad)), x.shape[0]))
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, not %d" % batch_size)
        if self._planned != batch_size:
            check(lib.sn_net_plan(self._handle(), batch_size, 0))
            self._planned = batch_size
        if self.threads is not None:
            set_threads(self.threads)
        return x, batch_size

    def _current_hw(self):
        h, w, c = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.sn_net_input_shape(self._handle(), ctypes.byref(h), ctypes.byref(w), ctypes.byref(c))
        return (h.value, w.value)

    def predict(self, x, batch_size=None, verbose=0):
        """The outputs for a batch of preprocessed images x (N, H, W, C), float32, as Keras'
        model.predict: probabilities (N, classes) with classifier_activation="softmax", logits
        with None; without classifier the features (N, D) or maps (N, H', W', C'). batch_size
        (default 32) images per pass, as `shardnet infer --batch`: the same batch size gives the
        same bits. verbose is accepted for Keras compatibility and ignored."""
        x, b = self._batches(x, batch_size)
        out = np.empty((x.shape[0],) + self.output_shape[1:], np.float32)
        flat = out.reshape(x.shape[0], int(np.prod(out.shape[1:])))
        softmax = self.classifier_activation == "softmax"
        for i in range(0, x.shape[0], b):
            n = min(b, x.shape[0] - i)
            xb, ob = x[i:i + n], flat[i:i + n]
            if softmax:  # the logits go to ob and are replaced by their softmax
                check(lib.sn_net_predict(self._net, fptr(xb), n, 0, None, None, fptr(ob), None,
                                         None))
            else:
                check(lib.sn_net_forward(self._net, fptr(xb), n, fptr(ob)))
        return out

    def __call__(self, x, batch_size=None):
        return self.predict(x, batch_size=batch_size)

    def extract_features(self, x, batch_size=None):
        """The pooled feature vector (N, feature_dim) of every image: the classifier's input
        (`shardnet infer --features`); for a model without classifier, its output."""
        x, b = self._batches(x, batch_size)
        if not self.include_top:
            return self.predict(x, b)
        d = self.feature_dim
        feats = np.empty((x.shape[0], d), np.float32)
        logits = np.empty((b, self.classes), np.float32)
        for i in range(0, x.shape[0], b):
            n = min(b, x.shape[0] - i)
            check(lib.sn_net_predict(self._net, fptr(x[i:i + n]), n, 0, fptr(logits),
                                     fptr(feats[i:i + n]), None, None, None))
        return feats

    def classify(self, x, top=5, batch_size=None):
        """The `top` most probable classes of every image and their softmax probabilities,
        highest first, ties to the lower class (sn_net_predict, as `shardnet infer` writes
        /predictions): (indices (N, top) int32, probabilities (N, top) float32)."""
        if not self.include_top:
            raise ValueError("%s: classify needs a classifier (include_top=True)" % self.arch)
        top = int(top)
        if not 1 <= top <= self.classes:
            raise ValueError("top must be in 1..%d, not %d" % (self.classes, top))
        x, b = self._batches(x, batch_size)
        idx = np.empty((x.shape[0], top), np.int32)
        val = np.empty((x.shape[0], top), np.float32)
        probs = np.empty((b, self.classes), np.float32)
        for i in range(0, x.shape[0], b):
            n = min(b, x.shape[0] - i)
            check(lib.sn_net_predict(self._net, fptr(x[i:i + n]), n, top, None, None, fptr(probs),
                                     idx[i:i + n].ctypes.data_as(_lib.c_int32_p),
                                     fptr(val[i:i + n])))
        return idx, val

    def preprocess_input(self, x):
        """preprocess_input with this architecture's mode (self.preprocessing)."""
        from .applications.imagenet_utils import preprocess_input
        return preprocess_input(x, mode=self.preprocessing)
