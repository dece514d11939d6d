"""Magnitude pruning with TFMOT: constant or polynomial-decay schedules, per-layer targets, 2:4 sparsity.

Order of operations: `prune` (wraps every prunable kernel) → fine-tune (`finetune_pruned` runs the
shared loop with TFMOT's ``UpdatePruningStep``) → `strip` (plain layers, zeros in the kernels) →
optionally `export.cluster` with ``preserve_sparsity`` → `export.tflite.convert`. Zeros only shrink
the download: count them with `sparsity` and the gzip'd size.

    >>> pruned = prune(model, sparsity=0.8, schedule="polynomial", end_step=2000)  # doctest: +SKIP
    >>> model = strip(finetune_pruned(pruned, "fashion_mnist", recipe=recipe, out_dir="runs/p"))  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import os
from typing import Mapping

import numpy as np
import tf_keras as keras

from export._finetune import finetune_wrapped, functional, wrap_layers
from zoo._keras import copy_model

__all__ = ["SCHEDULES", "edge_layers", "finetune_pruned", "kernel_weights", "layer_targets", "prune",
           "prunable_layers", "scale_dropout", "sensitivity", "sparsity", "strip"]

SCHEDULES = ("constant", "polynomial")


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def prunable_layers(model: keras.Model) -> list[str]:
    """Names of the layers whose kernels `prune` would prune (stock Keras layers TFMOT knows, and
    layers with ``get_prunable_weights`` such as `zoo.layers.GroupedConv2D`), in model order."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    names = []
    for layer in model.layers:
        if hasattr(layer, "get_prunable_weights"):
            names.append(layer.name)
        elif prune_registry.PruneRegistry.supports(layer) and prune_registry.PruneRegistry._weight_names(layer):
            names.append(layer.name)
    return names


def edge_layers(model: keras.Model) -> tuple[str, ...]:
    """The first and the last prunable layer with a kernel: the stem convolution and the classifier.

    They hold a sliver of the weights and are the most sensitive to pruning: 80% of the first
    convolution alone costs 24-81 points of Fashion-MNIST top-1 in each pretrained family, of the
    classifier 0-8 (`sensitivity`, benchmarks/prune_sensitivity.py). `export.pipeline` leaves them
    dense unless a plan names them.
    """
    names = [n for n in prunable_layers(model) if kernel_weights(model.get_layer(n)) or
             hasattr(model.get_layer(n), "get_prunable_weights")]
    return tuple(dict.fromkeys((names[0], names[-1]))) if names else ()


def layer_targets(model: keras.Model, *, sparsity: float = 0.8, per_layer: Mapping[str, float] | None = None,
                  m_by_n: tuple[int, int] | None = None, skip: tuple[str, ...] = (),
                  dense_edges: bool = False) -> dict[str, float]:
    """The layers `prune` wraps, each with the sparsity it reaches (``m / n`` with ``m_by_n``), in model order.

    Same arguments as `prune`; layers left dense are not listed.

    Raises:
        ValueError: a ``per_layer`` or ``skip`` pattern that matches no prunable layer, a sparsity out of range,
            or nothing to prune.

    Example:
        >>> layer_targets(model, sparsity=0.8, per_layer={"fc*": 0.95}, dense_edges=True)  # doctest: +SKIP
        {'conv2': 0.8, 'fc1': 0.95}
    """
    per_layer = dict(per_layer or {})
    candidates = prunable_layers(model)
    for pattern in [*per_layer, *skip]:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in candidates):
            raise ValueError(f"pattern {pattern!r} matches no prunable layer of {model.name!r}; prunable layers: "
                             f"{', '.join(candidates[:12])}{' ...' if len(candidates) > 12 else ''}")
    for pattern, value in per_layer.items():
        if not 0.0 <= value < 1.0:
            raise ValueError(f"per_layer sparsity for {pattern!r} must be in [0, 1); received {value!r}")
    edges = edge_layers(model) if dense_edges else ()
    targets = {}
    for name in candidates:
        named = next((v for p, v in per_layer.items() if fnmatch.fnmatchcase(name, p)), None)
        if any(fnmatch.fnmatchcase(name, p) for p in skip):
            target = 0.0
        elif named is not None:
            target = named
        else:
            target = 0.0 if name in edges else sparsity
        if m_by_n is not None and target:  # structured sparsity: Conv2D and Dense kernels only
            structured = isinstance(model.get_layer(name), (keras.layers.Conv2D, keras.layers.Dense))
            target = m_by_n[0] / m_by_n[1] if structured else 0.0
        if target:
            targets[name] = target
    if not targets:
        edges = f"; {', '.join(edge_layers(model))} stay dense as edge layers (dense_edges)" if dense_edges else ""
        raise ValueError(f"nothing to prune in {model.name!r}: every prunable layer is left dense. Prunable layers: "
                         f"{', '.join(candidates) or 'none'}{edges}; received sparsity={sparsity}, "
                         f"per_layer={per_layer}, m_by_n={m_by_n}, skip={skip}")
    return targets


