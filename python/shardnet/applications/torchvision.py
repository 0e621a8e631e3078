"""torchvision's ResNets (torchvision.models.resnet18 ... resnet152), "torch" preprocessing.

Weights are torchvision state dicts converted to HDF5 by convert_torch_weights.py (docs/weights.md)
or shardnet native files; predict returns logits, as the torchvision model does, unless
classifier_activation="softmax".
"""
from ..model import Model
from .imagenet_utils import decode_predictions  # noqa: F401
from .imagenet_utils import preprocess_input as _preprocess_input


def _torchvision(arch, weights, num_classes, classes, **kwargs):
    if num_classes is not None and classes is not None and num_classes != classes:
        raise ValueError("num_classes=%r and classes=%r disagree" % (num_classes, classes))
    return Model(arch, weights=weights, classes=classes if classes is not None else num_classes,
                 **kwargs)


def resnet18(weights=None, num_classes=None, classes=None, **kwargs):
    return _torchvision("resnet18", weights, num_classes, classes, **kwargs)


def resnet34(weights=None, num_classes=None, classes=None, **kwargs):
    return _torchvision("resnet34", weights, num_classes, classes, **kwargs)


def resnet50(weights=None, num_classes=None, classes=None, **kwargs):
    return _torchvision("resnet50", weights, num_classes, classes, **kwargs)


def resnet101(weights=None, num_classes=None, classes=None, **kwargs):
    return _torchvision("resnet101", weights, num_classes, classes, **kwargs)


def resnet152(weights=None, num_classes=None, classes=None, **kwargs):
    return _torchvision("resnet152", weights, num_classes, classes, **kwargs)


def preprocess_input(x, data_format=None):
    """torchvision's normalisation on RGB 0..255: mode "torch" (x / 255 - mean) / std."""
    return _preprocess_input(x, data_format=data_format, mode="torch")
