"""Fine-tuning a wrapped (pruned, clustered, quantization-aware) model with the shared loop."""

from __future__ import annotations

import os
import tempfile
from contextlib import nullcontext
from typing import Sequence

import tf_keras as keras

__all__ = ["finetune_wrapped", "functional", "wrap_layers"]


def finetune_wrapped(model: keras.Model, train, *, recipe, out_dir: str | os.PathLike | None,
                     callbacks: Sequence[keras.callbacks.Callback] = (), teacher: keras.Model | None = None,
                     verbose="auto") -> keras.Model:
    """Trains ``model`` (TFMOT wrappers included) with `training.fit` and returns the trained model.

    ``out_dir`` holds the run (checkpoints, so an interrupted fine-tuning resumes); None uses a
    temporary directory that is removed afterwards. With a ``teacher`` (the float original, say)
    the model learns its soft targets besides the labels (`training.distill.Distiller`).
    """
    from training import fit

    trainee = model
    if teacher is not None:
        from training.distill import Distiller

        trainee = Distiller(model, teacher)
    with tempfile.TemporaryDirectory(prefix="zoo-export-") if out_dir is None else nullcontext(out_dir) as run_dir:
        trained = fit(trainee, train, recipe=recipe, out_dir=run_dir, callbacks=list(callbacks), verbose=verbose).model
    return trained.student if teacher is not None else trained


def functional(model, *, what: str) -> keras.Model:
    """``model`` as a functional model, the check at the top of every transform (TFMOT clones only graphs,
    and the transforms edit the functional config).

    A functional model is returned as is; a Sequential with an input becomes the functional model of
    the same layers (same weights and names).

    Raises:
        ValueError: a subclassed model, a Sequential without an input, or not a tf_keras model at all.
    """
    if isinstance(model, keras.Sequential) and model.inputs:
        return keras.Model(model.inputs, model.outputs, name=model.name)
    if isinstance(model, keras.Model) and not isinstance(model, keras.Sequential) and model._is_graph_network:
        return model
    kind = f"{type(model).__module__}.{type(model).__name__}"
    if isinstance(model, keras.Sequential):
        why = "a Sequential model without an input: start it with keras.Input(shape)"
    elif isinstance(model, keras.Model):
        why = "a subclassed model: its graph cannot be read or cloned"
    else:
        why = "not a tf_keras model (a Keras 3 model? set TF_USE_LEGACY_KERAS=1 before importing TensorFlow)"
    raise ValueError(f"{what} needs a functional tf_keras model (or a Sequential one with an input); received "
                     f"{kind}, {why}")


def wrap_layers(model: keras.Model, wrap) -> keras.Model:
    """Clones the functional ``model`` (see `functional`), replacing each layer by ``wrap(layer)`` (which may
    return the layer)."""
    return keras.models.clone_model(model, clone_function=wrap)
