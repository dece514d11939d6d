"""Evaluation: top-1/top-5 accuracy, loss, per-class accuracy and the confusion matrix of a classifier.

    >>> import zoo
    >>> from training.evaluation import evaluate
    >>> model = zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10)
    >>> result = evaluate(model, test_ds, class_names=class_names)  # doctest: +SKIP
    >>> result.confusion_matrix.shape  # rows: true class, columns: predicted  # doctest: +SKIP
    (10, 10)

``test_ds`` is any batched ``tf.data.Dataset`` of ``(images, labels)``, e.g. from
``training.load_dataset``.

The result is a frozen `EvalResult`; ``to_dict()`` is what the weights' metadata stores and
``training.plots.confusion_matrix_png`` draws it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from zoo._keras import outputs_logits  # noqa: F401  (re-exported: training.evaluation.outputs_logits)

__all__ = [
    "EvalResult",
    "check_array_labels",
    "check_array_pixels",
    "check_data",
    "check_images_fit",
    "check_not_raw_pixels",
    "evaluate",
    "one_hot_labels",
    "outputs_logits",
]


@dataclasses.dataclass(frozen=True, eq=False)
class EvalResult:
    """A classifier's metrics over one dataset.

    Attributes:
        accuracy: top-1 accuracy in [0, 1].
        top5_accuracy: top-5 accuracy, or ``None`` when the model has fewer than 5 classes.
        loss: mean sparse categorical cross-entropy (natural log) per example.
        per_class_accuracy: for each true class, the fraction of its examples predicted correctly
            (its recall); ``nan`` for a class with no examples in the dataset.
        confusion_matrix: ``int64`` array ``[num_classes, num_classes]`` of counts, rows the true
            class and columns the predicted class. Read-only.
        num_examples: how many examples were evaluated.
        class_names: one name per class; ``("0", "1", ...)`` when none were given.

    Example:
        >>> r = EvalResult.from_dict(result.to_dict())  # round-trips through JSON-friendly data  # doctest: +SKIP
    """

    accuracy: float
    top5_accuracy: float | None
    loss: float
    per_class_accuracy: tuple[float, ...]
    confusion_matrix: np.ndarray
    num_examples: int
    class_names: tuple[str, ...]

    def __post_init__(self):
        matrix = np.array(self.confusion_matrix, dtype=np.int64)  # a private copy, then frozen
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"confusion_matrix must be square [true, pred]; received shape {matrix.shape}")
        matrix.setflags(write=False)
        object.__setattr__(self, "confusion_matrix", matrix)
        object.__setattr__(self, "per_class_accuracy", tuple(float(a) for a in self.per_class_accuracy))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        n = matrix.shape[0]
        if len(self.class_names) != n or len(self.per_class_accuracy) != n:
            raise ValueError(
                f"class_names ({len(self.class_names)}) and per_class_accuracy ({len(self.per_class_accuracy)}) "
                f"must have one entry per class of the {n}x{n} confusion matrix"
            )

    @property
    def num_classes(self) -> int:
        return int(self.confusion_matrix.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, floats and ints (``nan`` becomes ``None``), ready for ``json.dumps``."""

        def clean(x: float | None) -> float | None:
            return None if x is None or math.isnan(x) else float(x)

        return {
            "accuracy": clean(self.accuracy),
            "top5_accuracy": clean(self.top5_accuracy),
            "loss": clean(self.loss),
            "num_examples": int(self.num_examples),
            "class_names": list(self.class_names),
            "per_class_accuracy": [clean(a) for a in self.per_class_accuracy],
            "confusion_matrix": self.confusion_matrix.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvalResult":
        """The inverse of `to_dict`."""

        def unclean(x: float | None) -> float:
            return math.nan if x is None else float(x)

        return cls(
            accuracy=unclean(data["accuracy"]),
            top5_accuracy=None if data.get("top5_accuracy") is None else float(data["top5_accuracy"]),
            loss=unclean(data["loss"]),
            per_class_accuracy=tuple(unclean(a) for a in data["per_class_accuracy"]),
            confusion_matrix=np.asarray(data["confusion_matrix"], dtype=np.int64),
            num_examples=int(data["num_examples"]),
            class_names=tuple(data["class_names"]),
        )

    def summary(self) -> str:
        """One line for logs and the CLI: ``accuracy 91.20%  top-5 99.70%  loss 0.2513  (10000 examples)``."""
        top5 = f"  top-5 {self.top5_accuracy:.2%}" if self.top5_accuracy is not None else ""
        return f"accuracy {self.accuracy:.2%}{top5}  loss {self.loss:.4f}  ({self.num_examples} examples)"


def evaluate(
    model: keras.Model,
    dataset: tf.data.Dataset | tuple,
    *,
    class_names: Sequence[str] | None = None,
    from_logits: bool | None = None,
    batch_size: int = 256,
) -> EvalResult:
    """Runs a classifier over a batched dataset and returns its metrics.

    The model runs in inference mode (``training=False``) inside one compiled ``tf.function``;
    a model with several outputs (GoogLeNet's training-only auxiliary heads) is judged on its
    first, primary output.

    Args:
        model: a classifier ``tf_keras.Model`` whose (first) output is ``[batch, num_classes]``.
        dataset: a *batched* ``tf.data.Dataset`` of ``(images, labels)``, or a tuple ``(images, labels)``
            of arrays (batched by `training.data.from_arrays`); labels are integer class indices of shape
            ``[batch]`` (or ``[batch, 1]``), or one-hot / smoothed targets of shape ``[batch, num_classes]``
            (their argmax is the class).
        class_names: one name per class, in class-index order; defaults to ``"0"``, ``"1"``, ...
        from_logits: whether the output is logits (for the loss). ``None`` detects it from the output
            layer's activation (see `outputs_logits`): the zoo's default is logits,
            ``classifier_activation="softmax"`` gives probabilities.
        batch_size: examples per batch when ``dataset`` is arrays.

    Returns:
        An `EvalResult`.

    Raises:
        ValueError: if the dataset is empty, unbatched or not ``(images, labels)`` pairs, if a label
            is outside ``[0, num_classes)``, or if ``class_names`` has the wrong length.

    Example:
        >>> import zoo
        >>> model, meta = zoo.create_model("resnet20", weights="fashion_mnist"), zoo.get_weights_info("resnet20")
        >>> images, labels = zoo.sample_images("fashion_mnist")  # arrays, or a batched tf.data.Dataset
        >>> result = evaluate(model, (meta.input.normalize(images), labels), class_names=meta.head.class_names)
        >>> print(result.summary())
        accuracy 91.00%  top-5 100.00%  loss 0.2721  (100 examples)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a tf_keras.Model; received {type(model).__name__}")
    from training.data import from_arrays, is_array_pair

    if is_array_pair(dataset):
        check_array_pixels(model, dataset[0], what="the dataset")
        dataset = from_arrays(*dataset, batch_size=batch_size)
    _check_element_spec(dataset, model)
    output_shape = _output_shape(model, dataset)
    if len(output_shape) != 2 or output_shape[-1] is None:
        raise ValueError(
            f"evaluate needs a classifier whose output is [batch, num_classes]; received output shape "
            f"{output_shape}. Models built with include_top=False have no classifier."
        )
    num_classes = int(output_shape[-1])
    if class_names is None:
        names = tuple(str(i) for i in range(num_classes))
    else:
        names = tuple(str(n) for n in class_names)
        if len(names) != num_classes:
            raise ValueError(
                f"class_names has {len(names)} names but the model has {num_classes} classes; "
                f"received class_names={list(names)!r}"
            )
    if from_logits is None:
        from_logits = outputs_logits(model)

    @tf.function(reduce_retracing=True)
    def predict_step(images, labels):
        outputs = model(images, training=False)
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[0]
        elif isinstance(outputs, dict):
            outputs = next(iter(outputs.values()))
        outputs = tf.cast(outputs, tf.float32)  # mixed-precision models output float16
        if labels.shape.rank == 2 and labels.shape[-1] == num_classes and num_classes > 1:
            labels = tf.argmax(labels, axis=-1)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
        # Clipped so that a bad label reaches the readable check below instead of failing in the op.
        safe = tf.clip_by_value(labels, 0, num_classes - 1)
        loss = keras.losses.sparse_categorical_crossentropy(safe, outputs, from_logits=from_logits)
        top5 = tf.math.in_top_k(safe, outputs, k=min(5, num_classes))
        return labels, tf.argmax(outputs, axis=-1), tf.reduce_sum(loss), tf.reduce_sum(tf.cast(top5, tf.int64))

    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    loss_sum, top5_hits, count = 0.0, 0, 0
    for images, labels in dataset:
        y_true, y_pred, batch_loss, batch_top5 = (t.numpy() for t in predict_step(images, labels))
        if y_true.size and (y_true.min() < 0 or y_true.max() >= num_classes):
            bad = y_true[(y_true < 0) | (y_true >= num_classes)][0]
            raise ValueError(label_outside(bad, num_classes))
        matrix += np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(matrix.shape)
        loss_sum += float(batch_loss)
        top5_hits += int(batch_top5)
        count += int(y_true.size)
    if count == 0:
        raise ValueError("the dataset yielded no examples")

    per_class_total = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(per_class_total > 0, np.diag(matrix) / np.maximum(per_class_total, 1), np.nan)
    return EvalResult(
        accuracy=float(np.trace(matrix) / count),
        top5_accuracy=float(top5_hits / count) if num_classes >= 5 else None,
        loss=loss_sum / count,
        per_class_accuracy=tuple(per_class.tolist()),
        confusion_matrix=matrix,
        num_examples=count,
        class_names=names,
    )


def _check_element_spec(dataset: tf.data.Dataset, model: keras.Model) -> None:
    spec = getattr(dataset, "element_spec", None)
    if spec is None:
        raise TypeError(f"dataset must be a tf.data.Dataset or a tuple (images, labels) of arrays; received "
                        f"{type(dataset).__name__}")
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            "dataset must yield (images, labels) pairs; received elements of structure "
            f"{tf.nest.map_structure(lambda s: s.shape, spec)}"
        )
    check_data(model, dataset, what="the dataset")


def check_data(model: keras.Model, dataset: tf.data.Dataset, *, what: str, labels: bool = True) -> bool:
    """Refuses ``dataset``'s ``(images, labels)`` batches when ``model`` cannot take them (`check_images_fit`,
    `check_not_raw_pixels`, and with ``labels`` `one_hot_labels`), naming ``what``; returns whether the labels are
    one-hot rows. A subclassed model's inputs and outputs are known only once it has run: its labels are taken
    for one-hot rows when they are any rows wider than 1."""
    labels_spec = _element_spec(dataset, 1)
    if labels and isinstance(labels_spec, tf.TensorSpec) and not (labels_spec.dtype.is_integer
                                                                 or labels_spec.dtype.is_floating):
        raise ValueError(f"{what} has labels of dtype {labels_spec.dtype.name}; accepted: integer class ids "
                         "(or one-hot rows)")
    if model.inputs:
        check_images_fit(model.inputs[0].shape, dataset, what=what)
        if model.inputs[0].shape.rank == 4:  # images: other integer inputs (token ids) are no raw pixels
            check_not_raw_pixels(model, dataset, what=what)
    if not labels:
        return False
    return one_hot_labels(model.outputs[0].shape[-1] if model.outputs else None, dataset, what=what)


def _output_shape(model: keras.Model, dataset: tf.data.Dataset) -> tuple:
    """The shape of ``model``'s (first) output; a subclassed model is run on the first batch for it."""
    if model.outputs:
        return tuple(model.outputs[0].shape)
    for images, _ in dataset.take(1):
        return (None, *tf.nest.flatten(model(images, training=False))[0].shape[1:])
    raise ValueError("the dataset yielded no examples")


