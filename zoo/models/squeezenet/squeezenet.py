"""SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size (Iandola et al., arXiv 2016).

Variants, exactly as torchvision's: ``squeezenet1_0`` (the paper's Table 1: conv1 96 7x7/2, fire2-9,
max-pools after conv1, fire4 and fire8) and ``squeezenet1_1`` (from the authors' SqueezeNet v1.1
release: conv1 64 3x3/2 and the pools moved earlier, after conv1, fire3 and fire5, for 2.4x less
computation at the same accuracy). A fire module is a 1x1 "squeeze" convolution feeding 1x1 and 3x3
"expand" convolutions whose outputs are concatenated; every convolution has a bias and a ReLU.
Max-pools are 3x3/2 and round their output size up (torchvision's ``ceil_mode=True``, see
`zoo.models._common.pool_ceil_mode`), so 224 gives 109 -> 54 -> 27 -> 13 maps in 1.0 as in torchvision.
The classifier is torchvision's: dropout 0.5, a 1x1 convolution to ``num_classes`` maps, ReLU and
global average pooling, then an ``Activation`` named ``predictions`` applying ``classifier_activation``.
Trainable parameters equal torchvision's published counts (``bypass="none"``).

``bypass`` adds the paper's residual connections (section 6, Figure 2): ``"simple"`` adds the input
to the output of every fire module whose input and output channels match (fire3, 5, 7 and 9 in both
versions), without parameters; ``"complex"`` also bypasses the other fire modules (2, 4, 6 and 8)
through a 1x1 convolution with bias (``fire4_bypass``) to the module's output channels. The paper
reports model sizes, not parameter counts, for these, so no count is claimed for them.

Small inputs (``stem="small"``, chosen automatically under 64 pixels): conv1 becomes a 3x3 stride-1
convolution with same padding (96 or 64 channels as in the variant), so 32x32 inputs reach 32 -> 16
-> 8 -> 4 after the three max-pools (28 -> 14 -> 7 -> 3) instead of the ImageNet stem's 1x1 map.
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo._registry import Published, register_family
from zoo.models._common import conv, image_input, pool_features, resolve_stem
from zoo.models._common import pool_ceil_mode

layers = keras.layers

__all__ = ["fire_module"]

Version = Literal["1.0", "1.1"]
Bypass = Literal["none", "simple", "complex"]

# conv1 (channels, ImageNet kernel) and the layers after which a max-pool comes (1 is conv1).
_VERSIONS = {
    "1.0": dict(conv1=(96, 7), pool_after=(1, 4, 8)),
    "1.1": dict(conv1=(64, 3), pool_after=(1, 3, 5)),
}
# fire2..fire9: (squeeze channels, channels of each expand convolution).
_FIRES = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256))
_BYPASSES = ("none", "simple", "complex")


def _conv_relu(x, filters: int, kernel: int, *, name: str, strides: int = 1, padding="same"):
    x = conv(x, filters, kernel, strides=strides, padding=padding, use_bias=True, name=name)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def fire_module(x, squeeze: int, expand: int, *, bypass: str = "none", name: str):
    """squeeze 1x1 -> [expand 1x1, expand 3x3] concatenated (``2 * expand`` channels), with optional bypass."""
    s = _conv_relu(x, squeeze, 1, name=f"{name}_squeeze1x1")
    y = layers.Concatenate(name=f"{name}_concat")(
        [_conv_relu(s, expand, 1, name=f"{name}_expand1x1"), _conv_relu(s, expand, 3, name=f"{name}_expand3x3")]
    )
    if bypass == "none":
        return y
    if x.shape[-1] != 2 * expand:
        if bypass == "simple":
            return y
        x = conv(x, 2 * expand, 1, use_bias=True, name=f"{name}_bypass")
    return layers.Add(name=f"{name}_add")([x, y])


def _create_squeezenet(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    version: Version = "1.0",
    bypass: Bypass = "none",
    dropout: float = 0.5,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a SqueezeNet; see the module docstring for the variants.

    Args:
        version: ``"1.0"`` (the paper's) or ``"1.1"`` (the authors' cheaper v1.1).
        bypass: ``"none"``, ``"simple"`` (identity bypass where channels match) or ``"complex"``
            (plus 1x1-convolution bypasses elsewhere), the paper's section 6.
        dropout: dropout rate before the classifier convolution.
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    if version not in _VERSIONS:
        raise ValueError(f"version must be one of {tuple(_VERSIONS)}; received {version!r}")
    if bypass not in _BYPASSES:
        raise ValueError(f"bypass must be one of {_BYPASSES}; received {bypass!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
    stem = resolve_stem(stem, input_shape, family="squeezenet")
    config = _VERSIONS[version]
    width, kernel = config["conv1"]
    if stem == "imagenet" and min(input_shape[:2]) < kernel:
        raise ValueError(
            f"SqueezeNet {version}'s ImageNet stem needs inputs of at least {kernel}x{kernel}; received "
            f"input_shape={tuple(input_shape)}. Use stem='small' (or 'auto') for small images."
        )
    inputs = image_input(input_shape)
    if stem == "imagenet":
        x = _conv_relu(inputs, width, kernel, strides=2, padding="valid", name="conv1")
    else:
        x = _conv_relu(inputs, width, 3, name="conv1")
    x = pool_ceil_mode(x, 3, 2, kind="max", name="pool1")
    for i, (squeeze, expand) in enumerate(_FIRES, start=2):
        x = fire_module(x, squeeze, expand, bypass=bypass, name=f"fire{i}")
        if i in config["pool_after"]:
            x = pool_ceil_mode(x, 3, 2, kind="max", name=f"pool{i}")
    if not include_top:
        return keras.Model(inputs, pool_features(x, pooling), name=name)
    # torchvision's classifier (the paper's drop9 and conv10): small normal init for the class maps.
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                      name="head_conv")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Activation(classifier_activation or "linear", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


FAMILY = register_family(
    "squeezenet",
    _create_squeezenet,
    paper="SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size (Iandola et al.)",
    year=2016,
    url="https://arxiv.org/abs/1602.07360",
    classifier_layers=("head_conv",),
    head_layers=("head_conv",),
    weight_free_options=("dropout",),
)

_TV = "torchvision.models.{} (weights meta num_params)"
FAMILY.register("squeezenet1_0", version="1.0", published=Published(1_248_424, _TV.format("squeezenet1_0")))
FAMILY.register("squeezenet1_1", version="1.1", published=Published(1_235_496, _TV.format("squeezenet1_1")))