def _schedule(kind: str, target: float, *, begin_step: int, end_step: int, frequency: int):
    sparsity = _tfmot().sparsity.keras
    if kind == "constant":
        return sparsity.ConstantSparsity(target, begin_step=begin_step, end_step=end_step, frequency=frequency)
    return sparsity.PolynomialDecay(0.0, target, begin_step=begin_step, end_step=end_step, frequency=frequency)


def prune(
    model: keras.Model,
    *,
    sparsity: float = 0.8,
    schedule: str = "polynomial",
    per_layer: Mapping[str, float] | None = None,
    m_by_n: tuple[int, int] | None = None,
    begin_step: int = 0,
    end_step: int = 1000,
    frequency: int = 50,
    skip: tuple[str, ...] = (),
    dense_edges: bool = False,
    lower_dropout: bool = False,
) -> keras.Model:
    """Wraps the prunable layers of a functional model for magnitude pruning (weights copied).

    Args:
        model: a functional (or Sequential) ``tf_keras`` model.
        sparsity: the final fraction of zeros in each pruned kernel.
        schedule: ``"constant"`` (prune to ``sparsity`` at ``begin_step`` and hold) or
            ``"polynomial"`` (0 to ``sparsity`` along a cubic between ``begin_step`` and ``end_step``).
        per_layer: overrides ``sparsity`` for layers whose names match these glob patterns (first
            match wins); a value of 0 leaves the layer dense.
        m_by_n: structured sparsity instead of a fraction, e.g. ``(2, 4)``: in every block of 4
            consecutive input weights 2 are zero (hardware 2:4). Only Conv2D and Dense kernels.
        begin_step, end_step, frequency: when the masks are updated, in optimizer steps.
        skip: glob patterns of layers to leave dense (e.g. ``("predictions",)``).
        dense_edges: leave the first convolution and the classifier (`edge_layers`) dense unless a
            ``per_layer`` pattern names them.
        lower_dropout: lower the dropout in front of each pruned layer by Deep Compression's rule
            (`scale_dropout`, with each layer's target sparsity); not with ``m_by_n``.

    Returns:
        The wrapped model; fine-tune it with `finetune_pruned`, then `strip` it. `layer_targets` lists
        what it prunes.

    Raises:
        ValueError: a bad sparsity, schedule or pattern that matches nothing, nothing left to prune, or a
            model that is not functional.
    """
    model = functional(model, what="pruning")
    tfmot = _tfmot()
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1); received {sparsity!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown pruning schedule {schedule!r}; accepted: {', '.join(SCHEDULES)}")
    if not 0 <= begin_step < end_step or frequency < 1:
        raise ValueError(f"need 0 <= begin_step < end_step and frequency >= 1; received begin_step={begin_step}, "
                         f"end_step={end_step}, frequency={frequency}")
    if m_by_n is not None and (len(m_by_n) != 2 or not 0 < m_by_n[0] < m_by_n[1]):
        raise ValueError(f"m_by_n must be (m, n) with 0 < m < n, e.g. (2, 4); received {m_by_n!r}")
    targets = layer_targets(model, sparsity=sparsity, per_layer=per_layer, m_by_n=m_by_n, skip=skip,
                            dense_edges=dense_edges)
    copy = copy_model(model)

    def wrap(layer):
        if layer.name not in targets:
            return layer
        if m_by_n is not None:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, sparsity_m_by_n=tuple(m_by_n))
        return tfmot.sparsity.keras.prune_low_magnitude(
            layer, pruning_schedule=_schedule(schedule, targets[layer.name], begin_step=begin_step, end_step=end_step,
                                              frequency=frequency))

    wrapped = wrap_layers(copy, wrap)
    if lower_dropout and m_by_n is None:
        scale_dropout(wrapped, targets)
    return wrapped


def _kernel_layer(layer) -> bool:
    inner = getattr(layer, "layer", layer)  # through TFMOT's wrappers
    return hasattr(inner, "kernel") or hasattr(inner, "get_prunable_weights")


