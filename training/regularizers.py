"""The seed's regularizers that are not part of a model: weight penalties, DropConnect, label smoothing.

The syllabus ("Regulation") lists L1, L2 and L1+L2 penalties, dropout, batch norm, data
augmentation, DropConnect and stochastic depth. Dropout, batch norm and stochastic depth live in the
models (`zoo`), augmentation in `training.augment`; this module adds the rest:

- `apply_weight_penalty` puts an L1/L2 penalty on every kernel of a built model (`weight_penalty`: for
  a block only);
- `DropConnect`, a ``Dense`` layer whose weights (not activations) are dropped in training;
- `label_smoothing_loss`, sparse categorical cross-entropy against smoothed one-hot targets.

    >>> import tf_keras as keras
    >>> model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])
    >>> model = apply_weight_penalty(model, l2=1e-4)
    >>> len(model.losses)
    1
"""

from __future__ import annotations

import contextlib
import functools
import numbers
from typing import Any, Callable, Iterator

import zoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

__all__ = ["DropConnect", "SmoothedSparseCategoricalCrossentropy", "apply_weight_penalty", "label_smoothing_loss",
           "weight_penalty"]

# (weight attribute, regularizer attribute) pairs: Dense/Conv* kernels, and the two kernels of the
# depthwise and separable convolutions. Biases, batch-norm scales and embeddings are not penalized.
_KERNELS = (
    ("kernel", "kernel_regularizer"),
    ("depthwise_kernel", "depthwise_regularizer"),
    ("pointwise_kernel", "pointwise_regularizer"),
)


def _check_penalty(name: str, value: Any) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative float; received {value!r}")
    return float(value)


def _regularization_loss(regularizer, variable, name: str):
    # What Keras itself adds for a ``kernel_regularizer`` at build time (Layer._handle_weight_regularization).
    with keras.backend.name_scope(f"{name}/Regularizer"):
        return regularizer(variable)


def apply_weight_penalty(model: keras.Model, *, l1: float = 0.0, l2: float = 0.0) -> keras.Model:
    """Adds ``l1 * sum|w| + l2 * sum w**2`` for every kernel ``w`` of a built model, in place.

    Every layer with a kernel gets the penalty: ``Dense`` (and `DropConnect`), ``Conv1D/2D/3D`` and
    their transposes, ``DepthwiseConv2D`` (its depthwise kernel) and ``SeparableConv*`` (both kernels),
    in nested models too. Biases, batch-norm parameters and embeddings are left alone. The penalty is
    Keras' ``L1L2`` (no factor 1/2, so with plain SGD ``l2`` is a weight decay of ``2 * l2 * lr``).

    It works the way Keras does for a ``kernel_regularizer`` given at construction: the layer's
    regularizer attribute is set (so ``get_config``, saving, loading and ``clone_model``, hence TFMOT,
    keep the penalty) and the layer adds a loss closing over the kernel (so the live model, its weights
    and any optimizer state are kept and ``fit`` minimizes it at once). The penalties appear in
    ``model.losses``; ``fit`` adds them to the loss.

    Calling it again with the same values is a no-op, so it is safe on a model that was saved with the
    penalty and loaded back. `weight_penalty` puts it on for a block only (`training.fit` does, so that
    each run is penalized by its own recipe).

    Args:
        model: a built ``keras.Model`` (functional models always are).
        l1: weight of the L1 penalty.
        l2: weight of the L2 penalty.

    Returns:
        ``model`` itself, for chaining.

    Raises:
        ValueError: negative weights, an unbuilt model, or a kernel that already has a different regularizer.

    Example:
        >>> import zoo
        >>> model = zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10)
        >>> model = apply_weight_penalty(model, l2=5e-4)
        >>> len(model.losses)  # its 19 convolutions and the classifier
        20
    """
    _penalize(model, l1=l1, l2=l2)
    return model


@contextlib.contextmanager
def weight_penalty(model: keras.Model, *, l1: float = 0.0, l2: float = 0.0) -> Iterator[keras.Model]:
    """`apply_weight_penalty` for the duration of a block: on leaving it, each kernel it penalized is left
    as it was (no regularizer, no loss), so a model trained again with another recipe gets that recipe's
    penalty alone. A penalty the model already had (built with a ``kernel_regularizer``) stays.

    Example:
        >>> with weight_penalty(model, l2=5e-4):  # doctest: +SKIP
        ...     model.fit(...)
        >>> model.losses  # doctest: +SKIP
        []
    """
    added = _penalize(model, l1=l1, l2=l2)
    try:
        yield model
    finally:
        for layer, regularizer_name, loss in added:
            setattr(layer, regularizer_name, None)
            # add_loss keeps each callable wrapped as functools.partial(_tag_callable, loss)
            layer._callable_losses = [c for c in layer._callable_losses
                                      if not (isinstance(c, functools.partial) and c.args and c.args[0] is loss)]


