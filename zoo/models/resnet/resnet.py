"""ResNet: Deep Residual Learning for Image Recognition (He, Zhang, Ren, Sun, CVPR 2016; arXiv 2015).

Variants:
- ``resnet18/34/50/101/152``: the ImageNet networks (paper Table 1) in torchvision's layout:
  convolutions without bias followed by batch norm, projection shortcuts (option B) where the shape
  changes, and the bottleneck's stride on its 3x3 convolution ("ResNet v1.5", as torchvision and
  most reference implementations; the paper strides the first 1x1). Trainable parameters equal
  torchvision's published counts.
- ``resnet20/32/44/56/110``: the CIFAR-10 networks of the paper's section 4.2: a 3x3 stem of 16
  channels, three stages of ``n`` basic blocks with 16, 32 and 64 channels (depth ``6n + 2``), and
  parameter-free identity shortcuts that subsample and zero-pad channels (option A), so their
  parameter counts match the paper's Table 6.
- ``resnet50v2/101v2/152v2``: the pre-activation ResNet (He et al., "Identity Mappings in Deep
  Residual Networks", ECCV 2016) in keras.applications' layout (BN-ReLU before each convolution,
  biased stem and last 1x1 convolutions, stride on the last block of a stage); trainable parameters
  equal keras.applications' ``ResNet50V2`` etc.

Small inputs: with ``stem="small"`` (chosen automatically under 64 pixels) the ImageNet stem
(7x7/2 convolution and 3x3/2 max-pool) becomes one 3x3 stride-1 convolution, as in the CIFAR
versions of these networks; the CIFAR networks keep their own 3x3 stem and, on large inputs
(``stem="imagenet"``), get the 7x7/2 convolution and max-pool instead.

The backbone (`resnet_backbone`) also serves ResNeXt (grouped bottlenecks), Wide ResNet-50-2 and
Stochastic Depth (residual branches dropped per example through `zoo.layers.StochasticDepth`).
"""

from __future__ import annotations

from typing import Literal

import tf_keras as keras

from zoo._registry import Published, register_family
from zoo.layers import ChannelPad, StochasticDepth
from zoo.models._common import bn, conv, conv_bn_act, head, image_input, resolve_stem

layers = keras.layers

__all__ = ["resnet_backbone", "survival_probabilities"]

Block = Literal["basic", "bottleneck", "preact_bottleneck"]
EXPANSION = {"basic": 1, "bottleneck": 4, "preact_bottleneck": 4}


def survival_probabilities(num_blocks: int, min_survival_probability: float) -> list[float]:
    """The linear decay rule of Huang et al. 2016: ``p_l = 1 - l / L * (1 - p_L)`` for ``l = 1..L``."""
    if not 0.0 < min_survival_probability <= 1.0:
        raise ValueError(f"min_survival_probability must be in (0, 1]; received {min_survival_probability!r}")
    return [1.0 - (i + 1) / num_blocks * (1.0 - min_survival_probability) for i in range(num_blocks)]


def _merge(shortcut, residual, survival_probability: float, name: str):
    if survival_probability < 1.0:
        return StochasticDepth(survival_probability, name=f"{name}_drop_path")([shortcut, residual])
    return layers.Add(name=f"{name}_add")([shortcut, residual])


