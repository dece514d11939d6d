"""Weight sharing (clustering) with TFMOT: each kernel keeps only ``k`` distinct values.

Order of operations: (optionally `export.prune` first) → `cluster` → fine-tune (`finetune_clustered`,
centroids trained) → `strip` → `export.quantize` (cluster-preserving QAT) or `export.tflite.convert`.
With ``preserve_sparsity=True`` the zeros of a pruned model stay zero (sparsity-preserving clustering).

    >>> clustered = cluster(model, clusters=16, init="kmeans++")  # doctest: +SKIP
    >>> model = strip(finetune_clustered(clustered, "fashion_mnist", recipe=recipe))  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import os

import numpy as np
import tf_keras as keras

from export._finetune import finetune_wrapped, functional, wrap_layers
from zoo._keras import copy_model

__all__ = ["INITS", "cluster", "clusterable_layers", "distinct_values", "finetune_clustered", "strip"]

# Our names for TFMOT's CentroidInitialization members.
INITS = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR", "density": "DENSITY_BASED", "random": "RANDOM"}


def _tfmot():
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer

    from zoo.layers import GroupedConv2D

    # GroupedConv2D names its clusterable weights; TFMOT asks for an isinstance of ClusterableLayer.
    clusterable_layer.ClusterableLayer.register(GroupedConv2D)
    return tfmot


def clusterable_layers(model: keras.Model) -> list[str]:
    """Names of the layers `cluster` would cluster, in model order."""
    _tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import clusterable_layer, clustering_registry

    names = []
    for layer in model.layers:
        if isinstance(layer, clusterable_layer.ClusterableLayer):
            names.append(layer.name)
        elif clustering_registry.ClusteringRegistry.supports(layer) and any(
                w.name.split("/")[-1].startswith("kernel") for w in layer.weights):
            names.append(layer.name)
    return names


def check_clusters(model: keras.Model, clusters: int, *, layers=None) -> None:
    """Raises a ValueError when a kernel of ``layers`` (default: every clusterable layer) has fewer weights
    than ``clusters`` (TFMOT's k-means++ failed on it with an InvalidArgumentError, after any earlier stage)."""
    sizes = {}
    for name in clusterable_layers(model) if layers is None else layers:
        kernels = [w for w in model.get_layer(name).weights if w.name.split("/")[-1].startswith("kernel")]
        if kernels:
            sizes[name] = min(int(np.prod(w.shape)) for w in kernels)
    small = sorted((size, name) for name, size in sizes.items() if size < clusters)
    if small:
        size, name = small[0]
        raise ValueError(f"clusters={clusters} exceeds the {size} weights of the kernel of {name!r}. Accepted: 2 to "
                         f"{size} clusters for {model.name!r}, or leave that layer out (cluster's skip)")


def cluster(
    model: keras.Model,
    *,
    clusters: int = 16,
    init: str = "kmeans++",
    preserve_sparsity: bool = False,
    skip: tuple[str, ...] = (),
) -> keras.Model:
    """Wraps the clusterable layers of a functional model so each kernel takes ``clusters`` values.

    Args:
        model: a functional (or Sequential) ``tf_keras`` model (a stripped pruned model for sparsity
            preservation).
        clusters: distinct values per kernel (16 is 4 bits per weight).
        init: centroid initialization: ``"kmeans++"``, ``"linear"``, ``"density"`` or ``"random"``.
        preserve_sparsity: keep zero weights at zero (sparsity-preserving clustering).
        skip: glob patterns of layers to leave alone.

    Returns:
        The wrapped model; fine-tune it with `finetune_clustered`, then `strip` it.

    Raises:
        ValueError: a bad ``clusters`` or ``init``, a pattern that matches nothing, nothing left to cluster,
            or a model that is not functional.
    """
    model = functional(model, what="clustering")
    tfmot = _tfmot()
    if not isinstance(clusters, int) or clusters < 2:
        raise ValueError(f"clusters must be an int >= 2; received {clusters!r}")
    if init not in INITS:
        raise ValueError(f"unknown centroid initialization {init!r}; accepted: {', '.join(INITS)}")
    candidates = clusterable_layers(model)
    for pattern in skip:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in candidates):
            raise ValueError(f"pattern {pattern!r} matches no clusterable layer of {model.name!r}; clusterable: "
                             f"{', '.join(candidates[:12])}{' ...' if len(candidates) > 12 else ''}")
    chosen = {n for n in candidates if not any(fnmatch.fnmatchcase(n, p) for p in skip)}
    if not chosen:
        raise ValueError(f"nothing to cluster in {model.name!r}: clusterable layers: "
                         f"{', '.join(candidates) or 'none'}; received skip={skip}")
    check_clusters(model, clusters, layers=chosen)
    centroid_init = getattr(tfmot.clustering.keras.CentroidInitialization, INITS[init])
    copy = copy_model(model)

    def wrap(layer):
        if layer.name not in chosen:
            return layer
        return tfmot.clustering.keras.cluster_weights(
            layer, number_of_clusters=clusters, cluster_centroids_init=centroid_init,
            preserve_sparsity=preserve_sparsity)

    return wrap_layers(copy, wrap)


def finetune_clustered(model: keras.Model, train, *, recipe, out_dir: str | os.PathLike | None = None,
                       teacher: keras.Model | None = None, verbose="auto") -> keras.Model:
    """Fine-tunes a `cluster`ed model with the shared loop (the centroids train); returns it wrapped."""
    return finetune_wrapped(model, train, recipe=recipe, out_dir=out_dir, teacher=teacher, verbose=verbose)


def strip(model: keras.Model) -> keras.Model:
    """Removes the clustering wrappers (the inverse of `cluster`), keeping the shared values."""
    return _tfmot().clustering.keras.strip_clustering(model)


def distinct_values(model: keras.Model) -> dict[str, int]:
    """Distinct values in each kernel, by layer name (a clustered kernel has at most ``clusters``)."""
    result = {}
    for layer in model.layers:
        for w in layer.weights:
            if w.name.split("/")[-1].split(":")[0] in ("kernel", "depthwise_kernel"):
                result[layer.name] = int(np.unique(w.numpy()).size)
    return result