def _element_spec(dataset: tf.data.Dataset, index: int):
    """The spec of the images (0) or labels (1) of ``dataset``'s ``(images, labels)`` elements; None for
    elements of another structure (left to the caller)."""
    spec = getattr(dataset, "element_spec", None)
    return spec[index] if isinstance(spec, tuple) and len(spec) == 2 else None


def check_images_fit(input_shape, dataset: tf.data.Dataset, *, what: str) -> None:
    """Raises a ValueError naming both shapes when the image batches of ``dataset`` (``(images, labels)``
    elements) cannot go into a model input of ``input_shape`` (``[batch, H, W, C]``, None where open), or
    are single images (an unbatched dataset); elements of another structure are left to the caller.
    Batches ``[batch, H, W]`` for a one-channel model are taken, as Keras takes them."""
    images = _element_spec(dataset, 0)
    model = tf.TensorShape(input_shape)
    if not isinstance(images, tf.TensorSpec) or images.shape.rank is None or model.rank is None:
        return
    gray = model.rank == 4 and model[-1] == 1  # its images may come without the channel axis, as Keras takes them
    if images.shape.is_compatible_with(model[1:]) or (gray and images.shape.is_compatible_with(model[1:-1])):
        raise ValueError(f"{what} looks unbatched: images of shape {tuple(images.shape)} for a model input of shape "
                         f"{tuple(model)}. Call dataset.batch(batch_size) first.")
    if gray and images.shape.rank == 3:  # [batch, H, W]
        images = tf.TensorSpec([*images.shape, 1], images.dtype)
    if images.shape.rank != 4 or model.rank != 4:
        return
    if not images.shape[1:].is_compatible_with(model[1:]):
        raise ValueError(f"the model takes images of shape {tuple(model[1:])}; {what} has images of shape "
                         f"{tuple(images.shape[1:])}. Accepted: data of the model's shape (a dataset name is resized "
                         "to the model's height and width, not its channels), or a model built for the data's "
                         "(input_shape=...)")


