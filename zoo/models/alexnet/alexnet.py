"""AlexNet: ImageNet Classification with Deep Convolutional Neural Networks (Krizhevsky, Sutskever, Hinton, NIPS 2012).

Variants:
- ``alexnet``: torchvision's single-tower AlexNet (from Krizhevsky's "One weird trick", 2014):
  convolutions of 64, 192, 384, 256 and 256 channels, no local response normalization, dropout
  before fc6 and fc7. Trainable parameters equal torchvision's published 61,100,840.
- ``alexnet_2012``: the paper's two-GPU network written, as Caffe's ``bvlc_alexnet`` does, with
  grouped convolutions (``groups=2`` in conv2, conv4 and conv5, whose kernels only see their own
  tower's half of the channels; conv3 and the dense layers see both): 96, 256, 384, 384 and 256
  channels, local response normalization after conv1 and conv2 (before their max-pools, as in the
  paper and ``bvlc_alexnet``), dropout after fc6 and fc7. 60,965,224 trainable parameters, the count
  of ``bvlc_alexnet`` (the paper's "60 million").

Input size: Caffe feeds 227x227 crops to an unpadded conv1 (the paper's "224x224" is a known slip).
Both variants here take 224x224 and pad conv1 by 2 pixels as torchvision does, which gives the same
55x55 conv1 map and 6x6 pool5 map as Caffe's 227 input. A 227x227 input also gives a 6x6 pool5.
The paper's LRN uses ``k=2`` (`zoo.layers.LocalResponseNormalization`'s default); ``bvlc_alexnet``
leaves Caffe's default ``k=1``.

Other input sizes: torchvision follows the features with ``AdaptiveAvgPool2d((6, 6))``, so fc6 has
9216 inputs at any resolution. Where pool5 is not already 6x6 both variants insert the same pooling
(``adaptive_pool``: GoogLeNet's `AdaptiveAveragePooling2D`, with PyTorch's bins); at 224 and 227 the
layer is left out, so the ImageNet models contain only stock Keras layers. The ImageNet stem needs
inputs of at least 63x63.

Small inputs (``stem="small"``, chosen automatically under 64 pixels): conv1 becomes a 5x5 stride-1
convolution (same padding) and the three max-pools pad ``same``, so 32x32 and 28x28 inputs reach a
4x4 pool5 map instead of collapsing; the classifier's hidden layers shrink from 4096 to 1024 units
(fc6 then has 4x4x256 = 4096 inputs). Widths, grouping, LRN and dropout are unchanged.
"""

from __future__ import annotations

from typing import Literal, Optional

import tf_keras as keras

from zoo._registry import Published, register_family
from zoo.layers import LocalResponseNormalization
from zoo.models._common import conv, image_input, pool_features, resolve_stem
from zoo.layers import AdaptiveAveragePooling2D

layers = keras.layers

__all__ = ["alexnet_features"]

Layout = Literal["torchvision", "paper"]

# (channels, groups) of conv1..conv5.
_LAYOUTS = {
    "torchvision": ((64, 1), (192, 1), (384, 1), (256, 1), (256, 1)),
    "paper": ((96, 1), (256, 2), (384, 1), (384, 2), (256, 2)),
}
_POOL_AFTER = (1, 2, 5)
_POOL5_SIZE = 6
_FC_UNITS = {"imagenet": 4096, "small": 1024}
_MIN_IMAGENET_INPUT = 63  # 11x11/4 conv (pad 2) and three unpadded 3x3/2 max-pools


def alexnet_features(x, *, layout: str, stem: str, local_response_norm: bool, widths: tuple[int, ...] | None = None):
    """conv1..conv5 with their ReLUs, LRN after relu1 and relu2, and pool1, pool2 and pool5."""
    spec = _LAYOUTS[layout]
    if widths is not None:
        spec = tuple((w, g) for w, (_, g) in zip(widths, spec))
    for i, (filters, groups) in enumerate(spec, start=1):
        if i == 1:
            kernel, strides, padding = (11, 4, 2) if stem == "imagenet" else (5, 1, "same")
        else:
            kernel, strides, padding = (5 if i == 2 else 3), 1, "same"
        x = conv(x, filters, kernel, strides=strides, groups=groups, padding=padding, use_bias=True,
                 name=f"conv{i}")
        x = layers.Activation("relu", name=f"conv{i}_relu")(x)
        if local_response_norm and i <= 2:
            x = LocalResponseNormalization(name=f"conv{i}_lrn")(x)
        if i in _POOL_AFTER:
            x = layers.MaxPooling2D(3, strides=2, padding="valid" if stem == "imagenet" else "same",
                                    name=f"pool{i}")(x)
    return x


