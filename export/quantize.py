"""Quantization-aware training (QAT, int8) with TFMOT, including the zoo's own layers.

Order of operations: (optionally prune / cluster, stripped) → `quantize_aware` (`batch_norms_as_depthwise`,
`fuse_relu`, then fake-quant wrappers;
with ``preserve="sparsity"``, ``"clusters"`` or ``"sparsity_clusters"`` TFMOT's collaborative schemes
keep the zeros / shared values) → fine-tune (`finetune_quantized`; it first sets every range from a batch,
`calibrate_ranges`, where TFMOT would start at [-6, 6]) → `export.tflite.convert(...,
quantize="int8", representative_images=...)`: the QAT ranges stand, and the images calibrate what has none
(a batch norm over a 2-D tensor, a MUL and an ADD, would otherwise stay float). There is no strip: the
converter consumes the wrappers. Post-training quantization (int8, dynamic range, FP16) needs no
training and lives in `export.tflite.convert`.

TFMOT's 8-bit registry knows stock layers only. The zoo's layers get a `QuantizeConfig` here:
`zoo.layers.GroupedConv2D` quantizes its kernel like a convolution; layers without weights that compute
new values (LRN, stochastic depth, FractalNet's join, adaptive pooling, a batch norm over a 2-D tensor that
does not follow a Dense layer) quantize their output; layers that only move or mask values (3-D zero padding, the
drop-path sampler) pass through. A SeparableConv2D, which the registry does not list, goes to TFMOT's
layout transform, which splits it into a depthwise and a pointwise convolution. Any other layer TFMOT
does not know raises `UnsupportedLayerError` naming it.

    >>> qat = quantize_aware(model)  # doctest: +SKIP
    >>> qat = finetune_quantized(qat, "fashion_mnist", recipe=recipe)  # doctest: +SKIP
    >>> flat = export.tflite.convert(qat, quantize="int8", representative_images=images)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy as copy_module
import os

import numpy as np
import tf_keras as keras

from export._finetune import finetune_wrapped, functional, wrap_layers
from zoo._keras import copy_model

__all__ = ["PRESERVE", "UnsupportedLayerError", "batch_norms_as_depthwise", "calibrate_ranges", "finetune_quantized",
           "fuse_relu", "quantize_aware", "quantize_scope"]

PRESERVE = ("none", "sparsity", "clusters", "sparsity_clusters")


class UnsupportedLayerError(ValueError):
    """A layer that neither TFMOT nor this module knows how to quantize."""


def _configs():
    """The QuantizeConfig classes (built on first use: importing TFMOT is slow)."""
    global _CONFIGS
    if _CONFIGS is not None:
        return _CONFIGS
    import tensorflow_model_optimization as tfmot

    quantizers = tfmot.quantization.keras.quantizers

    class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        """No weights; fake-quantizes the output (a new range of values)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self):
            return {}

    class PassThroughQuantizeConfig(OutputQuantizeConfig):
        """Moves or masks values without changing their range: nothing to quantize."""

        def get_output_quantizers(self, layer):
            return []

    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
        prune_preserve_quantize_registry as prune_preserve,
    )

    class GroupedConvQuantizeConfig(OutputQuantizeConfig):
        """A grouped convolution: int8 symmetric kernel (per tensor), as TFMOT's Conv2D without per-axis.

        With ``preserve_sparsity`` the kernel's zeros stay zero (TFMOT's prune-preserving quantizer);
        shared values (clusters) are not preserved for this layer.
        """

        def __init__(self, preserve_sparsity: bool = False):
            self.preserve_sparsity = preserve_sparsity

        def get_weights_and_quantizers(self, layer):
            kind = (prune_preserve.PrunePreserveDefaultWeightsQuantizer if self.preserve_sparsity
                    else quantizers.LastValueQuantizer)
            return [(layer.kernel, kind(num_bits=8, per_axis=False, symmetric=True, narrow_range=True))]

        def get_config(self):
            return {"preserve_sparsity": self.preserve_sparsity}

        def set_quantize_weights(self, layer, quantize_weights):
            layer.kernel = quantize_weights[0]

        def get_output_quantizers(self, layer):
            return []  # the following BN / activation / add quantizes

    _CONFIGS = {
        "OutputQuantizeConfig": OutputQuantizeConfig,
        "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
        "GroupedConvQuantizeConfig": GroupedConvQuantizeConfig,
    }
    return _CONFIGS


_CONFIGS = None