def _penalize(model: keras.Model, *, l1: float, l2: float) -> list[tuple[keras.layers.Layer, str, Callable]]:
    """`apply_weight_penalty`'s work; returns what it added: (layer, regularizer attribute, loss) triples."""
    l1, l2 = _check_penalty("l1", l1), _check_penalty("l2", l2)
    if not isinstance(model, keras.Model):
        raise ValueError(f"apply_weight_penalty takes a keras.Model; received {type(model).__name__}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built; call it on data or build it first")
    if l1 == 0 and l2 == 0:
        return []
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2)
    targets, seen = [], set()
    for layer in (m for m in model.submodules if isinstance(m, keras.layers.Layer)):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        for weight_name, regularizer_name in _KERNELS:
            variable = getattr(layer, weight_name, None)
            if not isinstance(variable, tf.Variable) or not hasattr(layer, regularizer_name):
                continue
            existing = getattr(layer, regularizer_name)
            if existing is None:
                targets.append((layer, weight_name, regularizer_name, variable))
            elif type(existing) is not type(regularizer) or existing.get_config() != regularizer.get_config():
                raise ValueError(
                    f"layer {layer.name!r} already has {regularizer_name}={existing.get_config()}; received "
                    f"l1={l1}, l2={l2}. apply_weight_penalty adds one penalty per kernel; build the model "
                    "without a regularizer to set a different one"
                )
            # else: already penalized with these values
    # Checked everything first: an error leaves the model untouched.
    added = []
    for layer, weight_name, regularizer_name, variable in targets:
        setattr(layer, regularizer_name, regularizer)
        loss = functools.partial(_regularization_loss, regularizer, variable, f"{layer.name}/{weight_name}")
        layer.add_loss(loss)
        added.append((layer, regularizer_name, loss))
    return added


