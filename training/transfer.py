"""Transfer learning: a new classifier head on a trained model, and the seed's rule for what to freeze.

The seed ("Transfer Learning"): with a small dataset similar to the original, retrain only the last
layer; with more data, retrain more layers. `finetune` replaces the head and sets ``trainable``:

- ``train_layers="head"``: only the new classifier trains (small, similar data).
- ``train_layers="last:N"``: the last ``N`` layers that have weights, plus the head (more data).
- ``train_layers="all"``: everything trains (a lot of data; the old weights are only an initialization).

Batch norm in the frozen part runs in inference mode: in ``tf_keras`` a ``BatchNormalization``
with ``trainable=False`` normalizes with its moving statistics and does not update them, even in
``fit`` (the behaviour since TF 2.0), so a frozen body computes exactly what it computed before.

    >>> import zoo
    >>> base = zoo.create_model("resnet20", input_shape=(32, 32, 1), num_classes=10)
    >>> model = finetune(base, 5, train_layers="last:2")
    >>> model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
"""

from __future__ import annotations

import re

import tf_keras as keras

from zoo._checks import as_int
from zoo._keras import copy_model

__all__ = ["TRAIN_LAYERS_FORMS", "finetune", "trainable_layer_names"]

TRAIN_LAYERS_FORMS = ('"head"', '"last:N" (N a positive int)', '"all"')
_GLOBAL_POOLS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)


def finetune(
    model: keras.Model,
    new_num_classes: int,
    *,
    train_layers: str = "head",
    head_dropout: float = 0.0,
) -> keras.Model:
    """Returns ``model`` with a new ``new_num_classes``-way head and the layers to train set trainable.

    The head is replaced from the feature tensor that feeds the old classifier:

    - a ``Dense`` classifier (ResNet, VGG, AlexNet, ...): the new ``Dense`` takes the old one's input;
    - a 1x1 class-map convolution followed by global pooling (NiN, SqueezeNet, whose output layer
      is an ``Activation`` named ``predictions``): the new head is global average pooling of the
      convolution's input, then a ``Dense``.

    Layers between the body and the old classifier (e.g. SqueezeNet's ``head_dropout``, VGG's
    ``fc1_dropout``) stay. The new head is ``[dropout →] Dense(new_num_classes)`` named
    ``predictions`` and outputs logits, whatever ``model``'s ``classifier_activation`` was.
    Training-only auxiliary outputs (GoogLeNet's) are dropped.

    ``model`` is not modified: the result is a clone with the same weights. Compile it after this
    call (``trainable`` takes effect at compile time).

    Args:
        model: a functional classifier whose (first) output layer is named ``predictions`` (the
            zoo's convention, and keras.applications').
        new_num_classes: the number of classes of the new task.
        train_layers: what trains: ``"head"``, ``"last:N"`` (the last ``N`` layers of the body that
            have weights, in topological order, counting batch norm layers, plus the head) or
            ``"all"``.
        head_dropout: dropout rate before the new ``Dense``, in ``[0, 1)``.

    Returns:
        A new, uncompiled functional ``tf_keras.Model`` with one logits output.

    Raises:
        ValueError: if ``train_layers`` or another argument is invalid, or the model's head is not
            one of the recognized structures.

    Example:
        >>> import zoo
        >>> base = zoo.create_model("squeezenet1_1", input_shape=(32, 32, 3), num_classes=10)
        >>> model = finetune(base, 2, train_layers="head")
        >>> model.output_shape, trainable_layer_names(model)
        ((None, 2), ['predictions'])
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a tf_keras.Model; received {type(model).__name__}")
    if not hasattr(model, "_is_graph_network") or not model._is_graph_network:
        raise ValueError(
            f"finetune needs a functional (or Sequential) model to find its head; received a subclassed "
            f"{type(model).__name__} named {model.name!r}"
        )
    if as_int(new_num_classes, minimum=1) is None:
        raise ValueError(f"new_num_classes must be a positive int; received {new_num_classes!r}")
    new_num_classes = int(new_num_classes)
    if not 0.0 <= head_dropout < 1.0:
        raise ValueError(f"head_dropout must be in [0, 1); received {head_dropout!r}")
    last_n = _parse_train_layers(train_layers)

    clone = copy_model(model)
    features, pool = _head_input(clone)
    body = keras.Model(clone.inputs, features, name=f"{clone.name}_body")
    taken = {layer.name for layer in body.layers}

    weighted = [layer for layer in body.layers if layer.weights]
    if last_n is not None and last_n > len(weighted):
        raise ValueError(
            f"train_layers={train_layers!r} asks for the last {last_n} layers with weights, but the body of "
            f"{model.name!r} has only {len(weighted)}; use train_layers='all' to train everything"
        )
    if train_layers == "all":
        trainable = set(weighted)
    else:
        trainable = set(weighted[len(weighted) - last_n:]) if last_n else set()
    for layer in body.layers:
        # Weightless layers are left trainable: it changes nothing, and nested models keep their flags.
        layer.trainable = layer in trainable or not layer.weights

    x = features
    if pool:
        x = keras.layers.GlobalAveragePooling2D(name=_free_name("avg_pool", taken))(x)
    if head_dropout:
        x = keras.layers.Dropout(head_dropout, name=_free_name("head_dropout", taken))(x)
    outputs = keras.layers.Dense(new_num_classes, name="predictions")(x)
    return keras.Model(clone.inputs, outputs, name=model.name)


def trainable_layer_names(model: keras.Model) -> list[str]:
    """The names of the layers that have trainable weights, in order.

    Example:
        >>> import zoo
        >>> base = zoo.create_model("resnet20", input_shape=(32, 32, 3), num_classes=10)
        >>> trainable_layer_names(finetune(base, 5, train_layers="last:1"))
        ['stage3_block3_2_bn', 'predictions']
    """
    return [layer.name for layer in model.layers if layer.trainable_weights]


def _parse_train_layers(train_layers: str) -> int | None:
    """``"head"`` → 0, ``"last:N"`` → N, ``"all"`` → None."""
    if train_layers == "head":
        return 0
    if train_layers == "all":
        return None
    match = re.fullmatch(r"last:(\d+)", train_layers) if isinstance(train_layers, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ValueError(
            f"unknown train_layers {train_layers!r}. Accepted: {', '.join(TRAIN_LAYERS_FORMS)}; "
            "e.g. 'last:3' trains the last three layers with weights plus the new head"
        )
    return int(match.group(1))


def _producer(tensor):
    """The layer that produced a symbolic tensor and that call's input tensors."""
    layer, node_index, _ = tensor._keras_history
    node = layer._inbound_nodes[node_index]
    return layer, [] if node.is_input else list(node.keras_inputs)