# Zoo layer class name -> the config it gets.
_ZOO_LAYERS = {
    "GroupedConv2D": "GroupedConvQuantizeConfig",
    "LocalResponseNormalization": "OutputQuantizeConfig",
    "StochasticDepth": "OutputQuantizeConfig",
    "AdaptiveAveragePooling2D": "OutputQuantizeConfig",
    "FractalJoin": "OutputQuantizeConfig",
    "GlobalDropPathSampler": "PassThroughQuantizeConfig",
    "ChannelPad": "PassThroughQuantizeConfig",
}
# Stock layers TFMOT's default registry leaves out.
_STOCK_LAYERS = {
    "ZeroPadding3D": "PassThroughQuantizeConfig",
    # TFLite's int8 AVERAGE_POOL_2D keeps its input's scale; TFMOT's own config gives the output a
    # range of its own, which the converter rejects ("violate the same scale constraint", DenseNet).
    "AveragePooling2D": "PassThroughQuantizeConfig",
    "BatchNormalization": "OutputQuantizeConfig",  # only when no convolution precedes it (else TFMOT folds it)
}
_FOLDS_INTO = ("Conv2D", "DepthwiseConv2D", "Dense")
# Stock layers TFMOT's registry does not support but its layout transform replaces before wrapping:
# a SeparableConv2D becomes a DepthwiseConv2D and a Conv2D (`default_8bit_transforms.SeparableConvQuantize`).
_SPLIT_BY_TFMOT = ("SeparableConv2D",)


def _custom_objects() -> dict:
    from zoo import layers as zoo_layers
    from zoo.models.fractalnet import fractalnet

    objects = dict(_configs())
    for name in _ZOO_LAYERS:
        cls = getattr(zoo_layers, name, None) or getattr(fractalnet, name, None)
        if cls is not None:
            objects[name] = cls
    return objects


def quantize_scope():
    """A scope in which QAT models with the zoo's layers load and clone (``tf_keras.models.load_model``)."""
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_scope(_custom_objects())


def _graph(config: dict) -> tuple[dict[str, dict], dict[str, int]]:
    """A functional model config's layers by name, and how many inputs each layer's output feeds."""
    by_name = {entry["name"]: entry for entry in config["layers"]}
    consumers = {name: 0 for name in by_name}
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            # a layer's node lists its inputs, [name, node, tensor, kwargs] each; a TF-op layer's (tf.nn.relu6(x))
            # is one such entry itself
            for inbound in [node] if node and isinstance(node[0], str) else node:
                consumers[inbound[0]] += 1
    return by_name, consumers


def _folded_batch_norms(config: dict) -> set[str]:
    """The batch norms TFMOT folds into the layer before them (its ``*BatchNormQuantize`` patterns): each
    alone after a linear Conv2D, DepthwiseConv2D or Dense that feeds nothing else. Read from the model's
    config, not the layers' nodes: a stripped pruned or clustered model reuses the layer objects of the
    models before it, which hold a node (and consumers) in each of them."""
    by_name, consumers = _graph(config)
    folded = set()
    for entry in config["layers"]:
        nodes = entry["inbound_nodes"]
        if entry["class_name"] != "BatchNormalization" or len(nodes) != 1 or len(nodes[0]) != 1:
            continue
        source = by_name[nodes[0][0][0]]
        if (source["class_name"] in _FOLDS_INTO and source["config"].get("activation") == "linear"
                and consumers[source["name"]] == 1):
            folded.add(entry["name"])
    return folded


def batch_norms_as_depthwise(model: keras.Model) -> keras.Model:
    """The same function with each batch norm TFMOT does not fold (one that follows no linear convolution:
    pre-activation ResNets, DenseNet, a grouped convolution's) as a 1x1 ``DepthwiseConv2D`` computing its
    inference-mode affine, ``x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))``
    (names kept; other weights copied). Only a batch norm over the channels of a 4-D tensor is replaced.

    Why: TFLite runs such a batch norm as a MUL and an ADD; QAT fake-quantizes only the ADD's output, so
    the MUL's int8 output, calibrated after training, is a rounding QAT never saw (DenseNet-BC's 21 of
    them: its QAT and int8 models disagreed on 2% of the test images). A depthwise convolution is one
    int8 op that QAT models exactly: its per-channel kernel holds one weight per channel, which int8 with
    a per-channel scale represents without error, and a ReLU after it fuses into it (`fuse_relu`).

    Raises:
        ValueError: a model that is not functional (a Sequential one is read as functional).
    """
    model = functional(model, what="batch_norms_as_depthwise")
    config = copy_module.deepcopy(model.get_config())
    folded = _folded_batch_norms(config)
    replaced = {}
    for entry in config["layers"]:
        if (entry["class_name"] != "BatchNormalization" or entry["name"] in folded
                or len(entry["inbound_nodes"]) != 1):
            continue
        layer = model.get_layer(entry["config"]["name"])
        try:
            rank = len(layer.input_shape)
        except AttributeError:  # called on inputs of different shapes
            continue
        if rank != 4 or list(layer.axis) != [3]:
            continue
        entry["class_name"] = "DepthwiseConv2D"
        entry["config"] = {"name": layer.name, "trainable": layer.trainable, "dtype": entry["config"].get("dtype"),
                           "kernel_size": (1, 1), "padding": "valid", "depth_multiplier": 1, "use_bias": True}
        replaced[layer.name] = layer
    if not replaced:
        return model
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    rebuilt = keras.Model.from_config(config, custom_objects=custom)
    for layer in rebuilt.layers:
        bn = replaced.get(layer.name)
        if bn is not None:
            scale = (1.0 if bn.gamma is None else bn.gamma.numpy()) / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            shift = (0.0 if bn.beta is None else bn.beta.numpy()) - bn.moving_mean.numpy() * scale
            channels = bn.moving_mean.shape[0]
            layer.set_weights([np.broadcast_to(scale, (channels,)).reshape(1, 1, channels, 1).astype(np.float32),
                               np.broadcast_to(shift, (channels,)).astype(np.float32)])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return rebuilt