def scale_dropout(model: keras.Model, sparsity_of: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Lowers dropout in front of pruned layers by Deep Compression's rule, in place.

    Han et al. (2015, "Learning both Weights and Connections"): a pruned layer has fewer connections
    to drop, so retraining uses ``D_r = D_o * sqrt(C_r / C_o)``, the original dropout rate times the
    square root of the fraction of connections kept. Here each ``Dropout`` is matched with the first
    layer with a kernel that its output reaches (through activations, pooling, reshapes); with that
    layer's sparsity ``s`` the rate becomes ``rate * sqrt(1 - s)``. Call before the model is traced
    (before fine-tuning); the rate is kept by `strip` and by later clones.

    Args:
        model: a functional model, plain or wrapped for pruning.
        sparsity_of: final sparsity by layer name (layers not in it count as dense).

    Returns:
        ``{dropout layer name: (old rate, new rate)}`` for the layers changed.
    """
    changed = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Dropout):
            continue
        frontier, target = [layer], None
        while frontier and target is None:
            nxt = []
            for current in frontier:
                for node in current._outbound_nodes:
                    consumer = node.outbound_layer
                    if _kernel_layer(consumer):
                        target = target or consumer
                    else:
                        nxt.append(consumer)
            frontier = nxt
        kept = 1.0 - sparsity_of.get(target.name, 0.0) if target is not None else 1.0
        if kept < 1.0 and layer.rate > 0:
            old = layer.rate
            layer.rate = old * float(np.sqrt(kept))
            changed[layer.name] = (old, layer.rate)
    return changed


def finetune_pruned(model: keras.Model, train, *, recipe, out_dir: str | os.PathLike | None = None,
                    teacher: keras.Model | None = None, verbose="auto") -> keras.Model:
    """Fine-tunes a `prune`d model with the shared loop (masks updated every step); returns it wrapped."""
    return finetune_wrapped(model, train, recipe=recipe, out_dir=out_dir, teacher=teacher, verbose=verbose,
                            callbacks=[_tfmot().sparsity.keras.UpdatePruningStep()])


def strip(model: keras.Model) -> keras.Model:
    """Removes the pruning wrappers (the inverse of `prune`), keeping the pruned weights."""
    return _tfmot().sparsity.keras.strip_pruning(model)


def kernel_weights(layer) -> list:
    """The weights pruning zeroes: a layer's ``get_prunable_weights()`` (`zoo.layers.GroupedConv2D`), else
    those TFMOT's registry prunes in a stock layer (``kernel``; a separable convolution's
    ``pointwise_kernel``; none of a depthwise convolution's)."""
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    if hasattr(layer, "get_prunable_weights"):
        return list(layer.get_prunable_weights())
    if not prune_registry.PruneRegistry.supports(layer):
        return []
    names = prune_registry.PruneRegistry._weight_names(layer)
    return [w for w in layer.weights if w.name.split("/")[-1].split(":")[0] in names]


def sensitivity(model: keras.Model, images: np.ndarray, labels: np.ndarray, *,
                sparsities=(0.5, 0.8, 0.9, 0.95, 0.98), layers: tuple[str, ...] | None = None,
                batch_size: int = 256) -> dict[str, dict[float, float]]:
    """Each layer's pruning sensitivity: top-1 with that layer alone magnitude-pruned, no fine-tuning.

    Deep Compression (Han et al. 2015, fig. 5) sets per-layer sparsities from this curve: a layer
    whose accuracy holds at 95% can be pruned hard, one that falls at 50% gently. The model is
    restored afterwards.

    Args:
        model: a float functional model taking ``images`` (normalized), logits or probabilities out.
        images, labels: held-out data, a few thousand examples.
        sparsities: fractions of each kernel set to zero (smallest magnitudes first).
        layers: names to probe (default: `prunable_layers` with a kernel).
        batch_size: prediction batch.

    Returns:
        ``{layer: {sparsity: top-1}}``, plus ``{"(none)": {0.0: top-1}}`` for the intact model.

    Example:
        >>> curves = sensitivity(model, x_test[:2000], y_test[:2000])  # doctest: +SKIP
        >>> curves["fc6"][0.98] - curves["(none)"][0.0]  # top-1 change with fc6 98% pruned  # doctest: +SKIP
    """
    from export.tflite import predictions

    def top1() -> float:
        outputs = predictions(model, images, batch_size=batch_size)
        return float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(labels)))

    names = layers or tuple(n for n in prunable_layers(model) if kernel_weights(model.get_layer(n)))
    result = {"(none)": {0.0: top1()}}
    for name in names:
        kernels = kernel_weights(model.get_layer(name))
        if not kernels:
            raise ValueError(f"layer {name!r} has no kernel to prune")
        originals = [k.numpy() for k in kernels]
        curve = {}
        try:
            for s in sparsities:
                for kernel, original in zip(kernels, originals):
                    magnitude = np.abs(original)
                    kernel.assign(np.where(magnitude < np.quantile(magnitude, s), 0.0, original))
                curve[float(s)] = top1()
        finally:
            for kernel, original in zip(kernels, originals):
                kernel.assign(original)
        result[name] = curve
    return result


def sparsity(model: keras.Model) -> dict[str, float]:
    """Fraction of zeros in each layer's prunable kernels (`kernel_weights`), by layer name, plus ``"total"``."""
    zeros = total = 0
    result = {}
    for layer in model.layers:
        kernels = kernel_weights(layer)
        if not kernels:
            continue
        values = np.concatenate([np.ravel(k.numpy()) for k in kernels])
        result[layer.name] = float(np.mean(values == 0))
        zeros += int(np.sum(values == 0))
        total += values.size
    result["total"] = zeros / total if total else 0.0
    return result
