"""Multiply-accumulate counts of a built model, read off its layers' configs and output shapes."""

from __future__ import annotations

import math

__all__ = ["count_macs"]


def _prod(dims) -> int:
    return math.prod(int(d) for d in dims)


def _output_shapes(layer) -> list:
    shapes = []
    for node in layer._inbound_nodes:  # a layer shared across calls counts once per call
        out = node.output_shapes
        shapes.append(out if isinstance(out, tuple) and (not out or not isinstance(out[0], (tuple, list))) else out[0])
    return shapes


def layer_macs(layer) -> int:
    """MACs of one call of ``layer`` per example, for the layer types that carry the arithmetic."""
    import tf_keras as keras

    macs = 0
    for out in _output_shapes(layer):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            macs += _prod(out[1:]) * kh * kw
        elif isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = int(layer.depthwise_kernel.shape[2])
            spatial = _prod(out[1:-1])
            macs += spatial * cin * layer.depth_multiplier * (kh * kw + out[-1])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv1D, keras.layers.Conv3D)):
            # Conv2DTranspose is a Conv2D subclass; its kernel is (kh, kw, out, in).
            kernel = layer.kernel.shape
            taps = _prod(kernel[:-2])
            if isinstance(layer, keras.layers.Conv2DTranspose):
                macs += _prod(layer.input_shape[1:]) * taps * int(kernel[-2])
            else:
                macs += _prod(out[1:]) * taps * int(kernel[-2])  # kernel[-2] is in_channels / groups
        elif isinstance(layer, keras.layers.Dense):
            kernel = layer.kernel.shape
            macs += _prod(out[1:-1]) * int(kernel[0]) * int(kernel[1])
    return macs


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass of one example through ``model``."""
    return int(sum(layer_macs(layer) for layer in model.layers))
