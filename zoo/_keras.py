"""Small tf_keras helpers the packages share: a model's copy, and whether its output is logits."""

from __future__ import annotations

from typing import Callable

import tf_keras as keras

__all__ = ["copy_model", "outputs_logits"]


def copy_model(model: keras.Model, *, clone_function: Callable | None = None) -> keras.Model:
    """A new functional or Sequential model of ``model``'s layers (each through ``clone_function``, as
    ``keras.models.clone_model`` takes it) holding copies of its weights: training or wrapping the copy
    leaves ``model`` as it was.

    Example:
        >>> copy = copy_model(zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10))  # doctest: +SKIP
    """
    copy = keras.models.clone_model(model, clone_function=clone_function)
    copy.set_weights(model.get_weights())
    return copy


def outputs_logits(model: keras.Model) -> bool:
    """Whether ``model``'s (first) output is logits rather than softmax probabilities.

    The zoo's models output logits unless built with ``classifier_activation="softmax"``; this
    looks at the activation of the layer producing the output (a ``Dense``/``Activation`` with
    ``activation="softmax"``, or a ``Softmax`` layer, mean probabilities). Any other activation,
    including none, is taken to be logits, and so is a subclassed model's output (it has no layer
    graph to read).

    Example:
        >>> outputs_logits(zoo.create_model("resnet20", input_shape=(32, 32, 3), num_classes=10))  # doctest: +SKIP
        True
    """
    if model.outputs is None:  # subclassed
        return True
    layer = model.outputs[0]._keras_history.layer
    if isinstance(layer, keras.layers.Softmax):
        return False
    activation = getattr(layer, "activation", None)
    return not (activation is keras.activations.softmax or getattr(activation, "__name__", None) == "softmax")
