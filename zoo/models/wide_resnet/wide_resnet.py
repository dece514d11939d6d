"""Wide Residual Networks (Zagoruyko and Komodakis, BMVC 2016).

Variants:
- ``wide_resnet{d}_{k}`` (WRN-d-k) for CIFAR: a 3x3 stem of 16 channels and three groups of
  ``N = (d - 4) / 6`` pre-activation blocks B(3,3) of widths 16k, 32k and 64k. A block is
  BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3, with dropout between the two convolutions (the paper's
  section 2.4; rate 0.3 as in its CIFAR experiments) and a 1x1 projection of the pre-activated
  input where the width changes. Convolutions carry no bias (the authors' PyTorch code), so the
  counts match the paper's tables (WRN-28-10: 36.5M).
- ``wide_resnet50_2`` and ``wide_resnet101_2``: the paper's ImageNet WRN-50-2-bottleneck in
  torchvision's layout, a ResNet-50/101 whose bottleneck 3x3 convolutions are twice as wide
  (`zoo.models.resnet` with ``width_per_group=128``); trainable counts equal torchvision's.

Small inputs: the CIFAR networks are native at 32x32 (and 28x28); with ``stem="imagenet"`` (chosen
automatically from 64 pixels up) the stem becomes the 7x7/2 convolution and 3x3/2 max-pool. The
ImageNet networks get ResNet's small-input stem (one 3x3 stride-1 convolution).
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo._registry import Published, register_family
from zoo.models._common import bn, conv, head, image_input, resolve_stem
from zoo.models.resnet.resnet import _create_resnet

layers = keras.layers

__all__: list[str] = []

IMAGENET_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def wide_block(x, filters: int, *, strides: int, dropout: float, name: str):
    """B(3,3) with dropout between the convolutions."""
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(bn(x, f"{name}_preact_bn"))
    if strides == 1 and x.shape[-1] == filters:
        shortcut = x
    else:
        shortcut = conv(preact, filters, 1, strides=strides, padding="valid", name=f"{name}_shortcut_conv")
    y = conv(preact, filters, 3, strides=strides, name=f"{name}_1_conv")
    y = layers.Activation("relu", name=f"{name}_1_relu")(bn(y, f"{name}_1_bn"))
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv(y, filters, 3, name=f"{name}_2_conv")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def _create_wide_resnet(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    depth: int = 28,
    widen_factor: int = 10,
    dropout: float = 0.3,
    block: Literal["basic", "bottleneck"] = "basic",
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds WRN-depth-widen_factor; see the module docstring.

    Args:
        depth: total depth; ``6N + 4`` for CIFAR blocks, 50 or 101 for ImageNet bottlenecks.
        widen_factor: the width multiplier ``k``.
        dropout: rate between the two convolutions of a block (basic blocks only).
        block: ``"basic"`` (CIFAR WRN-d-k) or ``"bottleneck"`` (ImageNet WRN-50-2).
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    if block == "bottleneck":
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(f"bottleneck Wide ResNets have depth 50 or 101; received depth={depth!r}")
        return _create_resnet(name=name, input_shape=input_shape, num_classes=num_classes, include_top=include_top,
                              pooling=pooling, classifier_activation=classifier_activation, block="bottleneck",
                              stage_depths=IMAGENET_DEPTHS[depth], width_per_group=64 * widen_factor, stem=stem)
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6N + 4 with N >= 1 (10, 16, 22, 28, 40, ...); received depth={depth!r}")
    if widen_factor < 1:
        raise ValueError(f"widen_factor must be >= 1; received {widen_factor!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
    stem = resolve_stem(stem, input_shape, family="wide_resnet")
    inputs = image_input(input_shape)
    if stem == "imagenet":
        x = conv(inputs, 16, 7, strides=2, name="stem_conv")
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    else:
        x = conv(inputs, 16, 3, name="stem_conv")
    n = (depth - 4) // 6
    for s, width in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
        for b in range(n):
            x = wide_block(x, width, strides=2 if s > 0 and b == 0 else 1, dropout=dropout,
                           name=f"stage{s + 1}_block{b + 1}")
    x = layers.Activation("relu", name="post_relu")(bn(x, "post_bn"))
    x = head(x, include_top=include_top, num_classes=num_classes, pooling=pooling,
             classifier_activation=classifier_activation)
    return keras.Model(inputs, x, name=name)


FAMILY = register_family(
    "wide_resnet",
    _create_wide_resnet,
    paper="Wide Residual Networks (Zagoruyko, Komodakis)",
    year=2016,
    url="https://arxiv.org/abs/1605.07146",
    weight_free_options=("dropout",),
)

# CIFAR; the paper's Tables 1, 4 and 5 give counts in millions to one decimal.
_CIFAR = dict(default_input_shape=(32, 32, 3), default_num_classes=10, block="basic")
for _d, _k, _millions, _table in ((16, 4, 2.7, 4), (16, 8, 11.0, 4), (22, 8, 17.2, 4), (28, 10, 36.5, 4),
                                  (40, 4, 8.9, 4)):
    FAMILY.register(f"wide_resnet{_d}_{_k}", depth=_d, widen_factor=_k,
                    published=Published(int(_millions * 1e6), f"Zagoruyko & Komodakis 2016, Table {_table}",
                                        decimals=1), **_CIFAR)

_TV = "torchvision.models.{} (weights meta num_params)"
FAMILY.register("wide_resnet50_2", block="bottleneck", depth=50, widen_factor=2,
                published=Published(68_883_240, _TV.format("wide_resnet50_2")))
FAMILY.register("wide_resnet101_2", block="bottleneck", depth=101, widen_factor=2,
                published=Published(126_886_696, _TV.format("wide_resnet101_2")))