def _zero_pad_shortcut(x, filters: int, strides: int, name: str):
    """Option A: subsample and zero-pad channels (one TFLite PAD; TFMOT passes it through)."""
    if strides > 1:
        x = layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    extra = filters - x.shape[-1]
    if extra:
        x = ChannelPad((extra // 2, extra - extra // 2), name=f"{name}_chpad")(x)
    return x


def _shortcut(x, filters: int, strides: int, kind: str, name: str):
    if strides == 1 and x.shape[-1] == filters:
        return x
    if kind == "zero_pad":
        return _zero_pad_shortcut(x, filters, strides, name)
    return conv_bn_act(x, filters, 1, strides=strides, activation=None, padding="valid", name=f"{name}_downsample")


def basic_block(x, filters: int, *, strides: int, shortcut: str, survival_probability: float, name: str):
    short = _shortcut(x, filters, strides, shortcut, name)
    y = conv_bn_act(x, filters, 3, strides=strides, name=f"{name}_1")
    y = conv_bn_act(y, filters, 3, activation=None, name=f"{name}_2")
    y = _merge(short, y, survival_probability, name)
    return layers.Activation("relu", name=f"{name}_out")(y)


def bottleneck_block(x, filters: int, *, strides: int, groups: int, width_per_group: int, shortcut: str,
                     survival_probability: float, name: str):
    width = int(filters * (width_per_group / 64.0)) * groups
    out = filters * EXPANSION["bottleneck"]
    short = _shortcut(x, out, strides, shortcut, name)
    y = conv_bn_act(x, width, 1, name=f"{name}_1")
    y = conv_bn_act(y, width, 3, strides=strides, groups=groups, name=f"{name}_2")
    y = conv_bn_act(y, out, 1, activation=None, name=f"{name}_3")
    y = _merge(short, y, survival_probability, name)
    return layers.Activation("relu", name=f"{name}_out")(y)


def preact_bottleneck_block(x, filters: int, *, strides: int, project: bool, survival_probability: float,
                            name: str):
    """keras.applications' ``block2``: BN-ReLU first; the shortcut projects the pre-activation."""
    out = filters * EXPANSION["preact_bottleneck"]
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(bn(x, f"{name}_preact_bn", epsilon=1.001e-5))
    if project:
        short = layers.Conv2D(out, 1, strides=strides, name=f"{name}_shortcut_conv")(preact)
    elif strides > 1:
        short = layers.MaxPooling2D(1, strides=strides, name=f"{name}_shortcut_pool")(x)
    else:
        short = x
    y = conv(preact, filters, 1, name=f"{name}_1_conv")
    y = layers.Activation("relu", name=f"{name}_1_relu")(bn(y, f"{name}_1_bn", epsilon=1.001e-5))
    y = conv(y, filters, 3, strides=strides, padding=1, name=f"{name}_2_conv")
    y = layers.Activation("relu", name=f"{name}_2_relu")(bn(y, f"{name}_2_bn", epsilon=1.001e-5))
    y = layers.Conv2D(out, 1, name=f"{name}_3_conv")(y)
    return _merge(short, y, survival_probability, name)


def resnet_backbone(x, *, block: str, stage_depths, stage_widths, groups: int = 1, width_per_group: int = 64,
                    shortcut: str = "projection", min_survival_probability: float = 1.0):
    """The residual stages; the first stage keeps the resolution, each later one halves it."""
    if block not in EXPANSION:
        raise ValueError(f"block must be one of {tuple(EXPANSION)}; received {block!r}")
    if shortcut not in ("projection", "zero_pad"):
        raise ValueError(f"shortcut must be 'projection' (option B) or 'zero_pad' (option A); received {shortcut!r}")
    if len(stage_depths) != len(stage_widths) or not stage_depths or min(stage_depths) < 1:
        raise ValueError(
            f"stage_depths and stage_widths must be non-empty and of equal length with depths >= 1; "
            f"received {stage_depths!r} and {stage_widths!r}"
        )
    if (groups != 1 or width_per_group != 64) and block != "bottleneck":
        raise ValueError(f"groups and width_per_group apply to block='bottleneck' only; received block={block!r}")
    probs = iter(survival_probabilities(sum(stage_depths), min_survival_probability))
    last_stage = len(stage_depths) - 1
    for s, (depth, filters) in enumerate(zip(stage_depths, stage_widths)):
        for b in range(depth):
            name = f"stage{s + 1}_block{b + 1}"
            p = next(probs)
            if block == "basic":
                strides = 2 if s > 0 and b == 0 else 1
                x = basic_block(x, filters, strides=strides, shortcut=shortcut, survival_probability=p, name=name)
            elif block == "bottleneck":
                strides = 2 if s > 0 and b == 0 else 1
                x = bottleneck_block(x, filters, strides=strides, groups=groups, width_per_group=width_per_group,
                                     shortcut=shortcut, survival_probability=p, name=name)
            else:  # keras.applications ResNetV2: stride 2 on the last block of every stage but the last
                strides = 2 if b == depth - 1 and s < last_stage else 1
                x = preact_bottleneck_block(x, filters, strides=strides, project=b == 0, survival_probability=p,
                                            name=name)
    if block == "preact_bottleneck":
        x = layers.Activation("relu", name="post_relu")(bn(x, "post_bn", epsilon=1.001e-5))
    return x


def resnet_stem(x, *, stem: str, width: int, preact: bool):
    """7x7/2 conv + 3x3/2 max-pool on ImageNet-sized inputs, one 3x3 conv on small ones."""
    kernel, strides = (7, 2) if stem == "imagenet" else (3, 1)
    if preact:  # keras ResNetV2: a biased convolution, its BN-ReLU belongs to the first block
        x = conv(x, width, kernel, strides=strides, use_bias=True, padding=kernel // 2, name="stem_conv")
    else:
        x = conv_bn_act(x, width, kernel, strides=strides, name="stem")
    if stem == "imagenet":
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    return x


def _create_resnet(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    block: Block = "basic",
    stage_depths: tuple[int, ...] = (2, 2, 2, 2),
    stage_widths: tuple[int, ...] = (64, 128, 256, 512),
    stem_width: int = 64,
    groups: int = 1,
    width_per_group: int = 64,
    shortcut: Literal["projection", "zero_pad"] = "projection",
    min_survival_probability: float = 1.0,
    dropout: float = 0.0,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a ResNet; see the module docstring for the variants.

    Args:
        block: ``"basic"`` (two 3x3), ``"bottleneck"`` (1x1-3x3-1x1, x4 expansion) or
            ``"preact_bottleneck"`` (ResNet v2).
        stage_depths: blocks per stage.
        stage_widths: base channels per stage (a bottleneck outputs 4x).
        stem_width: channels of the stem convolution.
        groups: grouped 3x3 convolution in bottlenecks (ResNeXt's cardinality).
        width_per_group: bottleneck width per group at base width 64 (64 for ResNet, 4 for ResNeXt-32x4d,
            128 for Wide ResNet-50-2).
        shortcut: ``"projection"`` (1x1 conv + BN, option B) or ``"zero_pad"`` (parameter-free, option A).
        min_survival_probability: stochastic depth's ``p_L``; 1.0 disables it.
        dropout: dropout rate before the classifier.
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    stem = resolve_stem(stem, input_shape, family="resnet")
    inputs = image_input(input_shape)
    x = resnet_stem(inputs, stem=stem, width=stem_width, preact=block == "preact_bottleneck")
    x = resnet_backbone(x, block=block, stage_depths=stage_depths, stage_widths=stage_widths, groups=groups,
                        width_per_group=width_per_group, shortcut=shortcut,
                        min_survival_probability=min_survival_probability)
    x = head(x, include_top=include_top, num_classes=num_classes, pooling=pooling,
             classifier_activation=classifier_activation, dropout=dropout)
    return keras.Model(inputs, x, name=name)


FAMILY = register_family(
    "resnet",
    _create_resnet,
    paper="Deep Residual Learning for Image Recognition (He, Zhang, Ren, Sun)",
    year=2015,
    url="https://arxiv.org/abs/1512.03385",
    weight_free_options=("min_survival_probability", "dropout"),
)

# ImageNet; counts are torchvision's weights metadata (`num_params`), which excludes BN statistics.
_TV = "torchvision.models.{} (weights meta num_params)"
FAMILY.register("resnet18", block="basic", stage_depths=(2, 2, 2, 2),
                published=Published(11_689_512, _TV.format("resnet18")))
FAMILY.register("resnet34", block="basic", stage_depths=(3, 4, 6, 3),
                published=Published(21_797_672, _TV.format("resnet34")))
FAMILY.register("resnet50", block="bottleneck", stage_depths=(3, 4, 6, 3),
                published=Published(25_557_032, _TV.format("resnet50")))
FAMILY.register("resnet101", block="bottleneck", stage_depths=(3, 4, 23, 3),
                published=Published(44_549_160, _TV.format("resnet101")))
FAMILY.register("resnet152", block="bottleneck", stage_depths=(3, 8, 36, 3),
                published=Published(60_192_808, _TV.format("resnet152")))

# CIFAR-10, paper section 4.2 and Table 6 (counts rounded there: 0.27M ... 1.7M).
_CIFAR = dict(default_input_shape=(32, 32, 3), default_num_classes=10, block="basic", stage_widths=(16, 32, 64),
              stem_width=16, shortcut="zero_pad")
_TABLE6 = "He et al. 2015, Table 6"
for _n, _params, _decimals in ((3, 270_000, 2), (5, 460_000, 2), (7, 660_000, 2), (9, 850_000, 2),
                               (18, 1_700_000, 1)):
    FAMILY.register(f"resnet{6 * _n + 2}", stage_depths=(_n, _n, _n),
                    published=Published(_params, _TABLE6, decimals=_decimals), **_CIFAR)

# Pre-activation; trainable counts of keras.applications.ResNet{50,101,152}V2(weights=None).
_KA = "keras.applications.{} (trainable params)"
FAMILY.register("resnet50v2", block="preact_bottleneck", stage_depths=(3, 4, 6, 3),
                published=Published(25_568_360, _KA.format("ResNet50V2")))
FAMILY.register("resnet101v2", block="preact_bottleneck", stage_depths=(3, 4, 23, 3),
                published=Published(44_577_896, _KA.format("ResNet101V2")))
FAMILY.register("resnet152v2", block="preact_bottleneck", stage_depths=(3, 8, 36, 3),
                published=Published(60_236_904, _KA.format("ResNet152V2")))
