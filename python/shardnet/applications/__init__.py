"""Pretrained-model constructors with the signatures of Keras' applications (ResNet50, ...) and
torchvision's (resnet50, ...), plus shardnet's small models, each returning a shardnet.Model.

    from shardnet.applications import ResNet50, preprocess_input, decode_predictions
    model = ResNet50(weights="resnet50_weights_tf_dim_ordering_tf_kernels.h5")
    print(decode_predictions(model.predict(preprocess_input(x)), top=3)[0])

CamelCase names are the Keras architectures (weights="imagenet" by default, as in Keras: the
release file in ~/.keras/models; preprocessing "caffe" for ResNet, "tf" for ResNetV2); lower-case
names are torchvision's (weights=None by default; preprocessing "torch") and the small models
(resnet20/32/56, lenet, lenet_bn; "unit"). preprocess_input here is Keras' imagenet_utils one
(mode="caffe" unless given); the modules resnet, resnet_v2, torchvision and small give
each family's own, as Keras' modules do. Any other architecture name: shardnet.Model(arch, ...).
"""
from .imagenet_utils import decode_predictions, preprocess_input  # noqa: F401
from .resnet import ResNet50, ResNet101, ResNet152  # noqa: F401
from .resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2  # noqa: F401
from .torchvision import resnet18, resnet34, resnet50, resnet101, resnet152  # noqa: F401
from .small import lenet, lenet_bn, resnet20, resnet32, resnet56  # noqa: F401
