"""How weights are made: datasets, the seed's optimizers and regularizers, recipes and the shared loop.

    >>> import training
    >>> recipe = training.Recipe(optimizer="adam", learning_rate=1e-3, epochs=3)
    >>> result = training.fit(model, "fashion_mnist", recipe=recipe, out_dir="runs/r20")  # doctest: +SKIP

Public names are loaded on first use, so ``import training`` stays cheap; importing it imports
`zoo` first, which sets ``TF_USE_LEGACY_KERAS=1`` before TensorFlow loads.
"""

import importlib

import zoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads)

_EXPORTS = {
    "Recipe": "training.recipes",
    "Regularization": "training.recipes",
    "Schedule": "training.recipes",
    "FitResult": "training.loop",
    "TrainingDiverged": "training.loop",
    "fit": "training.loop",
    "steps_per_epoch": "training.loop",
    "epoch_data": "training.loop",
    "first_batch": "training.loop",
    "augmented_by": "training.data",
    "DatasetInfo": "training.data",
    "load_dataset": "training.data",
    "from_arrays": "training.data",
    "load_epochs": "training.data",
    "Augment": "training.augment",
    "get_augment": "training.augment",
    "list_datasets": "training.data",
    "EvalResult": "training.evaluation",
    "evaluate": "training.evaluation",
    "finetune": "training.transfer",
    "get_optimizer": "training.optimizers",
    "apply_weight_penalty": "training.regularizers",
    "weight_penalty": "training.regularizers",
    "DropConnect": "training.regularizers",
    "Distiller": "training.distill",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'training' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
