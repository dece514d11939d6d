"""NIN: Network In Network (Lin, Chen, Yan, ICLR 2014; arXiv 2013).

Each block is an "mlpconv" layer: a spatial convolution followed by two 1x1 convolutions (the
paper's cascaded cross channel parametric pooling, ``cccp``), all with bias and ReLU. The last
block's second 1x1 convolution outputs one map per class and global average pooling turns the maps
into class scores: there are no fully connected layers.

Variants:
- ``nin``: the authors' ImageNet model from the Caffe Model Zoo (``nin_imagenet``): conv 96 11x11/4,
  cccp 96, 96, max-pool 3/2; conv 256 5x5, cccp 256, 256, max-pool; conv 384 3x3, cccp 384, 384,
  max-pool, dropout 0.5; conv 1024 3x3, cccp 1024, cccp ``num_classes``, ReLU, global average pool.
  7,595,176 parameters with 1000 classes.
- ``nin_cifar``: the paper's CIFAR-10 model (its Caffe ``cifar10`` definition): conv 192 5x5, cccp 160,
  96, max-pool 3/2, dropout 0.5; conv 192 5x5, cccp 192, 192, average-pool 3/2, dropout 0.5; conv 192
  3x3, cccp 192, cccp ``num_classes``, ReLU, global average pool. 966,986 parameters with 10 classes.
  The paper gives no exact parameter counts; the tests pin the zoo's own.

As in Caffe, the ReLU after the class maps is kept (torchvision's SqueezeNet does the same), and
pooling rounds its output size up (Caffe's and PyTorch's ``ceil_mode``; see `zoo.models._common.pool_ceil_mode`), so a
224 input gives 54 -> 27 -> 13 -> 6 maps as in the Caffe model. ``batch_norm=True`` (not in the
paper) puts batch norm between every convolution but the class-map one and its ReLU, and drops those
convolutions' biases. The output layer is an ``Activation`` named ``predictions`` after the global
pool, applying ``classifier_activation``; ``include_top=False`` returns the features before the
class-map convolution.

Stems: the ImageNet stem is conv1 11x11 stride 4 unpadded, the small stem (chosen automatically under
64 pixels) is the CIFAR model's 5x5 stride-1 conv1 padded by 2. ``nin`` on 32x32 therefore keeps all
four ImageNet blocks on 32 -> 16 -> 8 -> 4 maps, and ``nin_cifar`` on ImageNet-sized inputs gets the
11x11/4 conv1 instead of its own.
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo._registry import register_family
from zoo.models._common import bn, conv, image_input, pool_ceil_mode, pool_features, resolve_stem

layers = keras.layers

__all__ = ["mlpconv_block"]

Layout = Literal["imagenet", "cifar"]

# Per block: (kernel, channels of conv/cccp1/cccp2, pooling after it, dropout after it). The last
# block's cccp2 is the class-map convolution (``None``: num_classes) and is followed by global pooling.
_LAYOUTS = {
    "imagenet": (
        (11, (96, 96, 96), "max", False),
        (5, (256, 256, 256), "max", False),
        (3, (384, 384, 384), "max", True),
        (3, (1024, 1024, None), None, False),
    ),
    "cifar": (
        (5, (192, 160, 96), "max", True),
        (5, (192, 192, 192), "avg", True),
        (3, (192, 192, None), None, False),
    ),
}
_STEMS = {"imagenet": (11, 4, "valid"), "small": (5, 1, "same")}  # conv1 kernel, stride, padding


def _conv_relu(x, filters: int, kernel: int, *, strides: int = 1, padding="same", batch_norm: bool, name: str):
    x = conv(x, filters, kernel, strides=strides, padding=padding, use_bias=not batch_norm, name=name)
    if batch_norm:
        x = bn(x, f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x)


def mlpconv_block(x, kernel: int, widths, *, strides: int = 1, padding="same", batch_norm: bool, name: str):
    """A ``kernel``x``kernel`` convolution and 1x1 convolutions (``{name}_conv``, ``{name}_cccp1``...)."""
    x = _conv_relu(x, widths[0], kernel, strides=strides, padding=padding, batch_norm=batch_norm,
                   name=f"{name}_conv")
    for i, filters in enumerate(widths[1:], start=1):
        x = _conv_relu(x, filters, 1, batch_norm=batch_norm, name=f"{name}_cccp{i}")
    return x


def _create_nin(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    layout: Layout = "imagenet",
    batch_norm: bool = False,
    dropout: float = 0.5,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a Network In Network; see the module docstring for the variants.

    Args:
        layout: ``"imagenet"`` (the Caffe Model Zoo's four-block model) or ``"cifar"`` (the paper's
            three-block CIFAR-10 model).
        batch_norm: batch norm before each ReLU except the class maps' (not in the paper).
        dropout: dropout rate after the blocks that have it.
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(_LAYOUTS)}; received {layout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
    stem = resolve_stem(stem, input_shape, family="nin")
    kernel1, stride1, padding1 = _STEMS[stem]
    if min(input_shape[:2]) < kernel1 and padding1 == "valid":
        raise ValueError(
            f"NIN's ImageNet stem needs inputs of at least {kernel1}x{kernel1}; received "
            f"input_shape={tuple(input_shape)}. Use stem='small' (or 'auto') for small images."
        )
    blocks = _LAYOUTS[layout]
    inputs = image_input(input_shape)
    x = inputs
    for b, (kernel, widths, pool, drop) in enumerate(blocks, start=1):
        last = b == len(blocks)
        strides, padding = (stride1, padding1) if b == 1 else (1, "same")
        if b == 1:
            kernel = kernel1
        x = mlpconv_block(x, kernel, widths[:-1] if last else widths, strides=strides, padding=padding,
                          batch_norm=batch_norm, name=f"block{b}")
        if pool:
            x = pool_ceil_mode(x, 3, 2, kind=pool, name=f"block{b}_pool")
        if drop:
            x = layers.Dropout(dropout, name=f"block{b}_dropout")(x)
    if not include_top:
        return keras.Model(inputs, pool_features(x, pooling), name=name)
    # The class-map convolution (the last block's cccp2; Caffe's cccp8 / cccp6) is the classifier.
    x = conv(x, num_classes, 1, use_bias=True, name="head_conv")
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Activation(classifier_activation or "linear", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


FAMILY = register_family(
    "nin",
    _create_nin,
    paper="Network In Network (Lin, Chen, Yan)",
    year=2013,
    url="https://arxiv.org/abs/1312.4400",
    classifier_layers=("head_conv",),
    head_layers=("head_conv",),
    weight_free_options=("dropout",),
)

# No published counts: the paper gives none (the zoo's are pinned in tests/zoo/models/test_nin.py).
FAMILY.register("nin", layout="imagenet")
FAMILY.register("nin_cifar", layout="cifar", default_input_shape=(32, 32, 3), default_num_classes=10)