def _head_input(model: keras.Model):
    """The feature tensor feeding ``model``'s classifier, and whether it still needs global pooling.

    Walks back from the primary output through weightless single-input layers (activations,
    pooling, dropout, flatten) to the classifier: the last layer with weights.
    """
    output = model.outputs[0]
    out_layer, _ = _producer(output)
    if out_layer.name != "predictions":
        raise ValueError(
            f"finetune looks for the classifier behind an output layer named 'predictions' (the zoo's "
            f"convention); the output of {model.name!r} comes from {out_layer.name!r} "
            f"({type(out_layer).__name__}). Models built with include_top=False have no head to replace: "
            "build them with include_top=True."
        )
    path = []  # weightless layers walked through, output first
    tensor = output
    while True:
        layer, inputs = _producer(tensor)
        if layer.weights:
            break
        if len(inputs) != 1:
            what = "the model input" if not inputs else f"{len(inputs)} inputs"
            raise ValueError(
                f"unrecognized head in {model.name!r}: walking back from 'predictions' reached "
                f"{layer.name!r} ({type(layer).__name__}, {what}) before any layer with weights. "
                "finetune recognizes a Dense classifier, or a 1x1 convolution followed by global pooling."
            )
        path.append(layer)
        tensor = inputs[0]
    _, inputs = _producer(tensor)
    if len(inputs) != 1:
        raise ValueError(f"unrecognized head in {model.name!r}: the classifier {layer.name!r} has {len(inputs)} inputs")
    if isinstance(layer, keras.layers.Dense):
        if len(inputs[0].shape) != 2:
            raise ValueError(
                f"unrecognized head in {model.name!r}: the Dense classifier {layer.name!r} takes input of "
                f"shape {tuple(inputs[0].shape)}; finetune expects pooled or flattened features [batch, channels]"
            )
        return inputs[0], False
    is_class_map = (
        isinstance(layer, keras.layers.Conv2D)
        and tuple(layer.kernel_size) == (1, 1)
        and any(isinstance(p, _GLOBAL_POOLS) for p in path)
    )
    if is_class_map:
        return inputs[0], True
    raise ValueError(
        f"unrecognized head in {model.name!r}: the last layer with weights before 'predictions' is "
        f"{layer.name!r} ({type(layer).__name__}). finetune recognizes a Dense classifier, or a 1x1 "
        "convolution followed by global pooling (NiN, SqueezeNet)."
    )


def _free_name(name: str, taken: set[str]) -> str:
    return name if name not in taken else f"finetune_{name}"