def one_hot_labels(num_classes: int | None, dataset: tf.data.Dataset, *, what: str) -> bool:
    """Whether the labels of ``dataset``'s ``(images, labels)`` batches are one-hot (or smoothed) rows
    ``[batch, num_classes]`` rather than class ids ``[batch]`` or ``[batch, 1]`` (None: a model whose
    classes are not known yet, any width above 1 taken for one-hot).

    Raises:
        ValueError: labels of another shape, naming it and the accepted ones.
    """
    labels = _element_spec(dataset, 1)
    if not isinstance(labels, tf.TensorSpec) or labels.shape.rank is None:
        return False
    shape = labels.shape
    if shape.rank == 1 or (shape.rank == 2 and shape[-1] in (None, 1)):
        return False
    if shape.rank == 2 and shape[-1] > 1 and num_classes in (None, shape[-1]):
        return True
    classes = f"a {num_classes}-class model" if num_classes else "the model"
    raise ValueError(f"{what} has labels of shape {tuple(shape)} for {classes}; accepted: class ids of shape "
                     f"[batch] or [batch, 1], or one-hot rows [batch, {num_classes or 'num_classes'}]")


# Normalized images stay within a few units of 0 (Fashion-MNIST's within [-0.8, 2.1]); raw pixels as floats reach 255.
_NORMALIZED_LIMIT = 20.0


