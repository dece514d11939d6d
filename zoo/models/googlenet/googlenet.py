"""GoogLeNet (Inception v1) from Szegedy et al., "Going Deeper with Convolutions", CVPR 2015.

Layout follows torchvision's ``googlenet``: every convolution is ``BasicConv2d`` (conv without bias,
batch norm with epsilon 1e-3, ReLU; batch norm is not in the paper, which predates it), inception
blocks 3a-5b, max pools in ceil mode, and the two auxiliary classifiers after 4a and 4d.

Variant: ``googlenet``.

What differs from torchvision, and from the paper:
- ``branch3_kernel``: the paper's third branch uses 5x5 kernels; torchvision (to load the converted
  Caffe weights, see pytorch/vision#906) uses 3x3 there. The registered ``googlenet`` follows the
  paper (5); ``branch3_kernel=3`` gives torchvision's model, whose trainable parameter count equals
  torchvision's exactly: 6,624,904 without auxiliary heads (``aux_logits=False``, the number in
  torchvision's weights metadata) and 13,004,888 with them. The paper-default model is larger
  (7,005,832 / 13,385,816), so no published count is claimed for it.
- Auxiliary classifiers (``aux_logits=True``, the default) are extra *training-only* outputs: the
  model returns ``[predictions, aux1_predictions, aux2_predictions]``, primary first, and
  ``zoo.strip_training_outputs(model)`` keeps the primary one for inference and export. With
  pretrained weights the default is ``aux_logits=False`` (the model predicts; pass ``True`` to fine-tune
  with the heads), as torchvision's pretrained GoogLeNet. The paper
  weights their losses by 0.3. Each head is: average pool, 1x1 conv 128, fc 1024 + ReLU, dropout 0.7,
  fc ``num_classes`` (with ``classifier_activation``). The paper pools 5x5 with stride 3, which gives
  4x4 on the 14x14 maps of a 224 input; torchvision pools adaptively to 4x4 instead (windows of 4
  rather than 5 at 14x14, same shapes and parameters). We use the adaptive pool
  (`AdaptiveAveragePooling2D`, PyTorch's bin edges), which also keeps the heads working at small
  inputs: the maps are always pooled to 4x4 (replicating pixels when they are smaller), so ``fc1``
  always sees 2048 features.
- Dropout before the final fc is 0.2 as in torchvision (``dropout``); the paper uses 0.4.
- torchvision's ``transform_input`` (re-normalizing inputs for the converted Caffe weights) is not
  part of the model.

Small inputs (``stem="small"``, picked automatically under 64 px, e.g. 28x28x1 and 32x32x3): the
stem (7x7/2 conv, max pool, 1x1 conv, 3x3 conv, max pool) is replaced by one 3x3 conv with 192
channels at stride 1 and no early max pools, the common CIFAR adaptation of GoogLeNet. The
inception blocks then run at 32/16/8 (28/14/7 for 28x28) instead of 28/14/7.

Max pools use PyTorch's ``ceil_mode=True`` output sizes at every input size (224 gives
112 -> 56 -> 28 -> 14 -> 7): the missing bottom/right rows are zero-padded, which equals PyTorch's
``-inf`` padding because every pooled tensor here follows a ReLU.
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo._registry import register_family
from zoo.layers import AdaptiveAveragePooling2D
from zoo.models._common import bn, classifier, conv, image_input, pool_ceil_mode, pool_features, resolve_stem

layers = keras.layers

__all__: list[str] = []

BN_EPSILON = 1e-3  # torchvision's BasicConv2d

# (name, branch1 1x1, branch2 reduce, branch2 3x3, branch3 reduce, branch3 "5x5", branch4 pool proj)
INCEPTION_3 = (("3a", 64, 96, 128, 16, 32, 32), ("3b", 128, 128, 192, 32, 96, 64))
INCEPTION_4 = (
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
)
INCEPTION_5 = (("5a", 256, 160, 320, 32, 128, 128), ("5b", 384, 192, 384, 48, 128, 128))


def _basic_conv(x, filters: int, kernel_size: int, *, name: str, strides: int = 1):
    """torchvision's BasicConv2d: conv (no bias) ``name`` -> BN ``name_bn`` (eps 1e-3) -> ReLU."""
    x = conv(x, filters, kernel_size, strides=strides, name=name)
    x = bn(x, f"{name}_bn", epsilon=BN_EPSILON)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _scaled(channels: int, width_multiplier: float) -> int:
    """``channels`` times the multiplier, rounded, at least 8."""
    return channels if width_multiplier == 1.0 else max(8, int(round(channels * width_multiplier)))


def _inception(x, spec, *, branch3_kernel: int, width_multiplier: float = 1.0):
    """Four parallel branches concatenated: 1x1 | 1x1-3x3 | 1x1-"5x5" | 3x3 max pool-1x1."""
    block, *channels = spec
    ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj = (_scaled(c, width_multiplier) for c in channels)
    p = f"inception{block}"
    b1 = _basic_conv(x, ch1x1, 1, name=f"{p}_branch1")
    b2 = _basic_conv(x, ch3x3red, 1, name=f"{p}_branch2a")
    b2 = _basic_conv(b2, ch3x3, 3, name=f"{p}_branch2b")
    b3 = _basic_conv(x, ch5x5red, 1, name=f"{p}_branch3a")
    b3 = _basic_conv(b3, ch5x5, branch3_kernel, name=f"{p}_branch3b")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{p}_branch4_pool")(x)
    b4 = _basic_conv(b4, pool_proj, 1, name=f"{p}_branch4")
    return layers.Concatenate(axis=-1, name=f"{p}_concat")([b1, b2, b3, b4])


