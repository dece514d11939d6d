"""ResNeXt: Aggregated Residual Transformations for Deep Neural Networks (Xie et al., CVPR 2017).

A ResNet whose bottleneck 3x3 convolution is split into ``cardinality`` groups (the paper's form
(c), a grouped convolution) of ``bottleneck_width`` channels each at the first stage, doubling per
stage. Built on `zoo.models.resnet.resnet_backbone` with ``groups``/``width_per_group``.

Variants:
- ``resnext50_32x4d``, ``resnext101_32x8d``, ``resnext101_64x4d``: ImageNet, torchvision's layout
  (stride on the 3x3, projection shortcuts); trainable counts equal torchvision's.
- ``resnext29_8x64d``, ``resnext29_16x64d``: the paper's CIFAR networks (section 5.3): a 3x3 stem of
  64 channels, three stages of three bottlenecks with outputs 256, 512 and 1024; counts match the
  paper's Table 7 (34.4M and 68.1M), which truncates: the trainable counts are 34.43M and 68.16M.

Small inputs: the ImageNet networks get ResNet's small-input stem (one 3x3 stride-1 convolution of
64 channels, no max-pool); the CIFAR networks get the 7x7/2 stem and max-pool on large inputs.
Grouped convolutions run on CPU in TF 2.21 and convert to TFLite.
"""

from __future__ import annotations

from typing import Literal

from zoo._registry import Published, register_family
from zoo.models.resnet.resnet import _create_resnet

__all__: list[str] = []


def _create_resnext(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    stage_depths: tuple[int, ...] = (3, 4, 6, 3),
    stage_widths: tuple[int, ...] = (64, 128, 256, 512),
    cardinality: int = 32,
    bottleneck_width: int = 4,
    stem_width: int = 64,
    min_survival_probability: float = 1.0,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a ResNeXt.

    Args:
        stage_depths: bottleneck blocks per stage.
        stage_widths: base widths per stage (a block outputs 4x).
        cardinality: number of groups ``C``.
        bottleneck_width: channels per group ``d`` at base width 64.
        stem_width: channels of the stem convolution.
        min_survival_probability: stochastic depth's ``p_L``; 1.0 disables it.
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    if cardinality < 1 or bottleneck_width < 1:
        raise ValueError(f"cardinality and bottleneck_width must be >= 1; received {cardinality!r}, "
                         f"{bottleneck_width!r}")
    return _create_resnet(name=name, input_shape=input_shape, num_classes=num_classes, include_top=include_top,
                          pooling=pooling, classifier_activation=classifier_activation, block="bottleneck",
                          stage_depths=stage_depths, stage_widths=stage_widths, stem_width=stem_width,
                          groups=cardinality, width_per_group=bottleneck_width,
                          min_survival_probability=min_survival_probability, stem=stem)


FAMILY = register_family(
    "resnext",
    _create_resnext,
    paper="Aggregated Residual Transformations for Deep Neural Networks (Xie, Girshick, Dollar, Tu, He)",
    year=2016,
    url="https://arxiv.org/abs/1611.05431",
    weight_free_options=("min_survival_probability",),
)

_TV = "torchvision.models.{} (weights meta num_params)"
FAMILY.register("resnext50_32x4d", stage_depths=(3, 4, 6, 3), cardinality=32, bottleneck_width=4,
                published=Published(25_028_904, _TV.format("resnext50_32x4d")))
FAMILY.register("resnext101_32x8d", stage_depths=(3, 4, 23, 3), cardinality=32, bottleneck_width=8,
                published=Published(88_791_336, _TV.format("resnext101_32x8d")))
FAMILY.register("resnext101_64x4d", stage_depths=(3, 4, 23, 3), cardinality=64, bottleneck_width=4,
                published=Published(83_455_272, _TV.format("resnext101_64x4d")))

_CIFAR = dict(default_input_shape=(32, 32, 3), default_num_classes=10, stage_depths=(3, 3, 3),
              stage_widths=(64, 128, 256))
FAMILY.register("resnext29_8x64d", cardinality=8, bottleneck_width=64,
                published=Published(34_400_000, "Xie et al. 2017, Table 7", decimals=1, truncated=True), **_CIFAR)
FAMILY.register("resnext29_16x64d", cardinality=16, bottleneck_width=64,
                published=Published(68_100_000, "Xie et al. 2017, Table 7", decimals=1, truncated=True), **_CIFAR)
