"""DenseNet from Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional
Networks", CVPR 2017.

Each layer of a dense block sees the concatenation of all earlier feature maps of the block and adds
``growth_rate`` new ones: BN-ReLU-1x1 conv (``bn_size * growth_rate`` channels, the "B" bottleneck)
then BN-ReLU-3x3 conv (``growth_rate``). Transitions between blocks are BN-ReLU-1x1 conv (keeping
``floor(compression * channels)``, the "C" compression) and a 2x2 average pool. Convolutions have no
bias; after the last block come BN, ReLU, global average pool and the classifier.

Variants:
- ImageNet, torchvision's layout (growth 32, 64 initial features; DenseNet-161: growth 48, 96):
  ``densenet121``, ``densenet169``, ``densenet201``, ``densenet161``. Their trainable parameter
  counts equal torchvision's (and keras.applications' trainable ones) exactly. Batch norm epsilon is
  PyTorch's 1e-5 (keras.applications uses 1.001e-5).
- CIFAR (paper Table 2; 32x32, 10 classes, three blocks of ``(L - 4) / 6`` bottleneck layers):
  ``densenet_bc100_k12`` (0.8M), ``densenet_bc250_k24`` (15.3M), ``densenet_bc190_k40`` (25.6M), and
  the non-BC ``densenet40_k12`` (three blocks of 12 plain BN-ReLU-3x3 layers, no compression; 1.0M).
  Their stem is the paper's single 3x3 conv with ``2 * growth_rate`` channels (16 for DenseNet-40),
  not followed by BN-ReLU since every dense layer starts with them. Counts match the paper at its
  0.1M precision.

``drop_rate`` is the paper's dropout (0.2 on CIFAR without data augmentation): after every conv but
the stem's, as in the paper's code (torchvision drops only after each 3x3 conv). Off by default.

Stem (``stem``): ``"imagenet"`` is the 7x7/2 conv-BN-ReLU and 3x3/2 max pool (``num_init_features``
channels); ``"small"`` (picked automatically under 64 px, e.g. 28x28x1 and 32x32x3) is the CIFAR
paper's single 3x3 conv at stride 1, for every variant: the ImageNet variants then keep all their
four blocks at 32/16/8/4 px (28/14/7/3 for 28x28), the common CIFAR adaptation of DenseNet-121.
"""

from __future__ import annotations

import math
from typing import Literal, Optional

import tf_keras as keras

from zoo._registry import Published, register_family
from zoo.models._common import bn, conv, head, image_input, resolve_stem

layers = keras.layers

__all__: list[str] = []