_FUSABLE = ("Conv2D", "DepthwiseConv2D", "Dense", "SeparableConv2D")  # TFMOT gives the last one's to its pointwise


def fuse_relu(model: keras.Model) -> keras.Model:
    """The same function with each ``Activation("relu")`` / ``ReLU()`` that alone follows a linear Conv2D,
    DepthwiseConv2D, SeparableConv2D or Dense folded into that layer's ``activation`` (weights copied,
    names kept).

    Why: TFMOT's 8-bit layout transforms (``LayerReLUQuantize``) give a Conv2D/Dense followed by a separate
    ReLU layer a no-op quantize config, so its kernel would train and convert unquantized, and the
    collaborative schemes (PQAT, CQAT) would not preserve its zeros or shared values. The zoo builds
    non-BN networks (AlexNet, VGG, NiN, SqueezeNet, the classifier heads) that way.

    Raises:
        ValueError: a model that is not functional (a Sequential one is read as functional).
    """
    model = functional(model, what="fuse_relu")
    config = copy_module.deepcopy(model.get_config())
    by_name, consumers = _graph(config)
    outputs = {o[0] for o in config["output_layers"]}
    renamed: dict[str, str] = {}
    for entry in config["layers"]:
        is_relu = (entry["class_name"] == "Activation" and entry["config"].get("activation") == "relu") or (
            entry["class_name"] == "ReLU" and not any(entry["config"].get(k) for k in ("max_value", "negative_slope",
                                                                                      "threshold")))
        if not is_relu or len(entry["inbound_nodes"]) != 1 or len(entry["inbound_nodes"][0]) != 1:
            continue
        source = by_name[entry["inbound_nodes"][0][0][0]]
        if (source["class_name"] in _FUSABLE and source["config"].get("activation") == "linear"
                and consumers.get(source["name"]) == 1 and source["name"] not in outputs):
            source["config"]["activation"] = "relu"
            renamed[entry["name"]] = source["name"]
    if not renamed:
        return model
    config["layers"] = [e for e in config["layers"] if e["name"] not in renamed]
    for entry in config["layers"]:
        for node in entry["inbound_nodes"]:
            for inbound in node:
                inbound[0] = renamed.get(inbound[0], inbound[0])
    for output in config["output_layers"]:
        output[0] = renamed.get(output[0], output[0])
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    fused = keras.Model.from_config(config, custom_objects=custom)
    for layer in fused.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return fused


