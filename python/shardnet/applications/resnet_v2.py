"""keras.applications.resnet_v2: ResNet50V2/101V2/152V2 (pre-activation), "tf" preprocessing."""
from ._keras import keras_model
from .imagenet_utils import decode_predictions  # noqa: F401
from .imagenet_utils import preprocess_input as _preprocess_input


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
               pooling=None, classes=1000, **kwargs):
    return keras_model("keras_resnet50v2", include_top, weights, input_tensor, input_shape,
                       pooling, classes, **kwargs)


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, **kwargs):
    return keras_model("keras_resnet101v2", include_top, weights, input_tensor, input_shape,
                       pooling, classes, **kwargs)


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, **kwargs):
    return keras_model("keras_resnet152v2", include_top, weights, input_tensor, input_shape,
                       pooling, classes, **kwargs)


def preprocess_input(x, data_format=None):
    """Keras' resnet_v2.preprocess_input: mode "tf"."""
    return _preprocess_input(x, data_format=data_format, mode="tf")