def check_array_pixels(model: keras.Model, images, *, what: str) -> None:
    """Raises a ValueError when a zoo model (which takes normalized images) with no preprocessing layer is given
    float ``images`` (arrays) that reach past `_NORMALIZED_LIMIT` among their first 256: raw pixels as floats,
    which trained and evaluated at chance without an error. Models of other origins may take any range
    (keras.applications' caffe-style inputs reach 150), and a dataset is not read ahead (a stream would lose
    its first batch), so only the zoo's models given arrays are checked."""
    x = tf.convert_to_tensor(images[:256])
    if not x.dtype.is_floating or x.shape.rank != 4 or not _is_zoo_model(model):
        return
    if any(isinstance(layer, _PREPROCESSING) for layer in model.submodules):
        return
    top = float(tf.reduce_max(tf.abs(tf.cast(x, tf.float32)))) if x.shape[0] else 0.0
    if top > _NORMALIZED_LIMIT:
        raise ValueError(f"{what} has float images with values up to {top:g} (raw pixels?) and {model.name!r} takes "
                         "normalized images, (x * scale - mean) / std, within a few units of 0. Accepted: "
                         "training.load_dataset's images, or for shipped weights "
                         "PretrainedWeights.input.normalize(pixels)")


def check_array_labels(model: keras.Model, labels, *, what: str) -> None:
    """Raises a ValueError when class ids in ``labels`` (arrays, ``[N]`` or ``[N, 1]``) fall outside ``model``'s
    classes: read up front, where a dataset's are found at the step that reads them (the validation data's only
    after the first training epoch)."""
    y = np.asarray(labels)
    classes = model.outputs[0].shape[-1] if model.outputs else None
    if classes is None or y.size == 0 or not (y.ndim == 1 or (y.ndim == 2 and y.shape[-1] == 1)):
        return
    bad = y[(y < 0) | (y >= classes)]
    if bad.size:
        raise ValueError(f"{label_outside(bad.flat[0], classes)}, in {what}. Accepted: class ids 0 to num_classes - 1")


