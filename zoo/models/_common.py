"""Building blocks shared by the CNN families: stems, conv-BN-activation, heads.

Conventions every family follows (they are the weight-compatibility contract):
- Every layer gets an explicit, deterministic name (``stage2_block1_conv1``); building the same
  model twice gives the same names.
- Batch norm uses PyTorch's defaults (epsilon 1e-5, momentum 0.9 in Keras terms) unless a paper or
  reference implementation says otherwise.
- Strided convolutions pad symmetrically (``ZeroPadding2D`` then ``valid``) like the reference
  implementations, instead of Keras' bottom-right-heavy ``same``.
- The classifier is a Dense layer named ``predictions``; without ``include_top`` the model returns
  the last feature map, or its global average/max when ``pooling`` says so. A family whose
  classifier or head differs (NIN's and SqueezeNet's ``head_conv``, VGG's fc layers, GoogLeNet's
  auxiliary heads) declares its layers when it registers (`Family.classifier_layers`, ``head_layers``).
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo.layers import GroupedConv2D

layers = keras.layers

__all__ = [
    "SMALL_INPUT",
    "bn",
    "classifier",
    "conv",
    "conv_bn_act",
    "image_input",
    "pool_ceil_mode",
    "pool_features",
    "resolve_stem",
]

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# Inputs smaller than this on their short side get the family's small-input (CIFAR-style) stem.
SMALL_INPUT = 64


def image_input(input_shape, name: str = "image"):
    return keras.Input(shape=tuple(input_shape), name=name)


def resolve_stem(stem: str, input_shape, *, family: str) -> str:
    """``"auto"`` picks ``"small"`` under `SMALL_INPUT` pixels and ``"imagenet"`` otherwise."""
    accepted = ("auto", "imagenet", "small")
    if stem not in accepted:
        raise ValueError(f"stem for {family} must be one of {accepted}; received {stem!r}")
    if stem == "auto":
        return "small" if min(input_shape[:2]) < SMALL_INPUT else "imagenet"
    return stem


def conv(x, filters: int, kernel_size, *, strides=1, groups: int = 1, use_bias: bool = False, name: str,
         padding: str | int = "same", dilation_rate=1):
    """A Conv2D with symmetric padding for strided convolutions.

    ``padding="same"`` pads ``kernel_size // 2`` on every side when strided (PyTorch's ``padding=k//2``);
    an int pads that much; ``"valid"`` pads nothing.
    """
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    s = strides if isinstance(strides, int) else strides[0]
    if isinstance(padding, int) or (padding == "same" and s > 1):
        pad = k // 2 if padding == "same" else padding
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    # GroupedConv2D is Conv2D with a per-group gradient; TF's grouped-conv gradient is ~100x slower on CPU.
    conv_layer = GroupedConv2D if groups > 1 else layers.Conv2D
    return conv_layer(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=use_bias,
        dilation_rate=dilation_rate,
        kernel_initializer="he_normal",
        name=name,
    )(x)


def bn(x, name: str, epsilon: float = BN_EPSILON):
    return layers.BatchNormalization(axis=-1, epsilon=epsilon, momentum=BN_MOMENTUM, name=name)(x)


def conv_bn_act(x, filters: int, kernel_size, *, name: str, strides=1, groups: int = 1,
                activation: str | None = "relu", padding: str | int = "same", use_bias: bool = False):
    """conv → BN → activation, named ``{name}_conv``, ``{name}_bn``, ``{name}_relu``."""
    x = conv(x, filters, kernel_size, strides=strides, groups=groups, use_bias=use_bias, name=f"{name}_conv",
             padding=padding)
    x = bn(x, f"{name}_bn")
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def pool_features(x, pooling: str | None):
    """The ``include_top=False`` output: the feature map, or its global average or max."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def classifier(x, *, num_classes: int, classifier_activation: str | None, dropout: float = 0.0):
    """Global average pool → (dropout) → Dense ``predictions``."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)


def head(x, *, include_top: bool, num_classes: int, pooling: str | None, classifier_activation: str | None,
         dropout: float = 0.0):
    """`classifier` when ``include_top``, else `pool_features`."""
    if include_top:
        return classifier(x, num_classes=num_classes, classifier_activation=classifier_activation, dropout=dropout)
    return pool_features(x, pooling)


def _axis_ceil_padding(size: int, pool_size: int, strides: int) -> int:
    # PyTorch's ceil_mode output size: the last window must start inside the input.
    out = max(-(-(size - pool_size) // strides) + 1, 1)
    if out > 1 and (out - 1) * strides >= size:
        out -= 1
    return max((out - 1) * strides + pool_size - size, 0)


def pool_ceil_mode(x, pool_size: int, strides: int, *, kind: Literal["max", "avg"], name: str):
    """An unpadded pool that rounds its output size up, like Caffe and PyTorch's ``ceil_mode=True``.

    The last window may hang over the bottom/right edge and averages only the positions inside.
    When that equals Keras' ``same`` padding (an even size for a 3x3/2 pool) or needs no padding
    (an odd size), one stock pooling layer does it. Otherwise the map is zero-padded on the
    bottom/right (``{name}_pad``) before a ``valid`` pool: exact for max-pooling non-negative
    (post-ReLU) maps, as everywhere in the zoo, while an average there would count the zeros. A map
    smaller than the window is padded to one window rather than collapsing.

    Example:
        >>> x = keras.Input((54, 54, 8))
        >>> pool_ceil_mode(x, 3, 2, kind="max", name="pool1").shape
        TensorShape([None, 27, 27, 8])
    """
    pool = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[kind]
    sizes = [int(d) for d in x.shape[1:3]]
    pads = [_axis_ceil_padding(s, pool_size, strides) for s in sizes]
    if not any(pads):
        return pool(pool_size, strides=strides, padding="valid", name=name)(x)
    same_pads = [max((-(-s // strides) - 1) * strides + pool_size - s, 0) for s in sizes]
    # Keras' "same" puts floor(total / 2) before and the rest after: equal when nothing goes before.
    if pads == same_pads and max(same_pads) <= 1:
        return pool(pool_size, strides=strides, padding="same", name=name)(x)
    x = layers.ZeroPadding2D(((0, pads[0]), (0, pads[1])), name=f"{name}_pad")(x)
    return pool(pool_size, strides=strides, padding="valid", name=name)(x)
