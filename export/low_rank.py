"""Low-rank approximation: truncated SVD of Dense kernels and of convolutions.

A Dense kernel ``W`` (``m x n``) becomes ``U_r sqrt(S_r)`` then ``sqrt(S_r) V_r^T``: two Dense layers
of ``r (m + n)`` weights instead of ``m n``. A 1x1 convolution factors the same way into two 1x1
convolutions. A ``k_h x k_w`` convolution is factored into a spatially separable pair, ``k_h x 1``
(``c_in -> r``) then ``1 x k_w`` (``r -> c_out``), from the SVD of the kernel arranged as a
``(k_h c_in) x (k_w c_out)`` matrix (Jaderberg et al. 2014, scheme 2). A layer is factored only where
that saves weights.

The factored layer keeps its name (and its bias and activation, on the second factor); the first
factor is ``<name>_lowrank``. So everything downstream, including weight loading by name, is unchanged.

Order of operations: `low_rank` (choose ranks by ``rank`` or by ``energy``) → fine-tune with the shared
loop (`training.fit`; the factored model is a plain functional model) → `export.tflite.convert`.

    >>> small, report = low_rank(model, energy=0.9, layers=("fc*",))  # doctest: +SKIP
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import fnmatch

import numpy as np
import tf_keras as keras

from export._finetune import functional

__all__ = ["Factorization", "low_rank"]


@dataclasses.dataclass(frozen=True)
class Factorization:
    """One factored layer: its rank, weights before and after, and the energy its SVD keeps."""

    layer: str
    kind: str  # "dense", "conv1x1" or "separable"
    rank: int
    full_rank: int
    params_before: int
    params_after: int
    energy: float


def _factorable(layer) -> str | None:
    if type(layer) is keras.layers.Dense:
        return "dense"
    if type(layer) is keras.layers.Conv2D and layer.groups == 1 and tuple(layer.dilation_rate) == (1, 1):
        if layer.data_format != "channels_last":
            return None
        return "conv1x1" if tuple(layer.kernel_size) == (1, 1) else "separable"
    return None


def _matrix(kind: str, kernel: np.ndarray) -> np.ndarray:
    if kind == "dense":
        return kernel
    kh, kw, cin, cout = kernel.shape
    if kind == "conv1x1":
        return kernel.reshape(cin, cout)
    return kernel.transpose(0, 2, 1, 3).reshape(kh * cin, kw * cout)  # (kh, cin) x (kw, cout)


def _choose_rank(s: np.ndarray, *, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        return min(rank, len(s))
    kept = np.cumsum(s ** 2) / np.sum(s ** 2)
    return int(np.searchsorted(kept, energy - 1e-12) + 1)


def low_rank(
    model: keras.Model,
    *,
    rank: int | None = None,
    energy: float | None = None,
    layers: tuple[str, ...] = ("*",),
) -> tuple[keras.Model, list[Factorization]]:
    """Replaces Dense and Conv2D layers of a functional model by truncated-SVD factor pairs.

    Args:
        model: a functional (or Sequential) ``tf_keras`` model.
        rank: the rank of every factorization, or
        energy: the fraction of the squared singular values to keep (e.g. 0.9), per layer.
        layers: glob patterns of the layers to consider (ungrouped, undilated ``Conv2D`` and ``Dense``).

    Returns:
        The new model (weights set from the SVD, everything else copied) and one `Factorization` per
        factored layer. Layers where the factors would not be smaller are left as they are.

    Raises:
        ValueError: both or neither of ``rank`` and ``energy``, out-of-range values, patterns matching
            no factorable layer, or a model that is not functional.

    Example:
        >>> small, report = low_rank(zoo.create_model("alexnet_2012", input_shape=(28, 28, 1)), rank=64, layers=("fc6", "fc7"))  # doctest: +SKIP
    """
    model = functional(model, what="low_rank")
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank and energy; received rank={rank!r}, energy={energy!r}")
    if rank is not None and (not isinstance(rank, int) or rank < 1):
        raise ValueError(f"rank must be a positive int; received {rank!r}")
    if energy is not None and not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1]; received {energy!r}")
    candidates = [layer for layer in model.layers if _factorable(layer)]
    for pattern in layers:
        if not any(fnmatch.fnmatchcase(layer.name, pattern) for layer in candidates):
            raise ValueError(f"pattern {pattern!r} matches no Dense or Conv2D layer of {model.name!r}; candidates: "
                             f"{', '.join(l.name for l in candidates[:12])}{' ...' if len(candidates) > 12 else ''}")
    config = copy_module.deepcopy(model.get_config())
    weights: dict[str, list[np.ndarray]] = {}
    report: list[Factorization] = []
    new_layers = []
    for entry in config["layers"]:
        layer = model.get_layer(entry["name"])
        kind = _factorable(layer)
        if not kind or not any(fnmatch.fnmatchcase(layer.name, p) for p in layers):
            new_layers.append(entry)
            continue
        kernel = layer.kernel.numpy()
        u, s, vt = np.linalg.svd(_matrix(kind, kernel), full_matrices=False)
        r = _choose_rank(s, rank=rank, energy=energy)
        m, n = u.shape[0], vt.shape[1]
        if r * (m + n) >= m * n:
            new_layers.append(entry)
            continue
        root = np.sqrt(s[:r])
        first, second = u[:, :r] * root, root[:, None] * vt[:r]
        name = layer.name
        inner = copy_module.deepcopy(entry)
        inner["name"] = inner["config"]["name"] = f"{name}_lowrank"
        inner["config"].update(use_bias=False, activation="linear", kernel_regularizer=None,
                               bias_regularizer=None, activity_regularizer=None)
        outer = entry
        outer["inbound_nodes"] = [[[inner["name"], 0, 0, {}]]]
        for part in (inner, outer):  # built again from the new inputs, not from the old input shape
            part.pop("build_config", None)
        if kind == "dense":
            inner["config"]["units"] = r
            w_first, w_second = first, second
        else:
            kh, kw, cin, cout = kernel.shape
            strides = tuple(layer.strides)
            inner["config"]["filters"] = r
            if kind == "conv1x1":
                w_first, w_second = first.reshape(1, 1, cin, r), second.reshape(1, 1, r, cout)
            else:
                inner["config"].update(kernel_size=(kh, 1), strides=(strides[0], 1))
                outer["config"].update(kernel_size=(1, kw), strides=(1, strides[1]))
                # first: (kh cin) x r -> (kh, 1, cin, r); second: r x (kw cout) -> (1, kw, r, cout)
                w_first = first.reshape(kh, cin, r)[:, None, :, :]
                w_second = second.reshape(r, kw, cout).transpose(1, 0, 2)[None, :, :, :]
        weights[inner["name"]] = [w_first.astype(np.float32)]
        weights[name] = [w_second.astype(np.float32), *([layer.bias.numpy()] if layer.use_bias else [])]
        new_layers.extend([inner, outer])
        report.append(Factorization(layer=name, kind=kind, rank=r, full_rank=len(s), params_before=int(kernel.size),
                                    params_after=int(w_first.size + w_second.size),
                                    energy=float(np.sum(s[:r] ** 2) / np.sum(s ** 2))))
    config["layers"] = new_layers
    custom = {type(l).__name__: type(l) for l in model.layers}
    new = keras.Model.from_config(config, custom_objects=custom)
    for layer in new.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])
        elif layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return new, report