def label_outside(label, num_classes) -> str:
    """What fit's and evaluate's errors say of a class id outside ``[0, num_classes)``."""
    value = float(label)
    shown = int(value) if value.is_integer() else value
    return f"label {shown} is outside [0, {num_classes}) for a {num_classes}-class model"


def _is_zoo_model(model: keras.Model) -> bool:
    """Built by `zoo.create_model` (or fine-tuned or cloned from one): a registered name and its input, "image"
    (keras.applications' ``vgg16`` or ``resnet50`` share the names, not the input's)."""
    import zoo

    inputs = getattr(model, "inputs", None) or ()
    return (model.name in zoo.list_models() and len(inputs) == 1
            and inputs[0].name.split(":")[0] == "image")


# Layers that can take raw pixels: a model with one of them may be fed integer images.
_PREPROCESSING = (keras.layers.Rescaling, keras.layers.Normalization, keras.layers.Lambda)


def check_not_raw_pixels(model: keras.Model, dataset: tf.data.Dataset, *, what: str) -> None:
    """Raises a ValueError when ``dataset``'s images are integers (raw pixels) and ``model`` (functional) has no
    layer that could scale them (``Rescaling``, ``Normalization``, ``Lambda``): the zoo's models take
    normalized floats, and raw pixels trained and evaluated without an error, at chance accuracy."""
    images = _element_spec(dataset, 0)
    functional = getattr(model, "_is_graph_network", False)  # a subclassed model's call may scale anything
    if not isinstance(images, tf.TensorSpec) or not images.dtype.is_integer or not functional:
        return
    if any(isinstance(layer, _PREPROCESSING) for layer in model.submodules):
        return
    raise ValueError(f"{what} has {images.dtype.name} images (raw pixels?) and model {model.name!r} scales nothing "
                     "(no Rescaling, Normalization or Lambda layer). Accepted: float images normalized as the model "
                     "was trained, (x * scale - mean) / std (training.load_dataset gives them; for shipped weights, "
                     "PretrainedWeights.input.normalize), or a model with its own Rescaling layer")