def _classifier(x, *, layout: str, stem: str, num_classes: int, classifier_activation: str | None,
                dropout: float, fc_units: int | None = None):
    if stem == "imagenet" and tuple(x.shape[1:3]) != (_POOL5_SIZE, _POOL5_SIZE):
        x = AdaptiveAveragePooling2D(_POOL5_SIZE, name="adaptive_pool")(x)
    x = layers.Flatten(name="head_flatten")(x)
    units = fc_units or _FC_UNITS[stem]
    if layout == "torchvision":  # dropout on the inputs of fc6 and fc7
        x = layers.Dropout(dropout, name="pool5_dropout")(x)
    x = layers.Activation("relu", name="fc6_relu")(layers.Dense(units, name="fc6")(x))
    x = layers.Dropout(dropout, name="fc6_dropout")(x)
    x = layers.Activation("relu", name="fc7_relu")(layers.Dense(units, name="fc7")(x))
    if layout == "paper":  # Caffe's drop6 and drop7: dropout on the outputs of fc6 and fc7
        x = layers.Dropout(dropout, name="fc7_dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, name="predictions")(x)


def _create_alexnet(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    layout: Layout = "torchvision",
    local_response_norm: bool = True,
    dropout: float = 0.5,
    widths: Optional[tuple[int, ...]] = None,
    fc_units: Optional[int] = None,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds an AlexNet; see the module docstring for the variants.

    Args:
        layout: ``"torchvision"`` (single tower, 64-192-384-256-256) or ``"paper"`` (two towers as
            grouped convolutions, 96-256-384-384-256).
        local_response_norm: LRN after the first two ReLUs (the paper's; torchvision has none).
        dropout: dropout rate of the classifier.
        widths: channels of conv1..conv5 instead of the layout's (grouped layers keep their groups,
            so each width must divide by them); ``None`` keeps the layout's.
        fc_units: units of fc6 and fc7 (default 4096, or 1024 with the small stem).
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(_LAYOUTS)}; received {layout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); received {dropout!r}")
    if widths is not None:
        groups = tuple(g for _, g in _LAYOUTS[layout])
        if len(widths) != 5 or any(w < 1 or w % g for w, g in zip(widths, groups)):
            raise ValueError(f"widths must be five positive channel counts, each divisible by the {layout} layout's "
                             f"groups {groups}; received {widths!r}")
    if fc_units is not None and fc_units < 1:
        raise ValueError(f"fc_units must be a positive number of units; received {fc_units!r}")
    stem = resolve_stem(stem, input_shape, family="alexnet")
    if stem == "imagenet" and min(input_shape[:2]) < _MIN_IMAGENET_INPUT:
        raise ValueError(
            f"AlexNet's ImageNet stem needs inputs of at least {_MIN_IMAGENET_INPUT}x{_MIN_IMAGENET_INPUT}; "
            f"received input_shape={tuple(input_shape)}. Use stem='small' (or 'auto') for small images."
        )
    inputs = image_input(input_shape)
    x = alexnet_features(inputs, layout=layout, stem=stem, local_response_norm=local_response_norm, widths=widths)
    if include_top:
        x = _classifier(x, layout=layout, stem=stem, num_classes=num_classes,
                        classifier_activation=classifier_activation, dropout=dropout, fc_units=fc_units)
    else:
        x = pool_features(x, pooling)
    return keras.Model(inputs, x, name=name)


FAMILY = register_family(
    "alexnet",
    _create_alexnet,
    paper="ImageNet Classification with Deep Convolutional Neural Networks (Krizhevsky, Sutskever, Hinton)",
    year=2012,
    url="https://papers.nips.cc/paper/4824-imagenet-classification-with-deep-convolutional-neural-networks",
    head_layers=("fc6", "fc7", "predictions"),
    weight_free_options=("dropout",),
)

FAMILY.register("alexnet", layout="torchvision", local_response_norm=False,
                published=Published(61_100_840, "torchvision.models.alexnet (weights meta num_params)"))
# 60,965,224 is the parameter count of bvlc_alexnet's deploy.prototxt (conv and fc weights and biases);
# the paper rounds it to "60 million".
FAMILY.register("alexnet_2012", layout="paper", local_response_norm=True,
                published=Published(60_965_224, "Caffe models/bvlc_alexnet (Krizhevsky et al. 2012: 60 million)"))
