"""Recipes: the typed, frozen description of a training run, and the learning-rate schedules.

A recipe is data: it round-trips through JSON (``Recipe.from_file`` / ``to_dict``), and the weights'
metadata records the recipe that produced them.

    >>> recipe = Recipe(optimizer="momentum", learning_rate=0.1, epochs=2,
    ...                 schedule=Schedule(kind="cosine", warmup_epochs=1))
    >>> Recipe.from_dict(recipe.to_dict()) == recipe
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from zoo._checks import as_int

__all__ = ["Recipe", "Regularization", "Schedule", "WarmupSchedule"]

SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = (None, "mixed_float16", "mixed_bfloat16")
# Steps per call of the compiled training step. benchmarks/train_throughput.py measures it against one
# step per call (its `steps_per_execution=1` candidate; ResNet-20, 28x28, batch 128, 2 cores).
STEPS_PER_EXECUTION = 25


def _is_number(value: Any) -> bool:
    """A real number (numpy's too), not a bool: ``True`` is an ``int`` to Python, never a rate or a penalty."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _counts(value: Any) -> tuple[int, ...] | None:
    """A sequence of counts (list, tuple, numpy array) as a tuple of Python ints; None if it is not one."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return None
    value = tuple(value)
    counts = tuple(as_int(v, minimum=1) for v in value)
    return None if None in counts else counts


def _build(cls, data: Mapping[str, Any], what: str):
    """``cls(**data)``, naming the unknown fields (a typo in a recipe file) instead of a TypeError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} field(s) {', '.join(unknown)}. Accepted: {', '.join(sorted(known))}")
    return cls(**data)