# The layers with weights of an auxiliary head `aux1`/`aux2`, as ``f"{name}_{layer}"``.
_AUX_LAYERS = ("conv", "conv_bn", "fc1", "predictions")


def _aux_classifier(x, *, name: str, num_classes: int, classifier_activation: str | None, dropout: float,
                    width_multiplier: float = 1.0):
    """InceptionAux: adaptive average pool to 4x4 -> 1x1 conv 128 -> fc 1024 -> dropout -> fc."""
    x = AdaptiveAveragePooling2D(4, name=f"{name}_pool")(x)
    x = _basic_conv(x, _scaled(128, width_multiplier), 1, name=f"{name}_conv")
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(_scaled(1024, width_multiplier), name=f"{name}_fc1")(x)
    x = layers.Activation("relu", name=f"{name}_fc1_relu")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(num_classes, activation=classifier_activation, name=f"{name}_predictions")(x)


def _create_googlenet(
    *,
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    aux_logits: bool = True,
    branch3_kernel: Literal[3, 5] = 5,
    dropout: float = 0.2,
    aux_dropout: float = 0.7,
    width_multiplier: float = 1.0,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds GoogLeNet.

    Args:
        aux_logits: add the two auxiliary classifiers as extra outputs (only with ``include_top``).
        branch3_kernel: kernel of the third ("5x5") inception branch: 5 as in the paper, 3 as in
            torchvision.
        dropout: dropout before the final fc (torchvision 0.2, paper 0.4).
        aux_dropout: dropout in the auxiliary classifiers (0.7 in the paper and torchvision).
        width_multiplier: scales the channels of every convolution in the stem and the inception
            blocks and the auxiliary heads' conv and fc (rounded, at least 8). 1.0 is the paper's network.
        stem: ``"imagenet"`` (7x7/2 conv and max pools), ``"small"`` (one 3x3 conv 192, stride 1) or
            ``"auto"`` (small under 64 px).

    Raises:
        ValueError: for a ``branch3_kernel``, dropout rate, ``width_multiplier`` or ``stem`` outside the
            accepted values.
    """
    if not width_multiplier > 0.0:
        raise ValueError(f"width_multiplier must be positive; received {width_multiplier!r}")
    if branch3_kernel not in (3, 5):
        raise ValueError(f"branch3_kernel must be 3 (torchvision) or 5 (paper); received {branch3_kernel!r}")
    for key, rate in (("dropout", dropout), ("aux_dropout", aux_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{key} must be in [0, 1); received {rate!r}")
    stem = resolve_stem(stem, input_shape, family="googlenet")

    inputs = image_input(input_shape)
    if stem == "imagenet":
        x = _basic_conv(inputs, _scaled(64, width_multiplier), 7, strides=2, name="conv1")
        x = pool_ceil_mode(x, 3, 2, kind="max", name="maxpool1")
        x = _basic_conv(x, _scaled(64, width_multiplier), 1, name="conv2")
        x = _basic_conv(x, _scaled(192, width_multiplier), 3, name="conv3")
        x = pool_ceil_mode(x, 3, 2, kind="max", name="maxpool2")
    else:
        x = _basic_conv(inputs, _scaled(192, width_multiplier), 3, name="stem")

    for spec in INCEPTION_3:
        x = _inception(x, spec, branch3_kernel=branch3_kernel, width_multiplier=width_multiplier)
    x = pool_ceil_mode(x, 3, 2, kind="max", name="maxpool3")

    with_aux = aux_logits and include_top
    aux_outputs = []
    for spec in INCEPTION_4:
        x = _inception(x, spec, branch3_kernel=branch3_kernel, width_multiplier=width_multiplier)
        if with_aux and spec[0] in ("4a", "4d"):
            aux_outputs.append(
                _aux_classifier(
                    x,
                    name=f"aux{len(aux_outputs) + 1}",
                    num_classes=num_classes,
                    classifier_activation=classifier_activation,
                    dropout=aux_dropout,
                    width_multiplier=width_multiplier,
                )
            )
    x = pool_ceil_mode(x, 2, 2, kind="max", name="maxpool4")
    for spec in INCEPTION_5:
        x = _inception(x, spec, branch3_kernel=branch3_kernel, width_multiplier=width_multiplier)

    if include_top:
        x = classifier(x, num_classes=num_classes, classifier_activation=classifier_activation, dropout=dropout)
        outputs = [x, *aux_outputs] if with_aux else x
    else:
        outputs = pool_features(x, pooling)
    return keras.Model(inputs, outputs, name=name)


FAMILY = register_family(
    "googlenet",
    _create_googlenet,
    paper="Going Deeper with Convolutions",
    year=2015,
    url="https://arxiv.org/abs/1409.4842",
    outputs=("logits", "aux1_logits", "aux2_logits"),
    classifier_layers=("predictions", "aux1_predictions", "aux2_predictions"),
    head_layers=("predictions", *(f"aux{i}_{layer}" for i in (1, 2) for layer in _AUX_LAYERS)),
    weight_free_options=("aux_logits", "dropout", "aux_dropout"),
    pretrained_options={"aux_logits": False},  # as torchvision's: a pretrained model predicts, it does not train
)

# Paper's 5x5 branch, so no published count; torchvision's model is branch3_kernel=3 (see the docstring).
FAMILY.register("googlenet")
