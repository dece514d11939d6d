"""VGG: Very Deep Convolutional Networks for Large-Scale Image Recognition (Simonyan, Zisserman, ICLR 2015).

Variants: ``vgg11``, ``vgg13``, ``vgg16`` and ``vgg19`` (the paper's configurations A, B, D and E of
Table 1) and their ``*_bn`` versions, in torchvision's layout: 3x3 convolutions with bias (followed
by batch norm with ``batch_norm=True``, which the paper predates), 2x2/2 max-pools after each of the
five blocks, then fc1 and fc2 of 4096 units with dropout after each, and the classifier. Trainable
parameters equal torchvision's published counts. The paper's configurations A-LRN (local response
normalization) and C (1x1 convolutions) are not registered.

Other input sizes: torchvision follows the features with ``AdaptiveAvgPool2d((7, 7))`` so that fc1
has 25088 inputs at any resolution. Where pool5 is not already 7x7 (any input but 224..255 pixels)
the zoo inserts the same pooling (``adaptive_pool``: GoogLeNet's `AdaptiveAveragePooling2D`, with
PyTorch's bins); at 224 the ImageNet models contain only stock Keras layers. The ImageNet version
needs inputs of at least 32x32.

Small inputs (``stem="small"``, chosen automatically under 64 pixels), in the manner of the usual
CIFAR VGGs: the same convolution stack, with max-pools padded ``same`` so that 28x28 inputs end at
1x1 instead of collapsing (32 -> 1 and 28 -> 14 -> 7 -> 4 -> 2 -> 1), then Flatten -> fc1 (512) ->
ReLU -> dropout -> classifier (Zagoruyko's cifar.torch has one such 512-unit hidden layer, with batch
norm; Fu's pytorch-vgg-cifar10 has two). The convolution weights keep their ImageNet shapes; only the
classifier differs.
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo._registry import Published, register_family
from zoo.models._common import bn, conv, image_input, pool_features, resolve_stem
from zoo.layers import AdaptiveAveragePooling2D

layers = keras.layers

__all__ = ["vgg_features"]

_POOL5_SIZE = 7
_FC_UNITS = {"imagenet": 4096, "small": 512}


def vgg_features(x, *, block_depths, block_widths, batch_norm: bool, pool_padding: str = "valid"):
    """Blocks of 3x3 convolutions (``block2_conv1``...), each ending in a 2x2/2 max-pool."""
    for b, (depth, filters) in enumerate(zip(block_depths, block_widths), start=1):
        for i in range(1, depth + 1):
            name = f"block{b}_conv{i}"
            x = conv(x, filters, 3, use_bias=True, name=name)
            if batch_norm:
                x = bn(x, f"{name}_bn")
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        x = layers.MaxPooling2D(2, strides=2, padding=pool_padding, name=f"block{b}_pool")(x)
    return x


def _classifier(x, *, stem: str, num_classes: int, classifier_activation: str | None, dropout: float):
    if stem == "imagenet" and tuple(x.shape[1:3]) != (_POOL5_SIZE, _POOL5_SIZE):
        x = AdaptiveAveragePooling2D(_POOL5_SIZE, name="adaptive_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    for i in (1, 2) if stem == "imagenet" else (1,):
        x = layers.Dense(_FC_UNITS[stem], name=f"fc{i}")(x)
        x = layers.Activation("relu", name=f"fc{i}_relu")(x)
        x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)


def _create_vgg(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    block_depths: tuple[int, ...] = (2, 2, 3, 3, 3),
    block_widths: tuple[int, ...] = (64, 128, 256, 512, 512),
    batch_norm: bool = False,
    dropout: float = 0.5,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a VGG network; see the module docstring for the variants.

    Args:
        block_depths: 3x3 convolutions per block ((1, 1, 2, 2, 2) is VGG-11, (2, 2, 3, 3, 3) VGG-16).
        block_widths: channels of each block's convolutions.
        batch_norm: batch norm between each convolution and its ReLU (torchvision's ``*_bn``).
        dropout: dropout rate after the hidden dense layers.
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    if len(block_depths) != len(block_widths) or not block_depths or min(block_depths) < 1:
        raise ValueError(
            f"block_depths and block_widths must be non-empty and of equal length with depths >= 1; "
            f"received {block_depths!r} and {block_widths!r}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
    stem = resolve_stem(stem, input_shape, family="vgg")
    min_size = 2 ** len(block_depths)  # unpadded 2x2/2 pools halve (rounding down) once per block
    if stem == "imagenet" and min(input_shape[:2]) < min_size:
        raise ValueError(
            f"VGG's ImageNet layout needs inputs of at least {min_size}x{min_size}; received "
            f"input_shape={tuple(input_shape)}. Use stem='small' (or 'auto') for small images."
        )
    inputs = image_input(input_shape)
    x = vgg_features(inputs, block_depths=block_depths, block_widths=block_widths, batch_norm=batch_norm,
                     pool_padding="valid" if stem == "imagenet" else "same")
    if include_top:
        x = _classifier(x, stem=stem, num_classes=num_classes, classifier_activation=classifier_activation,
                        dropout=dropout)
    else:
        x = pool_features(x, pooling)
    return keras.Model(inputs, x, name=name)


FAMILY = register_family(
    "vgg",
    _create_vgg,
    paper="Very Deep Convolutional Networks for Large-Scale Image Recognition (Simonyan, Zisserman)",
    year=2014,
    url="https://arxiv.org/abs/1409.1556",
    head_layers=("fc1", "fc2", "predictions"),
    weight_free_options=("dropout",),
)

# Table 1 configurations A, B, D, E; counts are torchvision's weights metadata (`num_params`),
# which excludes BN running statistics.
_TV = "torchvision.models.{} (weights meta num_params)"
for _depth, _blocks, _plain, _with_bn in (
    (11, (1, 1, 2, 2, 2), 132_863_336, 132_868_840),
    (13, (2, 2, 2, 2, 2), 133_047_848, 133_053_736),
    (16, (2, 2, 3, 3, 3), 138_357_544, 138_365_992),
    (19, (2, 2, 4, 4, 4), 143_667_240, 143_678_248),
):
    FAMILY.register(f"vgg{_depth}", block_depths=_blocks, batch_norm=False,
                    published=Published(_plain, _TV.format(f"vgg{_depth}")))
    FAMILY.register(f"vgg{_depth}_bn", block_depths=_blocks, batch_norm=True,
                    published=Published(_with_bn, _TV.format(f"vgg{_depth}_bn")))