def _set(obj: Any, **values: Any) -> None:
    """Sets fields of a frozen dataclass (its ``__post_init__`` normalizing what it was given)."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def _optimizer_options(options: Any) -> dict[str, Any]:
    """A copy of ``options`` as JSON gives it back (numpy scalars as Python's, tuples as lists)."""
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ValueError(f"optimizer_options must be a dict of keyword arguments (str keys); received {options!r}")
    copy = {}
    for key, value in options.items():
        value = value.item() if isinstance(value, np.generic) else value
        try:  # as recipe.json gives it back (a tuple becomes a list), so a written recipe reads back equal
            copy[key] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            raise ValueError(f"optimizer_options[{key!r}] must be JSON data (a number, string, bool, None, or a "
                             f"list or dict of them), to be written to recipe.json; received {value!r}") from None
    return copy


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Learning rate per step: linear warmup, then constant, step decay or cosine decay.

    Attributes:
        kind: ``"constant"``, ``"step"`` (multiply by ``gamma`` at each epoch in ``milestones``) or
            ``"cosine"`` (to ``min_learning_rate`` at the last step).
        warmup_epochs: linear ramp from 0 over this many epochs (fractions allowed).
        milestones: epochs at which a step schedule decays.
        gamma: the step schedule's factor.
        min_learning_rate: the cosine schedule's floor.
    """

    kind: Literal["constant", "step", "cosine"] = "constant"
    warmup_epochs: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_learning_rate: float = 0.0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule kind {self.kind!r}. Accepted: {', '.join(SCHEDULES)}")
        if not _is_number(self.warmup_epochs) or self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be a number >= 0; received {self.warmup_epochs!r}")
        if not _is_number(self.gamma) or not self.gamma > 0:
            raise ValueError(f"gamma must be a number > 0; received {self.gamma!r}")
        if not _is_number(self.min_learning_rate) or self.min_learning_rate < 0:
            raise ValueError(f"min_learning_rate must be a number >= 0; received {self.min_learning_rate!r}")
        milestones = _counts(self.milestones)
        if milestones is None:
            raise ValueError(f"milestones must be a sequence of epochs, integers >= 1; received {self.milestones!r}")
        _set(self, warmup_epochs=float(self.warmup_epochs), gamma=float(self.gamma),
             min_learning_rate=float(self.min_learning_rate), milestones=milestones)


@dataclasses.dataclass(frozen=True)
class Regularization:
    """Penalties and loss-side regularizers; dropout, batch norm, stochastic depth live in the models.

    Attributes:
        l1: L1 penalty on every kernel.
        l2: L2 penalty on every kernel (``l2 * sum(w**2)``, Keras' convention).
        label_smoothing: mix the one-hot target with the uniform distribution.
    """

    l1: float = 0.0
    l2: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        for field in ("l1", "l2", "label_smoothing"):
            value = getattr(self, field)
            if not _is_number(value) or value < 0 or (field == "label_smoothing" and value >= 1):
                raise ValueError(f"regularization {field} must be a number >= 0 (and < 1 for label smoothing); "
                                 f"received {value!r}")
            _set(self, **{field: float(value)})


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything about a training run except the model and the data.

    Attributes:
        optimizer: a name `training.optimizers.get_optimizer` accepts (the seed's ``"sgd"``,
            ``"momentum"``, ``"nesterov"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, or a Keras built-in).
        learning_rate: peak learning rate.
        optimizer_options: extra keyword arguments of the optimizer (e.g. ``{"rho": 0.9}``).
        schedule: the learning-rate schedule.
        epochs: epochs to train.
        batch_size: global batch size (split over replicas by a distribution strategy).
        regularization: weight penalties and label smoothing.
        augment: augmentation of the training split (a name `training.data.get_augment` accepts) of a
            dataset name; `training.fit` reads data given as a ``tf.data.Dataset`` or a function as it is,
            and refuses ``augment`` for it unless a function says it applies it (`training.augmented_by`).
        seed: seeds weights' initialization (when the loop builds the model), data order,
            augmentation and dropout.
        checkpoint_every: steps between checkpoints (the resume granularity).
        steps_per_execution: training steps per call of the compiled step (Keras'
            ``steps_per_execution``). Steps are the same either way; callbacks, the progress bar,
            the NaN check and checkpoints run between calls, so a checkpoint lands at the end of the
            first call that reaches each multiple of ``checkpoint_every``. Calls never cross an
            epoch's end. 1 runs callbacks after every step (a callback that must see each step).
        aux_loss_weight: weight of each training-only auxiliary output's loss (GoogLeNet: 0.3).
        mixed_precision: ``None``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        deterministic: enable TensorFlow's op determinism (bitwise-reproducible runs, slower).
    """

    optimizer: str = "momentum"
    learning_rate: float = 0.05
    optimizer_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    schedule: Schedule = Schedule()
    epochs: int = 10
    batch_size: int = 128
    regularization: Regularization = Regularization()
    augment: str | None = None
    seed: int = 0
    checkpoint_every: int = 200
    steps_per_execution: int = STEPS_PER_EXECUTION
    aux_loss_weight: float = 0.3
    mixed_precision: str | None = None
    deterministic: bool = False

    def __post_init__(self):
        counts = ("epochs", "batch_size", "checkpoint_every", "steps_per_execution")
        bad = [f"{name}={getattr(self, name)!r}" for name in counts
               if as_int(getattr(self, name), minimum=1) is None]
        if bad:
            raise ValueError(f"{', '.join(counts)} must be integers >= 1; received {', '.join(bad)}")
        # numpy's numbers become Python's: recipes are written to JSON (``recipe.json``, weights' metadata).
        _set(self, **{name: int(getattr(self, name)) for name in counts})
        if not _is_number(self.learning_rate) or not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be a number > 0; received {self.learning_rate!r}")
        _set(self, learning_rate=float(self.learning_rate))
        if as_int(self.seed, minimum=0) is None:
            raise ValueError(f"seed must be an integer >= 0; received {self.seed!r}")
        if not _is_number(self.aux_loss_weight) or self.aux_loss_weight < 0:
            raise ValueError(f"aux_loss_weight must be a number >= 0; received {self.aux_loss_weight!r}")
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"deterministic must be True or False; received {self.deterministic!r}")
        _set(self, seed=int(self.seed), aux_loss_weight=float(self.aux_loss_weight),
             deterministic=bool(self.deterministic))
        if not isinstance(self.optimizer, str):
            raise ValueError(f"optimizer must be an optimizer's name (a str, e.g. 'momentum' or 'adamw'); received "
                             f"{self.optimizer!r}")
        if self.augment is not None and not isinstance(self.augment, str):
            raise ValueError(f"augment must be None or an augmentation's name (a str, e.g. 'crop_flip'); received "
                             f"{self.augment!r}")
        from training.augment import get_augment
        from training.optimizers import optimizer_class

        optimizer_class(self.optimizer)  # a typo fails here, not in fit after the run's files are written
        get_augment(self.augment)
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {PRECISIONS}; received {self.mixed_precision!r}")
        if isinstance(self.schedule, Mapping):
            _set(self, schedule=_build(Schedule, self.schedule, "schedule"))
        if isinstance(self.regularization, Mapping):
            _set(self, regularization=_build(Regularization, self.regularization, "regularization"))
        for name, cls in (("schedule", Schedule), ("regularization", Regularization)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name} must be a {cls.__name__} or a dict of its fields; "
                                 f"received {getattr(self, name)!r}")
        if self.schedule.kind == "cosine" and self.schedule.min_learning_rate > self.learning_rate:
            raise ValueError(f"the cosine schedule's min_learning_rate ({self.schedule.min_learning_rate}) is above "
                             f"learning_rate ({self.learning_rate}); it must be at most the peak")
        _set(self, optimizer_options=_optimizer_options(self.optimizer_options))

    def __hash__(self):
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        return _build(cls, data, "recipe")

    @classmethod
    def from_file(cls, path: str | os.PathLike, **changes: Any) -> "Recipe":
        """Reads a recipe from a JSON file (the format `to_dict` writes), with ``changes`` to its fields
        made before it is checked (so they may mend the file's values)."""
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"recipe file {os.fspath(path)!r} is not valid JSON: {err}") from err
        if not isinstance(data, Mapping):
            raise ValueError(f"recipe file {os.fspath(path)!r} must hold a JSON object; received {type(data).__name__}")
        try:
            return cls.from_dict({**data, **changes})
        except ValueError as err:
            raise ValueError(f"recipe file {os.fspath(path)!r}: {err}") from None

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)


