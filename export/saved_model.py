"""SavedModel export with a serving signature that takes raw images.

The exported SavedModel has two signatures, both ``images -> {"probabilities", "class_ids"}``:

- ``serving_default``: ``uint8`` images ``[N, H, W, C]``, raw pixels;
- ``serving_float``: ``float32`` images in the same ``[0, 255]`` range.

Normalization (``(x * scale - mean) / std``) runs inside the graph, so a server or a user passes the
image as it is. Alongside ``saved_model.pb`` the directory holds ``zoo_export.json`` (class names,
normalization, source weights and their sha256, the Keras model's name); the loaded object exposes
the class names as ``obj.class_names`` too.

    >>> export_saved_model(model, "out/resnet20", mean=(0.286,), std=(0.353,), class_names=names)  # doctest: +SKIP
    >>> served = tf.saved_model.load("out/resnet20")  # doctest: +SKIP
    >>> served.signatures["serving_default"](images=tf.constant(uint8_images))["class_ids"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from export.tflite import image_input_shape, normalization

__all__ = ["METADATA_FILE", "export_saved_model", "read_metadata", "replace_dir"]

METADATA_FILE = "zoo_export.json"


def replace_dir(build: str, target: Path) -> None:
    """Moves the finished directory ``build`` to ``target``, replacing what is there, without a moment
    where ``target`` holds a partial export."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent)
        os.rmdir(old)
        os.replace(target, old)
    os.replace(build, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


class _Serving(tf.Module):
    def __init__(self, model: keras.Model, *, mean, std, scale: float, class_names: Sequence[str]):
        from zoo._keras import outputs_logits

        super().__init__()
        self.model = model
        self.logits = outputs_logits(model)  # False when it ends in a softmax: its outputs are served as they are
        self.mean = tf.constant(np.asarray(mean, np.float32))
        self.std = tf.constant(np.asarray(std, np.float32))
        self.scale = tf.constant(np.float32(scale))
        self.class_names = tf.Variable(list(class_names), dtype=tf.string, trainable=False, name="class_names")

    def _serve(self, images):
        x = (tf.cast(images, tf.float32) * self.scale - self.mean) / self.std
        outputs = self.model(x, training=False)
        if isinstance(outputs, (list, tuple)):  # auxiliary heads: serve the main one
            outputs = outputs[0]
        outputs = tf.cast(outputs, tf.float32)  # a mixed-precision model's float16
        return {"probabilities": tf.nn.softmax(outputs, axis=-1) if self.logits else outputs,
                "class_ids": tf.argmax(outputs, axis=-1, output_type=tf.int64)}


def export_saved_model(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float = 1 / 255,
    class_names: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``model`` (normalized input in) as a SavedModel serving raw images.

    Args:
        model: a Keras classifier returning logits, or probabilities when it ends in a softmax (built with
            ``classifier_activation="softmax"``, `training.evaluation.outputs_logits`), which are served as
            they are; the first output is served when there are several.
        path: the SavedModel directory; replaced atomically if it exists.
        mean, std, scale: the model's input normalization, ``(x * scale - mean) / std``.
        class_names: one name per class (default ``"0"``, ``"1"``, ...).
        metadata: more JSON-able facts for ``zoo_export.json`` (e.g. ``{"weights": "resnet20.fashion_mnist",
            "sha256": ...}``).

    Returns:
        The directory written.

    Raises:
        ValueError: normalization or class names that do not fit the model, or a subclassed model neither
            built nor called (its input shape is unknown).

    Example:
        >>> export_saved_model(model, "out/sm", mean=(0.5,), std=(0.25,))  # doctest: +SKIP
    """
    shape = image_input_shape(model, what="export_saved_model")
    try:
        output_shape = model.output_shape
    except AttributeError:  # a subclassed model: its output, once, on zeros
        output_shape = [tuple(y.shape) for y in tf.nest.flatten(model(tf.zeros([1, *(d or 32 for d in shape)])))]
    num_classes = int((output_shape[0] if isinstance(output_shape, list) else output_shape)[-1])
    normalization(mean, std, channels=shape[-1], scale=scale)  # one value per channel, std > 0, scale > 0
    class_names = [str(i) for i in range(num_classes)] if class_names is None else [str(n) for n in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names must have one entry per class ({num_classes}); received {len(class_names)}")
    module = _Serving(model, mean=mean, std=std, scale=scale, class_names=class_names)
    signatures = {
        "serving_default": tf.function(module._serve).get_concrete_function(
            tf.TensorSpec([None, *shape], tf.uint8, name="images")),
        "serving_float": tf.function(module._serve).get_concrete_function(
            tf.TensorSpec([None, *shape], tf.float32, name="images")),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    build = tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        tf.saved_model.save(module, build, signatures=signatures)
        about = {
            "format_version": 1,
            "model": model.name,
            "input": {"shape": list(shape), "dtype": ["uint8 (serving_default)", "float32 (serving_float)"],
                      "mean": [float(m) for m in mean], "std": [float(s) for s in std], "scale": float(scale),
                      "normalization": "(x * scale - mean) / std, inside the graph"},
            "outputs": {"probabilities": f"float32 [N, {num_classes}]", "class_ids": "int64 [N]"},
            "class_names": class_names,
            **dict(metadata or {}),
        }
        Path(build, METADATA_FILE).write_text(json.dumps(about, indent=1) + "\n")
        replace_dir(build, path)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``zoo_export.json`` of an exported SavedModel."""
    file = Path(path, METADATA_FILE)
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a zoo SavedModel export: no {METADATA_FILE}")
    return json.loads(file.read_text())
