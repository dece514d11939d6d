"""Fine-tuning a wrapped (pruned, clustered, quantization-aware) model with the shared loop."""

from __future__ import annotations

import os
import tempfile
from contextlib import nullcontext
from typing import Sequence

import tf_keras as keras

__all__ = ["finetune_wrapped", "wrap_layers"]


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


def wrap_layers(model: keras.Model, wrap, *, what: str) -> keras.Model:
    """Clones the functional ``model``, replacing each layer by ``wrap(layer)`` (which may return the layer).

    Raises:
        ValueError: ``model`` is not functional or Sequential (TFMOT clones only those).
    """
    if not isinstance(model, keras.Model) or not (model._is_graph_network or isinstance(model, keras.Sequential)):
        raise ValueError(f"{what} needs a functional or Sequential tf_keras model; received "
                         f"{type(model).__module__}.{type(model).__name__} (subclassed models cannot be cloned)")
    clone = keras.models.clone_model(model, clone_function=wrap)
    return clone