@keras.saving.register_keras_serializable(package="zoo")
class DropConnect(keras.layers.Dense):
    """A ``Dense`` layer whose weights are dropped in training (Wan et al. 2013, "Regularization of
    Neural Networks using DropConnect").

    In training each weight of the kernel is kept with probability ``keep = 1 - drop_rate`` (one
    Bernoulli mask per call, shared by the examples of the batch) and the kept weights are scaled by
    ``1 / keep``: ``y = x @ (mask * W) / keep + b``. The bias is not dropped. At inference the layer is
    exactly ``Dense`` with the plain weights.

    Differences from the paper: this is the "inverted" scaling that inverted dropout uses, so
    inference needs no change. The paper trains without the ``1 / keep`` factor and at inference
    approximates the pre-activation by a Gaussian matching its mean and variance under the mask,
    averaging the activation over samples from it; it also draws a separate mask per example, which
    costs a batch of weight matrices per step. With the kernel layout and config of ``Dense``, the
    zoo's MAC counting and weight loading treat it as a ``Dense``.

    Args:
        units: output size.
        drop_rate: probability of dropping each weight, in ``[0, 1)``; 0 is a plain ``Dense``.
        seed: seed of the masks. They are drawn from the layer's Keras ``RandomGenerator``, as
            ``Dropout``'s are, so `training.fit` checkpoints their state and a resumed run draws the
            masks the uninterrupted one would.
        **kwargs: ``Dense``'s arguments (``activation``, ``use_bias``, ``kernel_initializer``...).

    Example:
        >>> layer = DropConnect(4, drop_rate=0.5)
        >>> x = tf.ones([2, 3])
        >>> bool(tf.reduce_all(layer(x, training=False) == x @ layer.kernel + layer.bias))
        True
    """

    def __init__(self, units: int, *, drop_rate: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(units, **kwargs)
        if not isinstance(drop_rate, numbers.Real) or isinstance(drop_rate, bool) or not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be a float in [0, 1); received {drop_rate!r}")
        self.drop_rate = float(drop_rate)
        self.seed = seed
        self._make_random_generator(seed)

    @tf.__internal__.tracking.no_automatic_dependency_tracking
    def _make_random_generator(self, seed):
        from tf_keras.src import backend  # RandomGenerator is not exported; Dropout's own generator

        # As keras' BaseRandomLayer: the generator's state stays out of the layer's weights.
        self._random_generator = backend.RandomGenerator(seed)

    def call(self, inputs, training=None):
        if self.drop_rate == 0.0:
            return super().call(inputs)
        if training is None:
            training = keras.backend.learning_phase()
        if isinstance(training, (bool, int)):
            return self._dropped_call(inputs) if training else super().call(inputs)
        plain = super().call
        return tf.cond(tf.cast(training, tf.bool), lambda: self._dropped_call(inputs), lambda: plain(inputs))

    def _dropped_call(self, inputs):
        if isinstance(inputs, (tf.SparseTensor, tf.RaggedTensor)):
            raise TypeError(f"DropConnect takes dense inputs in training; received {type(inputs).__name__}")
        if inputs.dtype.base_dtype != self._compute_dtype_object.base_dtype:
            inputs = tf.cast(inputs, dtype=self._compute_dtype_object)
        kernel = tf.convert_to_tensor(self.kernel)
        keep = 1.0 - self.drop_rate
        mask = self._random_generator.random_uniform(tf.shape(kernel)) < keep
        kernel = tf.where(mask, kernel / tf.cast(keep, kernel.dtype), tf.zeros_like(kernel))
        rank = inputs.shape.rank
        if rank == 2 or rank is None:
            outputs = tf.matmul(inputs, kernel)
        else:
            outputs = tf.tensordot(inputs, kernel, [[rank - 1], [0]])
            outputs.set_shape(inputs.shape[:-1].concatenate([self.units]))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "drop_rate": self.drop_rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy between integer labels, as smoothed one-hot targets, and predictions.

    The target of class ``k`` out of ``K`` is ``(1 - label_smoothing) * one_hot(k) + label_smoothing / K``
    (Szegedy et al. 2016, section 7; Keras' ``CategoricalCrossentropy`` convention). tf_keras 2.21's
    ``SparseCategoricalCrossentropy`` has no ``label_smoothing``, so this one-hot encodes the labels and
    calls ``categorical_crossentropy``. Labels may be shaped ``(batch,)`` or ``(batch, 1)``; under a
    mixed-precision policy the loss is computed in float32.

    Args:
        label_smoothing: in ``[0, 1)``; 0 is the plain sparse categorical cross-entropy.
        from_logits: whether predictions are logits (the zoo's models output logits) or probabilities.
        reduction: a ``keras.losses.Reduction``.
        name: the loss's name.

    Example:
        >>> loss = SmoothedSparseCategoricalCrossentropy(0.1)
        >>> round(float(loss(tf.constant([0]), tf.constant([[0.0, 0.0]]))), 4)  # log 2 whatever the smoothing
        0.6931
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        *,
        from_logits: bool = True,
        reduction: str = keras.losses.Reduction.AUTO,
        name: str = "smoothed_sparse_categorical_crossentropy",
    ):
        super().__init__(reduction=reduction, name=name)
        is_number = isinstance(label_smoothing, numbers.Real) and not isinstance(label_smoothing, bool)
        if not is_number or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be a float in [0, 1); received {label_smoothing!r}")
        if not isinstance(from_logits, bool):
            raise ValueError(f"from_logits must be a bool; received {from_logits!r}")
        self.label_smoothing = float(label_smoothing)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        y_pred = tf.convert_to_tensor(y_pred)
        if y_pred.dtype in (tf.float16, tf.bfloat16):
            y_pred = tf.cast(y_pred, tf.float32)
        labels = tf.reshape(tf.cast(y_true, tf.int32), tf.shape(y_pred)[:-1])
        classes = tf.shape(y_pred)[-1]
        # one_hot makes a label outside the classes an all-zero target, trained on silently; this is the
        # error sparse cross-entropy raises (training.fit reads it)
        inside = tf.reshape((labels >= 0) & (labels < classes), [-1])
        first_bad = tf.gather(tf.reshape(labels, [-1]), tf.argmin(tf.cast(inside, tf.int32)))
        with tf.control_dependencies([tf.debugging.Assert(tf.reduce_all(inside), [tf.strings.format(
                "Received a label value of {} which is outside the valid range of [0, {})", (first_bad, classes))])]):
            targets = tf.one_hot(labels, depth=classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "from_logits": self.from_logits}


def label_smoothing_loss(label_smoothing: float, *, from_logits: bool = True) -> keras.losses.Loss:
    """Sparse categorical cross-entropy with label smoothing, for integer labels.

    Args:
        label_smoothing: in ``[0, 1)``, the probability mass spread evenly over all classes.
        from_logits: whether the model outputs logits (the zoo's models do).

    Returns:
        A `SmoothedSparseCategoricalCrossentropy`, serializable as ``zoo>SmoothedSparseCategoricalCrossentropy``.

    Raises:
        ValueError: ``label_smoothing`` outside ``[0, 1)``.

    Example:
        >>> model.compile(optimizer="adam", loss=label_smoothing_loss(0.1))  # doctest: +SKIP
    """
    return SmoothedSparseCategoricalCrossentropy(label_smoothing, from_logits=from_logits)