def quantize_aware(model: keras.Model, *, preserve: str = "none") -> keras.Model:
    """The QAT version of a functional model (fake-quant int8 weights and activations; weights copied).

    Args:
        model: a functional (or Sequential) ``tf_keras`` model (stripped of pruning/clustering wrappers).
        preserve: ``"none"``, ``"sparsity"`` (keep a pruned model's zeros, PQAT), ``"clusters"``
            (keep a clustered model's shared values, CQAT) or ``"sparsity_clusters"`` (both, PCQAT).

    Returns:
        The quantization-aware model; fine-tune it with `finetune_quantized`.

    Raises:
        UnsupportedLayerError: a layer with no quantization rule, named with its class.
        ValueError: an unknown ``preserve`` or a model that is not functional.
    """
    model = functional(model, what="quantization-aware training")
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    if preserve not in PRESERVE:
        raise ValueError(f"unknown preserve {preserve!r}; accepted: {', '.join(PRESERVE)}")
    configs = _configs()
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    copy = fuse_relu(batch_norms_as_depthwise(model))
    if copy is model:
        copy = copy_model(model)
    folded = _folded_batch_norms(copy.get_config())

    def rule(layer) -> str | None:
        kind = type(layer).__name__
        if kind in _ZOO_LAYERS:
            return _ZOO_LAYERS[kind]
        if kind == "BatchNormalization":
            return None if layer.name in folded else _STOCK_LAYERS[kind]
        if kind in _STOCK_LAYERS:
            return _STOCK_LAYERS[kind]
        return None

    unsupported = []
    for layer in copy.layers:
        if isinstance(layer, keras.layers.InputLayer) or rule(layer):
            continue
        if type(layer).__name__ == "BatchNormalization":
            continue  # folded into the preceding convolution by quantize_apply
        if type(layer).__name__ in _SPLIT_BY_TFMOT:
            continue
        if not registry.supports(layer):
            unsupported.append(f"{layer.name} ({type(layer).__module__}.{type(layer).__name__})")
    if unsupported:
        raise UnsupportedLayerError(
            f"cannot quantize {len(unsupported)} layer(s) of {model.name!r}: {', '.join(unsupported[:8])}. "
            "Accepted: stock Keras layers TFMOT's 8-bit scheme supports and the zoo's layers "
            f"({', '.join(sorted(_ZOO_LAYERS))}); give other layers a tfmot QuantizeConfig with "
            "tfmot.quantization.keras.quantize_annotate_layer")

    def wrap(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        name = rule(layer)
        if name == "GroupedConvQuantizeConfig":
            return annotate(layer, quantize_config=configs[name](preserve_sparsity="sparsity" in preserve))
        return annotate(layer, quantize_config=configs[name]()) if name else annotate(layer)

    annotated = wrap_layers(copy, wrap)
    scheme = None
    if preserve == "sparsity":
        scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    elif preserve in ("clusters", "sparsity_clusters"):
        scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=preserve == "sparsity_clusters")
    with quantize_scope():
        return tfmot.quantization.keras.quantize_apply(annotated, scheme) if scheme else \
            tfmot.quantization.keras.quantize_apply(annotated)


@contextlib.contextmanager
def _ranges_from_each_call():
    """Within it, TFMOT's quantizers set their ranges from what they see in every call, as in training
    but also in inference: a kernel's from its last value (`LastValueQuantizer`), an activation's with
    a moving average of decay 0 (`MovingAverageQuantizer`), the input's as a running min/max
    (`AllValuesQuantizer`). The quantizers look these functions up on `quant_ops` at each call."""
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    originals = {name: getattr(quant_ops, name) for name in ("LastValueQuantize", "MovingAvgQuantize", "AllValuesQuantize")}

    def observing(name):
        function, now = originals[name], {"is_training": True}
        if name == "MovingAvgQuantize":
            now["ema_decay"] = 0.0
        return lambda inputs, min_var, max_var, **options: function(inputs, min_var, max_var, **{**options, **now})

    for name in originals:
        setattr(quant_ops, name, observing(name))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(quant_ops, name, function)


def calibrate_ranges(model: keras.Model, images) -> keras.Model:
    """Sets each range of a `quantize_aware` model to the min and max its tensor takes on ``images``
    (one batch, in the model's input space, the model in inference mode); returns the model.

    TFMOT starts every kernel and activation range at [-6, 6] and the input's at [0, 0]. A training
    step sets a kernel's range, but an activation's moves by a moving average with decay 0.999: after
    one epoch of Fashion-MNIST (469 steps) 63% of the starting range remains, so a ReLU output keeps
    a range down to -3.8 (half the int8 codes unused) and an activation past 6 is clipped. Calibrated
    first, fine-tuning starts from the float model's function (and a ResNeXt's int8 grouped
    convolutions agree with it: 99.25% top-1, from 24% uncalibrated). One call sets every range: each
    quantizer assigns its range before it quantizes, so the layers after it see calibrated values.
    """
    with _ranges_from_each_call():
        model(images, training=False)
    return model


def finetune_quantized(model: keras.Model, train, *, recipe, out_dir: str | os.PathLike | None = None,
                       teacher: keras.Model | None = None, verbose="auto") -> keras.Model:
    """Fine-tunes a `quantize_aware` model with the shared loop; convert it with ``quantize="int8"``.

    Its kernel and activation ranges are first calibrated (`calibrate_ranges`) on the first training batch;
    a resumed run then restores its checkpoint's ranges over them."""
    from training import first_batch

    calibrate_ranges(model, first_batch(train, recipe, model=model)[0])
    with quantize_scope():
        return finetune_wrapped(model, train, recipe=recipe, out_dir=out_dir, teacher=teacher, verbose=verbose)