def _bn_relu(x, name: str):
    x = bn(x, f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _dense_layer(x, *, growth_rate: int, bn_size: int | None, drop_rate: float, name: str):
    """One dense layer; returns ``x`` with ``growth_rate`` new channels concatenated."""
    y = x
    if bn_size:
        y = _bn_relu(y, f"{name}_0")
        y = conv(y, bn_size * growth_rate, 1, name=f"{name}_1_conv")
        if drop_rate:
            y = layers.Dropout(drop_rate, name=f"{name}_1_dropout")(y)
        y = _bn_relu(y, f"{name}_1")
    else:
        y = _bn_relu(y, f"{name}_1")
    y = conv(y, growth_rate, 3, name=f"{name}_2_conv")
    if drop_rate:
        y = layers.Dropout(drop_rate, name=f"{name}_2_dropout")(y)
    return layers.Concatenate(axis=-1, name=f"{name}_concat")([x, y])


def _dense_block(x, num_layers: int, *, growth_rate: int, bn_size: int | None, drop_rate: float, name: str):
    for i in range(1, num_layers + 1):
        x = _dense_layer(x, growth_rate=growth_rate, bn_size=bn_size, drop_rate=drop_rate, name=f"{name}_block{i}")
    return x


def _transition(x, *, compression: float, drop_rate: float, name: str):
    """BN-ReLU-1x1 conv to ``floor(compression * channels)`` channels, then 2x2 average pool."""
    x = _bn_relu(x, name)
    x = conv(x, int(math.floor(int(x.shape[-1]) * compression)), 1, name=f"{name}_conv")
    if drop_rate:
        x = layers.Dropout(drop_rate, name=f"{name}_dropout")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def _create_densenet(
    *,
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    growth_rate: int = 32,
    block_config: tuple[int, ...] = (6, 12, 24, 16),
    num_init_features: int = 64,
    bn_size: Optional[int] = 4,
    compression: float = 0.5,
    drop_rate: float = 0.0,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a DenseNet.

    Args:
        growth_rate: channels each dense layer adds (``k``).
        block_config: number of dense layers in each block.
        num_init_features: channels of the stem conv.
        bn_size: the bottleneck 1x1 conv has ``bn_size * growth_rate`` channels; ``None`` for plain
            BN-ReLU-3x3 dense layers (DenseNet without "B").
        compression: fraction of channels a transition keeps (``theta``; 1.0 for no compression).
        drop_rate: dropout after every conv except the stem's (paper: 0.2 without augmentation).
        stem: ``"imagenet"``, ``"small"`` or ``"auto"`` (small under 64 px).

    Raises:
        ValueError: naming the option, when an option is out of range.
    """
    if growth_rate < 1:
        raise ValueError(f"growth_rate must be a positive int; received {growth_rate!r}")
    if not block_config or any(n < 1 for n in block_config):
        raise ValueError(f"block_config must be a non-empty tuple of positive ints; received {block_config!r}")
    if num_init_features < 1:
        raise ValueError(f"num_init_features must be a positive int; received {num_init_features!r}")
    if bn_size is not None and bn_size < 1:
        raise ValueError(f"bn_size must be a positive int or None (no bottleneck); received {bn_size!r}")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1]; received {compression!r}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1); received {drop_rate!r}")
    stem = resolve_stem(stem, input_shape, family="densenet")

    inputs = image_input(input_shape)
    if stem == "imagenet":
        x = conv(inputs, num_init_features, 7, strides=2, name="conv1_conv")
        x = _bn_relu(x, "conv1")
        x = layers.ZeroPadding2D(1, name="pool1_pad")(x)  # zeros act as -inf: x >= 0 after ReLU
        x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    else:
        x = conv(inputs, num_init_features, 3, name="conv1_conv")

    # keras.applications' names: the stem is stage 1, dense block i is stage i + 1 ("conv2_block1").
    for i, num_layers in enumerate(block_config):
        stage = i + 2
        x = _dense_block(
            x, num_layers, growth_rate=growth_rate, bn_size=bn_size, drop_rate=drop_rate, name=f"conv{stage}"
        )
        if i < len(block_config) - 1:
            x = _transition(x, compression=compression, drop_rate=drop_rate, name=f"pool{stage}")
    x = bn(x, "bn")
    x = layers.Activation("relu", name="relu")(x)

    outputs = head(x, include_top=include_top, num_classes=num_classes, pooling=pooling,
                   classifier_activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


FAMILY = register_family(
    "densenet",
    _create_densenet,
    paper="Densely Connected Convolutional Networks",
    year=2017,
    url="https://arxiv.org/abs/1608.06993",
    weight_free_options=("drop_rate",),
)

_TV = "torchvision.models.{} (weights meta num_params)"
FAMILY.register("densenet121", published=Published(7_978_856, _TV.format("densenet121")), block_config=(6, 12, 24, 16))
FAMILY.register("densenet169", published=Published(14_149_480, _TV.format("densenet169")), block_config=(6, 12, 32, 32))
FAMILY.register("densenet201", published=Published(20_013_928, _TV.format("densenet201")), block_config=(6, 12, 48, 32))
FAMILY.register(
    "densenet161",
    published=Published(28_681_000, _TV.format("densenet161")),
    growth_rate=48,
    block_config=(6, 12, 36, 24),
    num_init_features=96,
)

# CIFAR DenseNet-BC: L layers = 3 blocks of (L - 4) / 6 bottleneck layers + stem, 2 transitions, fc.
_CIFAR = dict(default_input_shape=(32, 32, 3), default_num_classes=10)
_TABLE2 = "Paper, Table 2 (C10)"
FAMILY.register(
    "densenet_bc100_k12",
    published=Published(800_000, _TABLE2, decimals=1),
    growth_rate=12,
    block_config=(16, 16, 16),
    num_init_features=24,
    **_CIFAR,
)
FAMILY.register(
    "densenet_bc250_k24",
    published=Published(15_300_000, _TABLE2, decimals=1),
    growth_rate=24,
    block_config=(41, 41, 41),
    num_init_features=48,
    **_CIFAR,
)
FAMILY.register(
    "densenet_bc190_k40",
    published=Published(25_600_000, _TABLE2, decimals=1),
    growth_rate=40,
    block_config=(31, 31, 31),
    num_init_features=80,
    **_CIFAR,
)
# Plain DenseNet (L=40, k=12): 3 blocks of (L - 4) / 3 BN-ReLU-3x3 layers, 16-channel stem, theta = 1.
FAMILY.register(
    "densenet40_k12",
    published=Published(1_000_000, _TABLE2, decimals=1),
    growth_rate=12,
    block_config=(12, 12, 12),
    num_init_features=16,
    bn_size=None,
    compression=1.0,
    **_CIFAR,
)
