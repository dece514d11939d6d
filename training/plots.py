"""Figures of training: the optimizers' paths on a loss surface, confusion matrices, training curves.

matplotlib is an optional dependency (the ``dev`` extra): it is imported inside each function and
figures are drawn on a bare ``matplotlib.figure.Figure`` with an Agg canvas, so importing this module
never needs it, no display is needed, and the process-wide backend (a notebook's) is left alone.

    >>> from training.plots import optimizer_paths
    >>> optimizer_paths("/tmp/paths.png", steps=50, surface="saddle")  # doctest: +SKIP
    PosixPath('/tmp/paths.png')
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Callable, Mapping

import numpy as np

from zoo._checks import as_int
from zoo._files import write_png

__all__ = ["SURFACES", "confusion_matrix_png", "optimizer_paths", "training_curves_png"]


# == Optimizer paths on a 2-D loss surface ==========================================================


@dataclasses.dataclass(frozen=True)
class _Surface:
    """A 2-D loss ``f(x, y)`` written with operators that work on numpy arrays and tf tensors alike."""

    f: Callable
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    learning_rates: Mapping[str, float]  # tuned so each optimizer's character shows in ~100 steps
    description: str


SURFACES: Mapping[str, _Surface] = {
    # Condition number 20: SGD zigzags across the ravine and crawls along it; momentum builds up
    # speed along it; the adaptive methods rescale each coordinate and head diagonally at first.
    "ravine": _Surface(
        f=lambda x, y: 0.1 * x**2 + 2.0 * y**2,
        start=(-4.5, 1.5),
        xlim=(-5.0, 1.5),
        ylim=(-2.0, 2.0),
        minima=((0.0, 0.0),),
        learning_rates={"sgd": 0.45, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.5, "rmsprop": 0.1,
                        "adam": 0.2},
        description="0.1 x² + 2 y², an elongated quadratic",
    ),
    # A saddle at the origin between minima at (0, ±1); starting almost on the ridge, plain SGD
    # needs many steps to notice the tiny downhill gradient in y, the adaptive methods much fewer.
    "saddle": _Surface(
        f=lambda x, y: x**2 + 0.25 * y**4 - 0.5 * y**2,
        start=(-2.0, 1e-3),
        xlim=(-2.5, 1.0),
        ylim=(-1.3, 1.5),
        minima=((0.0, 1.0), (0.0, -1.0)),
        learning_rates={"sgd": 0.1, "momentum": 0.02, "nesterov": 0.02, "adagrad": 0.15, "rmsprop": 0.03,
                        "adam": 0.05},
        description="x² + y⁴/4 − y²/2, a saddle at the origin",
    ),
}

_LABELS = {"sgd": "SGD", "momentum": "SGD+Momentum", "nesterov": "Nesterov", "adagrad": "AdaGrad",
           "rmsprop": "RMSProp", "adam": "Adam"}
_COLORS = {"sgd": "tab:blue", "momentum": "tab:orange", "nesterov": "tab:green", "adagrad": "tab:red",
           "rmsprop": "tab:purple", "adam": "tab:brown"}


def _get_surface(surface: str) -> _Surface:
    if surface not in SURFACES:
        raise ValueError(f"unknown surface {surface!r}. Received surface={surface!r}. Accepted: {', '.join(SURFACES)}")
    return SURFACES[surface]


def _optimizer_trajectories(
    *,
    surface: str,
    steps: int,
    learning_rates: Mapping[str, float] | None = None,
    start: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Runs the six seed optimizers on ``surface``: ``{name: array of shape (steps + 1, 2)}``, start included."""
    import tensorflow as tf

    from training.optimizers import SEED_OPTIMIZERS, get_optimizer

    spec = _get_surface(surface)
    if as_int(steps, minimum=1) is None:
        raise ValueError(f"steps must be a positive int; received {steps!r}")
    steps = int(steps)
    unknown = sorted(set(learning_rates or {}) - set(SEED_OPTIMIZERS))
    if unknown:
        raise ValueError(
            f"learning_rates names unknown optimizer(s) {', '.join(unknown)}. Accepted: {', '.join(SEED_OPTIMIZERS)}"
        )
    rates = {**spec.learning_rates, **(learning_rates or {})}
    start = spec.start if start is None else tuple(float(s) for s in start)
    if len(start) != 2:
        raise ValueError(f"start must be a point (x, y); received {start!r}")

    paths = {}
    for name in SEED_OPTIMIZERS:
        point = tf.Variable(start, dtype=tf.float64)
        optimizer = get_optimizer(name, learning_rate=rates[name])

        @tf.function
        def step(point=point, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = spec.f(point[0], point[1])
            optimizer.apply_gradients([(tape.gradient(loss, point), point)])

        points = [point.numpy()]
        for _ in range(steps):
            step()
            points.append(point.numpy())
        paths[name] = np.array(points)
    return paths


def _figure(figsize: tuple[float, float], dpi: float = 100.0):
    """A bare Figure with an Agg canvas: no display needed, the process-wide backend left alone."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # matplotlib is in the dev extra
        raise ImportError(
            "training.plots needs matplotlib: pip install 'keras-zoo[dev]' (or pip install matplotlib)"
        ) from err
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def optimizer_paths(
    path: str | os.PathLike,
    *,
    steps: int = 100,
    surface: str = "ravine",
    learning_rates: Mapping[str, float] | None = None,
    start: tuple[float, float] | None = None,
) -> pathlib.Path:
    """Draws the paths of the seed's six optimizers on a 2-D loss surface, as a PNG.

    Each optimizer is the real class from `training.optimizers` applied to a ``tf.Variable`` of
    shape ``(2,)``, from the same start point, for ``steps`` steps, over the contour lines of the loss.

    Args:
        path: the PNG to write; its folder is created.
        steps: optimizer steps per path (each path has ``steps + 1`` points).
        surface: ``"ravine"`` (an elongated quadratic, condition number 20) or ``"saddle"`` (a saddle
            point between two minima), see ``SURFACES``.
        learning_rates: per-optimizer learning rates (``{"adam": 0.1}``) overriding the surface's
            defaults, which are tuned to show each optimizer's character.
        start: the start point; the surface's default if ``None``.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: an unknown surface or optimizer name, or a bad ``steps`` or ``start``.
        ImportError: matplotlib is not installed.

    Example:
        >>> optimizer_paths("paths.png", steps=50, surface="saddle")  # doctest: +SKIP
        PosixPath('paths.png')
    """
    spec = _get_surface(surface)
    paths = _optimizer_trajectories(surface=surface, steps=steps, learning_rates=learning_rates, start=start)
    rates = {**spec.learning_rates, **(learning_rates or {})}
    xs = np.linspace(*spec.xlim, 300)
    ys = np.linspace(*spec.ylim, 300)
    grid_x, grid_y = np.meshgrid(xs, ys)
    loss = spec.f(grid_x, grid_y)
    # Log-spaced levels above the lowest value: contours stay visible near the minima.
    floor = loss.min()
    levels = floor + np.geomspace(1e-3, loss.max() - floor, 25)

    fig = _figure((10.5, 6), dpi=120)
    ax = fig.add_subplot()
    ax.contourf(grid_x, grid_y, loss, levels=levels, cmap="Greys", alpha=0.35)
    ax.contour(grid_x, grid_y, loss, levels=levels, colors="grey", linewidths=0.5, alpha=0.7, linestyles="solid")
    for name, points in paths.items():
        final = float(spec.f(*points[-1]))
        ax.plot(points[:, 0], points[:, 1], "-", color=_COLORS[name], linewidth=1.6, alpha=0.9,
                label=f"{_LABELS[name]} (lr={rates[name]:g}): f={final:.3g}")
        ax.plot(points[:, 0], points[:, 1], ".", color=_COLORS[name], markersize=3)
        ax.plot(*points[-1], "o", color=_COLORS[name], markersize=6, markeredgecolor="black")
    ax.plot(*next(iter(paths.values()))[0], "k^", markersize=9, label="start")
    for minimum in spec.minima:
        ax.plot(*minimum, "k*", markersize=12)
    ax.set_xlim(*spec.xlim)
    ax.set_ylim(*spec.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    stars = "★ the minimum" if len(spec.minima) == 1 else "★ the minima"
    ax.set_title(f"The seed's optimizers, {steps} steps on {spec.description} ({stars})", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="final loss f")
    fig.tight_layout()

    out = pathlib.Path(path)
    write_png(out, fig)
    return out


# -- evaluation plots: confusion matrix and training curves ------------------------------------------
# Drawn on a bare ``matplotlib.figure.Figure`` with an Agg canvas rather than through pyplot: no
# display is needed, and the process-wide backend (a notebook's inline one, say) is left alone.


def _save_png(fig, path) -> "pathlib.Path":
    import pathlib

    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png; received {str(path)!r}")
    write_png(path, fig, dpi=120, bbox_inches="tight")
    return path


def confusion_matrix_png(
    result_or_matrix,
    path,
    *,
    class_names=None,
    normalize: bool = True,
    title: str | None = None,
):
    """Draws a confusion matrix (rows the true class, columns the predicted one) as a PNG.

    Args:
        result_or_matrix: a `training.evaluation.EvalResult`, its ``to_dict()``, or a square array of
            counts ``[true, pred]``.
        path: where to write the ``.png``; parent directories are created.
        class_names: tick labels; default the result's class names, or the class indices.
        normalize: color and label each row by the fraction of that true class (its recall
            on the diagonal); ``False`` shows raw counts.
        title: the figure title; default ``"Confusion matrix"`` with the accuracy when known.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: if the matrix is not square, ``class_names`` has the wrong length, or ``path`` is
            not a ``.png``.

    Example:
        >>> result = training.evaluate(model, test_ds, class_names=class_names)  # doctest: +SKIP
        >>> confusion_matrix_png(result, "out/confusion.png")  # doctest: +SKIP
        PosixPath('out/confusion.png')
    """
    import numpy as np

    accuracy = None
    if hasattr(result_or_matrix, "confusion_matrix"):
        matrix, accuracy = result_or_matrix.confusion_matrix, result_or_matrix.accuracy
        class_names = result_or_matrix.class_names if class_names is None else class_names
    elif isinstance(result_or_matrix, dict):
        matrix, accuracy = result_or_matrix["confusion_matrix"], result_or_matrix.get("accuracy")
        class_names = result_or_matrix.get("class_names") if class_names is None else class_names
    else:
        matrix = result_or_matrix
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"the confusion matrix must be square [true, pred]; received shape {counts.shape}")
    n = counts.shape[0]
    names = [str(i) for i in range(n)] if class_names is None else [str(c) for c in class_names]
    if len(names) != n:
        raise ValueError(f"class_names has {len(names)} names for a {n}x{n} confusion matrix; received {names!r}")
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    else:
        values = counts.astype(float)
    if accuracy is None and counts.sum() > 0:
        accuracy = float(np.trace(counts) / counts.sum())

    side = min(max(5.0, 0.55 * n + 2.5), 16.0)
    fig = _figure((side + 1.0, side))
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label("fraction of the true class" if normalize else "examples")
    if n <= 30:  # beyond that the numbers are unreadable; the colors still show the pattern
        fontsize = 9 if n <= 12 else 7
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
                if normalize and counts[i, j] == 0:
                    text = "0" if totals[i, 0] else "–"  # an exact zero, or a class with no examples
                color = "white" if values[i, j] > 0.6 * vmax else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=fontsize)
    if n <= 60:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        if max(len(name) for name in names) > 3:
            ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor")
        else:
            ax.set_xticklabels(names)
        ax.set_yticklabels(names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    if title is None:
        title = "Confusion matrix" + (f" (accuracy {accuracy:.1%})" if accuracy is not None else "")
        title += ", rows normalized" if normalize else ""
    ax.set_title(title)
    return _save_png(fig, path)


_TRAIN_ACCURACY_KEYS = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy")


def _read_history(history_or_csv_path) -> dict[str, list[float]]:
    """A ``History.history``-like dict of per-epoch lists, from a History, a dict or a CSVLogger file."""
    import csv
    import math
    import os

    if hasattr(history_or_csv_path, "history") and isinstance(history_or_csv_path.history, dict):
        history_or_csv_path = history_or_csv_path.history
    if isinstance(history_or_csv_path, dict):
        return {str(k): [float(v) for v in vals] for k, vals in history_or_csv_path.items()}
    if not isinstance(history_or_csv_path, (str, os.PathLike)):
        raise TypeError(
            "expected a keras History, its .history dict, or the path of a CSVLogger file; received "
            f"{type(history_or_csv_path).__name__}"
        )
    with open(history_or_csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if "epoch" in (rows[0] if rows else {}):
        # A resumed run appends to its log and may repeat epochs: the last row of each epoch wins.
        by_epoch = {int(float(r["epoch"])): r for r in rows}
        rows = [by_epoch[e] for e in sorted(by_epoch)]
        epochs = sorted(by_epoch)
    else:
        epochs = list(range(len(rows)))

    def number(text):
        try:
            return float(text)
        except (TypeError, ValueError):
            return math.nan

    history = {k: [number(r.get(k)) for r in rows] for k in (rows[0] if rows else {}) if k != "epoch"}
    history["epoch"] = [float(e) for e in epochs]
    return history


def training_curves_png(history_or_csv_path, path):
    """Draws loss and accuracy per epoch, training against validation, as a PNG.

    Args:
        history_or_csv_path: a ``keras.callbacks.History`` (what ``fit`` returns), its ``.history``
            dict, or the path of a ``keras.callbacks.CSVLogger`` file. Keys ``loss``/``val_loss`` are
            required; accuracy is drawn from ``accuracy`` (or ``acc``, ``sparse_categorical_accuracy``)
            and its ``val_`` twin when present.
        path: where to write the ``.png``; parent directories are created.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        ValueError: if there is no ``loss`` or no epoch, or ``path`` is not a ``.png``.

    Example:
        >>> history = model.fit(train_ds, validation_data=val_ds, epochs=10)  # doctest: +SKIP
        >>> training_curves_png(history, "out/curves.png")  # doctest: +SKIP
        PosixPath('out/curves.png')
        >>> training_curves_png("out/log.csv", "out/curves.png")  # from a CSVLogger file  # doctest: +SKIP
        PosixPath('out/curves.png')
    """
    import math

    history = _read_history(history_or_csv_path)
    if "loss" not in history or not history["loss"]:
        raise ValueError(
            f"the history has no per-epoch 'loss'; received keys {sorted(history)!r} "
            f"with {len(history.get('loss', []))} epochs"
        )
    count = len(history["loss"])
    epochs = [e + 1 for e in history.get("epoch", range(count))]  # Keras counts epochs from 0
    accuracy_key = next((k for k in _TRAIN_ACCURACY_KEYS if k in history), None)
    if accuracy_key is None:
        accuracy_key = next((k for k in sorted(history) if k.endswith("accuracy") and not k.startswith("val_")), None)
    panels = [("loss", "Loss")] + ([(accuracy_key, "Accuracy")] if accuracy_key else [])

    fig = _figure((5.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    marker = "o" if count <= 30 else None
    for ax, (key, label) in zip(axes, panels):
        ax.plot(epochs, history[key], marker=marker, markersize=3, label="train")
        val = history.get(f"val_{key}")
        if val and any(not math.isnan(v) for v in val):
            finite = [(v, e) for e, v in zip(epochs, val) if not math.isnan(v)]
            pick = min if key == "loss" else max
            best_value, best_epoch = pick(finite, key=lambda ve: ve[0])  # the first epoch on a tie
            shown = f"{best_value:.4f}" if key == "loss" else f"{best_value:.1%}"
            ax.plot(epochs, val, marker=marker, markersize=3, linestyle="--",
                    label=f"validation (best {shown}, epoch {best_epoch:g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label.lower())
        ax.set_title(label)
        ax.grid(True, alpha=0.3)
        if count <= 15:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
    fig.tight_layout()
    return _save_png(fig, path)
