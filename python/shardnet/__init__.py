"""shardnet: the CPU ResNet engine of libshardnet from Python, with numpy arrays in and out.

    from shardnet.applications import ResNet50, preprocess_input, decode_predictions
    from shardnet.preprocessing import image
    model = ResNet50(weights="resnet50_weights_tf_dim_ordering_tf_kernels.h5")
    x = image.img_to_array(image.load_img("cat.jpg", target_size=(224, 224)))[None]
    print(decode_predictions(model.predict(preprocess_input(x)), top=3)[0])

Modules: applications (Keras- and torchvision-style constructors, preprocess_input,
decode_predictions), preprocessing.image (load_img, img_to_array), jobs (the distributed
`shardnet infer` / `train` under mpirun), errors (the exceptions). docs/python.md has the details.
Dependencies: numpy (and h5py for the examples), nothing else.
"""
from . import _lib, errors  # noqa: F401
from ._paths import VERSION as __version__  # noqa: F401
from .errors import ShardnetError  # noqa: F401
from .model import Model, architectures, get_threads, set_threads  # noqa: F401

__library__ = _lib.PATH


def version():
    """The loaded library's version (sn_version)."""
    return _lib.lib.sn_version().decode()


def has_avx512():
    """True if the engine runs its AVX-512 kernels on this CPU."""
    return bool(_lib.lib.sn_cpu_has_avx512())


from . import applications, jobs, preprocessing  # noqa: E402,F401
