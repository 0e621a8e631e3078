"""The Keras application constructors' shared signature."""
from ..model import Model


def keras_model(arch, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", **kwargs):
    """A Keras application as a shardnet.Model (arguments as in keras.applications; extra keyword
    arguments go to shardnet.Model: threads, seed, base_width)."""
    if input_tensor is not None:
        raise ValueError("input_tensor is not supported: shardnet models take numpy arrays")
    return Model(arch, weights=weights, include_top=include_top, input_shape=input_shape,
                 pooling=pooling, classes=classes, classifier_activation=classifier_activation,
                 **kwargs)
