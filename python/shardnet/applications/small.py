"""shardnet's small-image models: CIFAR-style resnet20/32/56 (32x32x3, 10 classes) and LeNet
with and without batch norm (28x28x1, 10 classes), "unit" preprocessing (x / 255)."""
from ..model import Model
from .imagenet_utils import preprocess_input as _preprocess_input


def resnet20(weights=None, **kwargs):
    return Model("resnet20", weights=weights, **kwargs)


def resnet32(weights=None, **kwargs):
    return Model("resnet32", weights=weights, **kwargs)


def resnet56(weights=None, **kwargs):
    return Model("resnet56", weights=weights, **kwargs)


def lenet(weights=None, **kwargs):
    return Model("lenet", weights=weights, **kwargs)


def lenet_bn(weights=None, **kwargs):
    return Model("lenet_bn", weights=weights, **kwargs)


def preprocess_input(x, data_format=None):
    """x / 255 (mode "unit")."""
    return _preprocess_input(x, data_format=data_format, mode="unit")
