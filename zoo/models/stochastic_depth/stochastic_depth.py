"""Deep Networks with Stochastic Depth (Huang, Sun, Liu, Sedra, Weinberger, ECCV 2016).

A ResNet whose residual branch ``l`` of ``L`` survives training with probability
``p_l = 1 - l / L * (1 - p_L)`` (the linear decay rule, ``p_L = 0.5`` in the paper), dropped per
example; at inference every branch is kept and scaled by ``p_l`` (the paper's equation 5). The
mechanism is the reusable layer `zoo.layers.StochasticDepth` in `zoo.models.resnet`'s blocks.

Variants:
- ``stochastic_depth_resnet110``: the paper's CIFAR network, ResNet-110 (section 4.2, option A
  shortcuts: subsample and zero-pad). Stochastic depth adds no parameters: same count as
  ``resnet110`` (1.7M, He et al. 2015, Table 6).
- ``stochastic_depth_resnet152``: the paper's ImageNet network (section 4.4) in torchvision's
  ResNet-152 layout; its trainable count equals torchvision's ``resnet152``.

Small inputs: as `zoo.models.resnet` (3x3 stride-1 stem under 64 pixels; the CIFAR network gets
the 7x7/2 stem and max-pool on large inputs).
"""

from __future__ import annotations

from typing import Literal

from zoo._registry import Published, register_family
from zoo.models.resnet.resnet import _create_resnet

__all__: list[str] = []


def _create_stochastic_depth(
    *,
    name: str,
    input_shape,
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    block: Literal["basic", "bottleneck"] = "basic",
    stage_depths: tuple[int, ...] = (18, 18, 18),
    stage_widths: tuple[int, ...] = (16, 32, 64),
    stem_width: int = 16,
    shortcut: Literal["projection", "zero_pad"] = "zero_pad",
    min_survival_probability: float = 0.5,
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a ResNet with stochastic depth.

    Args:
        block: ``"basic"`` or ``"bottleneck"`` residual blocks.
        stage_depths: blocks per stage.
        stage_widths: base channels per stage.
        stem_width: channels of the stem convolution.
        shortcut: ``"zero_pad"`` (option A, the paper's CIFAR choice) or ``"projection"``.
        min_survival_probability: ``p_L``, the last block's survival probability (0.5 in the paper).
        stem: ``"auto"``, ``"imagenet"`` or ``"small"``.
    """
    return _create_resnet(name=name, input_shape=input_shape, num_classes=num_classes, include_top=include_top,
                          pooling=pooling, classifier_activation=classifier_activation, block=block,
                          stage_depths=stage_depths, stage_widths=stage_widths, stem_width=stem_width,
                          shortcut=shortcut, min_survival_probability=min_survival_probability, stem=stem)


FAMILY = register_family(
    "stochastic_depth",
    _create_stochastic_depth,
    paper="Deep Networks with Stochastic Depth (Huang, Sun, Liu, Sedra, Weinberger)",
    year=2016,
    url="https://arxiv.org/abs/1603.09382",
    weight_free_options=("min_survival_probability",),
)

FAMILY.register("stochastic_depth_resnet110", default_input_shape=(32, 32, 3), default_num_classes=10,
                published=Published(1_700_000, "He et al. 2015, Table 6 (ResNet-110)", decimals=1))
FAMILY.register("stochastic_depth_resnet152", block="bottleneck", stage_depths=(3, 8, 36, 3),
                stage_widths=(64, 128, 256, 512), stem_width=64, shortcut="projection",
                published=Published(60_192_808, "torchvision.models.resnet152 (weights meta num_params)"))