def _schedule_class():
    import tensorflow as tf
    import tf_keras as keras

    @keras.saving.register_keras_serializable(package="zoo")
    class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
        """`Schedule` as a Keras schedule: a pure function of the step, so resuming needs no state."""

        def __init__(self, learning_rate: float, steps_per_epoch: int, epochs: int, kind: str = "constant",
                     warmup_epochs: float = 0.0, milestones=(), gamma: float = 0.1, min_learning_rate: float = 0.0):
            self.learning_rate, self.steps_per_epoch, self.epochs = float(learning_rate), int(steps_per_epoch), epochs
            self.kind, self.warmup_epochs, self.milestones = kind, float(warmup_epochs), tuple(milestones)
            self.gamma, self.min_learning_rate = float(gamma), float(min_learning_rate)

        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            total = float(self.steps_per_epoch * self.epochs)
            warmup = self.warmup_epochs * self.steps_per_epoch
            lr = tf.constant(self.learning_rate, tf.float32)
            if self.kind == "step" and self.milestones:
                passed = tf.add_n([tf.cast(step >= m * self.steps_per_epoch, tf.float32) for m in self.milestones])
                lr = lr * tf.pow(self.gamma, passed)
            elif self.kind == "cosine":
                progress = tf.clip_by_value((step - warmup) / max(total - warmup, 1.0), 0.0, 1.0)
                lr = self.min_learning_rate + (lr - self.min_learning_rate) * 0.5 * (1 + tf.cos(math.pi * progress))
            if warmup > 0:
                lr = lr * tf.minimum(1.0, (step + 1.0) / warmup)
            return lr

        def get_config(self):
            return {"learning_rate": self.learning_rate, "steps_per_epoch": self.steps_per_epoch,
                    "epochs": self.epochs, "kind": self.kind, "warmup_epochs": self.warmup_epochs,
                    "milestones": self.milestones, "gamma": self.gamma, "min_learning_rate": self.min_learning_rate}

    return WarmupSchedule


def __getattr__(name):  # WarmupSchedule needs TensorFlow; build it on first use
    if name == "WarmupSchedule":
        cls = _schedule_class()
        globals()["WarmupSchedule"] = cls
        return cls
    raise AttributeError(name)


def make_schedule(recipe: Recipe, steps_per_epoch: int):
    """The recipe's learning rate as a Keras schedule (or a float for a constant one without warmup)."""
    s = recipe.schedule
    if s.kind == "constant" and not s.warmup_epochs:
        return recipe.learning_rate
    from training import recipes

    return recipes.WarmupSchedule(recipe.learning_rate, steps_per_epoch, recipe.epochs, kind=s.kind,
                                  warmup_epochs=s.warmup_epochs, milestones=s.milestones, gamma=s.gamma,
                                  min_learning_rate=s.min_learning_rate)
