"""keras.applications.resnet: ResNet50/101/152 (v1), "caffe" preprocessing."""
from ._keras import keras_model
from .imagenet_utils import decode_predictions  # noqa: F401
from .imagenet_utils import preprocess_input as _preprocess_input


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
             pooling=None, classes=1000, **kwargs):
    return keras_model("keras_resnet50", include_top, weights, input_tensor, input_shape,
                       pooling, classes, **kwargs)


def ResNet101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, **kwargs):
    return keras_model("keras_resnet101", include_top, weights, input_tensor, input_shape,
                       pooling, classes, **kwargs)


def ResNet152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
              pooling=None, classes=1000, **kwargs):
    return keras_model("keras_resnet152", include_top, weights, input_tensor, input_shape,
                       pooling, classes, **kwargs)


def preprocess_input(x, data_format=None):
    """Keras' resnet.preprocess_input: mode "caffe"."""
    return _preprocess_input(x, data_format=data_format, mode="caffe")
