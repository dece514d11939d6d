"""The shared training loop: `fit` a model on a dataset by a `Recipe`, resumably.

Built on ``Model.fit``, one call per epoch, so Keras' progress bar, TensorBoard and CSV logging work
unchanged, and any model that overrides ``train_step`` (a GAN, a VAE, a detector) trains here too.
What the loop adds:

- **Resume after a kill.** Checkpoints (model, optimizer, step) every ``recipe.checkpoint_every``
  steps and at each epoch's end. Epoch ``e``'s data is a pure function of ``(seed, e)``, so a
  resumed run rebuilds it, skips the batches already done and continues from the same step, not
  from the start of the epoch. TensorFlow writes a checkpoint fully before it updates the
  ``checkpoint`` index, and the loop's own files are written to a temporary name and renamed.
- **Divergence.** A NaN or Inf loss stops the run with `TrainingDiverged`; nothing from the bad
  step is saved, so the last checkpoint is the last good state.
- **Several steps per call** (``recipe.steps_per_execution``, 25 by default): the compiled step runs
  that many times per call, and callbacks, the progress bar, the NaN check and checkpoints run
  between calls (Keras' ``steps_per_execution``; a call never crosses an epoch's end).
- **Determinism** (``recipe.deterministic``): op determinism and seeds, for bitwise-equal runs.
- **Distribution**: any ``tf.distribute`` strategy; the model is built (or cloned) in its scope.
- **Mixed precision** (``recipe.mixed_precision``): the Keras policy, with float32 outputs (a
  subclassed model built by a function is built under the policy and kept as it is).
- **Weight penalties** (``recipe.regularization.l1``/``l2``): on every kernel of the model, or of
  the model a custom ``train_step`` trains, named by its ``penalized_model`` (a `Distiller`'s student).
- **Auxiliary heads**: training-only outputs (GoogLeNet) get the label too, weighted by
  ``recipe.aux_loss_weight``; metrics are reported on the primary output.

The order of operations: seed → build the model in the strategy's scope → penalties → compile →
restore the last checkpoint → per epoch: fit, record the epoch (history, best weights) as pending,
checkpoint, commit it → final weights.

    >>> import zoo, training
    >>> result = training.fit(lambda: zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10),
    ...                       "synthetic", recipe=training.Recipe(epochs=1), out_dir="/tmp/run")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
from typing import Callable, Sequence, Union

import tensorflow as tf
import tf_keras as keras

from training.data import augmented_by, from_arrays, is_array_pair, load_epochs
from training.evaluation import check_array_labels, check_array_pixels, label_outside
from training.recipes import Recipe, make_schedule
from zoo._files import atomic_path, write_json
from zoo._keras import copy_model

__all__ = ["FitResult", "TrainingDiverged", "check_resume", "epoch_data", "first_batch", "fit", "steps_per_epoch"]

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
RECIPE_FILE = "recipe.json"
BEST_WEIGHTS = "best_weights.h5"  # legacy h5: layers matched by name, the zoo's contract
PENDING_BEST_WEIGHTS = "best_weights.pending.h5"  # an epoch's, until its checkpoint is saved
FINAL_WEIGHTS = "final_weights.h5"

# A dataset name, a dataset, a function epoch -> dataset, or (images, labels) arrays.
DataSource = Union[str, tf.data.Dataset, Callable[[int], tf.data.Dataset], tuple]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or Inf; the run stopped and kept its last good checkpoint."""


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What `fit` returns.

    Attributes:
        history: one dict of logs per epoch (``loss``, ``accuracy``, ``val_loss``, ...).
        steps: optimizer steps taken in total (across resumes).
        best_val_accuracy: best validation accuracy seen, if there was validation data.
        out_dir: where checkpoints, logs and weights were written.
        resumed_from_step: the step the run resumed from (0 for a fresh run).
        model: the trained model (built in the strategy's scope, under the recipe's precision).
    """

    history: tuple[dict[str, float], ...]
    steps: int
    best_val_accuracy: float | None
    out_dir: str
    resumed_from_step: int
    model: keras.Model = dataclasses.field(repr=False, compare=False)

    @property
    def final_weights(self) -> str:
        return os.path.join(self.out_dir, FINAL_WEIGHTS)

    @property
    def best_weights(self) -> str:
        return os.path.join(self.out_dir, BEST_WEIGHTS)


# -- files, written atomically ----------------------------------------------------------------------


def _save_weights(model: keras.Model, path: str) -> None:
    with atomic_path(path) as tmp:
        model.save_weights(tmp)


# -- data -------------------------------------------------------------------------------------------


def _epoch_source(source: DataSource, split: str, recipe: Recipe, augment,
                  image_size: tuple[int, int] | None = None) -> Callable[[int], tf.data.Dataset]:
    """A function ``epoch -> dataset`` whose result depends only on ``(recipe.seed, epoch)``; a dataset
    name is loaded at ``image_size`` (the model's, `_image_size`) when given."""
    if isinstance(source, str):
        return load_epochs(source, split, batch_size=recipe.batch_size, augment=augment, seed=recipe.seed,
                           image_size=image_size)
    if isinstance(source, tf.data.Dataset):
        return lambda epoch: source
    if callable(source):
        return source
    if is_array_pair(source):
        with tf.device("/cpu:0"):  # converted once, not per epoch
            images, labels = (tf.convert_to_tensor(a) for a in source)

        def batches(epoch: int):
            return from_arrays(images, labels, batch_size=recipe.batch_size, augment=augment,
                               shuffle=split == "train", seed=recipe.seed, epoch=epoch)

        return augmented_by(batches, augment)
    received = (f"a {type(source).__name__} of {len(source)} item{'s' * (len(source) != 1)}"
                if isinstance(source, (tuple, list)) else type(source).__name__)
    raise TypeError(f"data must be a dataset name, a tf.data.Dataset, a function epoch -> dataset or a tuple "
                    f"(images, labels) of arrays; received {received}")


# What a resume may change. Training longer continues a run (a cosine schedule stretches to it); steps
# per execution changes when callbacks run, not what the steps compute.
RESUMABLE_CHANGES = ("epochs", "steps_per_execution")


def check_resume(previous: Recipe, recipe: Recipe, out_dir, *, epochs_done: int | None = None) -> None:
    """Raises unless ``recipe`` continues the run of ``previous`` in ``out_dir``: the same recipe, but for
    more epochs or other steps per execution (`RESUMABLE_CHANGES`).

    Raises:
        ValueError: naming each changed field with both values, or the epochs the run needs at least.
    """
    old, new = previous.to_dict(), recipe.to_dict()
    changed = sorted(k for k in new if old.get(k) != new[k] and k not in RESUMABLE_CHANGES)
    if changed:
        diffs = "; ".join(f"{k}: run has {old.get(k)!r}, received {new[k]!r}" for k in changed)
        raise ValueError(f"{os.fspath(out_dir)!r} holds a run of a different recipe (changed: {', '.join(changed)}): "
                         f"{diffs}. Resume with the same recipe (more epochs or other steps_per_execution allowed) "
                         "or use a new out_dir")
    if recipe.epochs < previous.epochs:
        done = "" if epochs_done is None else f" (already trained {epochs_done} epochs)"
        raise ValueError(f"{os.fspath(out_dir)!r} is a run of {previous.epochs} epochs{done}; received "
                         f"epochs={recipe.epochs}. Resume with epochs >= {previous.epochs}")


def _steps_in(dataset: tf.data.Dataset) -> int:
    steps = int(dataset.cardinality())
    if steps < 0:
        raise ValueError("the training dataset must have a known, finite number of batches (its cardinality is "
                         f"{'infinite' if steps == tf.data.INFINITE_CARDINALITY else 'unknown'}); "
                         "use .take(n) or .apply(tf.data.experimental.assert_cardinality(n))")
    if steps == 0:
        raise ValueError("the training dataset yields no batches; received a dataset of cardinality 0 (fewer "
                         "examples than one batch with drop_remainder=True, or an empty split). It must yield at "
                         "least one batch")
    return steps


def steps_per_epoch(train: DataSource, recipe: Recipe) -> int:
    """Batches per epoch of ``train`` as `fit` will read it by ``recipe`` (e.g. for a pruning schedule).

    Example:
        >>> steps_per_epoch("digits", Recipe(batch_size=128))  # doctest: +SKIP
        12
    """
    return _steps_in(_epoch_source(train, "train", recipe, recipe.augment)(0))


def epoch_data(train: DataSource, recipe: Recipe, *, model: keras.Model | None = None
               ) -> Callable[[int], tf.data.Dataset]:
    """The function ``epoch -> tf.data.Dataset`` that `fit` reads ``train`` through by ``recipe`` for
    ``model`` (a dataset name is shuffled and augmented as in training and loaded at the model's image
    size), e.g. to take a few steps of each epoch."""
    return _epoch_source(train, "train", recipe, recipe.augment, None if model is None else _image_size(model))


def first_batch(train: DataSource, recipe: Recipe, *, model: keras.Model | None = None):
    """The first batch `fit` will read from ``train`` by ``recipe`` for ``model`` (`epoch_data`), e.g. to
    calibrate a model before training it."""
    return next(iter(epoch_data(train, recipe, model=model)(0)))


def _label_every_output(model: keras.Model, dataset: tf.data.Dataset) -> tf.data.Dataset:
    n = len(model.outputs or ())  # a subclassed model (custom train_step) labels its own outputs
    if n <= 1:
        return dataset
    return dataset.map(lambda x, y: (x, tuple([y] * n)), num_parallel_calls=1, deterministic=True)


# -- model ------------------------------------------------------------------------------------------


def _with_policy(model: keras.Model, policy: str) -> keras.Model:
    """Clones a float32 functional model under a mixed-precision policy, outputs kept in float32."""
    output_layers = {t._keras_history.layer.name for t in model.outputs}

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in output_layers else policy
        return layer.__class__.from_config(config)

    return copy_model(model, clone_function=clone)


def _build_model(model, strategy: tf.distribute.Strategy, recipe: Recipe) -> keras.Model:
    with strategy.scope():
        if isinstance(model, keras.Model):
            built = model
            if strategy is not tf.distribute.get_strategy() or recipe.mixed_precision:
                # Variables must be created in the strategy's scope: clone there (same weights).
                if not model._is_graph_network:
                    raise TypeError(f"a built {type(model).__name__} (subclassed) cannot be cloned into a "
                                    "distribution strategy or mixed-precision policy; pass a function building it")
                built = copy_model(model)
        elif callable(model):
            built = model()
        else:
            raise TypeError(f"model must be a tf_keras.Model or a function returning one; received "
                            f"{type(model).__name__}")
        if not isinstance(built, keras.Model):
            raise TypeError(f"the model function returned {type(built).__name__}, not a tf_keras.Model")
        # A subclassed model has no outputs to check: built under the policy, it is kept as it is.
        if recipe.mixed_precision and (built.compute_dtype == "float32"
                                       or any(o.dtype != tf.float32 for o in built.outputs or ())):
            if not built._is_graph_network:
                raise ValueError(f"the model function returned a {type(built).__name__} (subclassed) computing in "
                                 f"float32; the mixed-precision policy {recipe.mixed_precision!r} can only be "
                                 "applied to it by building its layers inside the function, where the loop sets "
                                 "the policy")
            built = _with_policy(built, recipe.mixed_precision)
    return built


def _resumable_random_generators(model: keras.Model, seed: int) -> dict[str, tf.random.Generator]:
    """Gives every random layer (Dropout, stochastic depth, drop-path) a seeded, stateful generator.

    Keras' default (legacy) random ops keep their state inside the kernels, where no checkpoint
    reaches it: a resumed run would repeat the first steps' dropout masks. A ``tf.random.Generator``
    keeps its state in a variable, which the loop checkpoints with the model. Call in the strategy's
    scope, before the model is traced for training.
    """
    from tf_keras.src import backend

    generators = {}
    for index, layer in enumerate(model.submodules):
        rng = getattr(layer, "_random_generator", None)
        if not isinstance(rng, backend.RandomGenerator):
            continue
        if rng._rng_type != backend.RandomGenerator.RNG_STATEFUL:
            rng = backend.RandomGenerator(seed=seed * 100_003 + index, rng_type=backend.RandomGenerator.RNG_STATEFUL)
            rng._maybe_init()
            layer._random_generator = rng
        generators[layer.name] = rng._generator
    return generators


def _has_custom_train_step(model: keras.Model) -> bool:
    return type(model).train_step is not keras.Model.train_step


def _image_size(model: keras.Model) -> tuple[int, int] | None:
    """``(height, width)`` of the images the model (or the model its ``train_step`` trains, `_penalized`)
    takes, for loading a dataset name at that size; None when it is not one image input of known size."""
    inputs = getattr(_penalized(model), "inputs", None)
    if not inputs or len(inputs) != 1 or inputs[0].shape.rank != 4:
        return None
    height, width = inputs[0].shape[1:3]
    return (int(height), int(width)) if height and width else None


def _penalized(model: keras.Model) -> keras.Model:
    """The model whose kernels get the recipe's L1/L2 penalty.

    A model with its own ``train_step`` that trains a wrapped model names it ``penalized_model``
    (`training.distill.Distiller`: its student, not the frozen teacher), and its ``train_step`` adds
    that model's ``losses`` to the loss. Any other model is penalized itself.
    """
    if _has_custom_train_step(model):
        return getattr(model, "penalized_model", model)
    return model


def _compile(model: keras.Model, recipe: Recipe, steps_per_epoch: int, *, one_hot: bool = False) -> None:
    from training.optimizers import get_optimizer

    optimizer = get_optimizer(recipe.optimizer, learning_rate=make_schedule(recipe, steps_per_epoch),
                              **recipe.optimizer_options)
    common = dict(optimizer=optimizer, steps_per_execution=recipe.steps_per_execution)
    if _has_custom_train_step(model):
        model.compile(**common)
        return
    from zoo._keras import outputs_logits

    logits = outputs_logits(model)  # False for softmax outputs: a layer's activation, or a Softmax layer
    smoothing = recipe.regularization.label_smoothing
    if one_hot:  # labels given as one-hot (or already smoothed) rows
        loss = keras.losses.CategoricalCrossentropy(from_logits=logits, label_smoothing=smoothing)
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    else:
        if smoothing:
            from training.regularizers import label_smoothing_loss

            loss = label_smoothing_loss(smoothing, from_logits=logits)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    names = model.output_names
    if names is None or len(names) == 1:  # None: a subclassed model
        model.compile(loss=loss, metrics=metrics, **common)
    else:
        model.compile(loss={n: loss for n in names},
                      loss_weights={n: 1.0 if i == 0 else recipe.aux_loss_weight for i, n in enumerate(names)},
                      metrics={names[0]: metrics}, **common)


# -- callbacks --------------------------------------------------------------------------------------


class _Checkpointer(keras.callbacks.Callback):
    """Checkpoints every N steps and at each epoch's end, stops on a non-finite loss before anything is saved.

    Keras calls it once per execution (``recipe.steps_per_execution`` steps), so it saves at the end
    of the first execution that reaches each multiple of N. It runs after the caller's callbacks, so
    a checkpoint holds the state they leave; an epoch's last step is saved at the epoch's end, after
    theirs (TFMOT's `UpdatePruningStep` re-masks the kernels there).

    An epoch's end is a two-phase commit around its checkpoint: ``prepare(logs)`` records the epoch
    as pending (its history entry and, if better, its weights), the checkpoint is saved, then
    ``commit(pending)`` makes it part of the run. The loop settles a pending epoch on resume: kept
    if the checkpoint holds it, dropped if not.
    """

    def __init__(self, manager: tf.train.CheckpointManager, every: int, steps_per_epoch: int,
                 prepare: Callable[[dict], dict], commit: Callable[[dict], None]):
        super().__init__()
        self.manager, self.every, self.steps_per_epoch = manager, every, steps_per_epoch
        self.prepare, self.commit = prepare, commit
        self.diverged: tuple[int, int, float] | None = None  # (first step of the execution, last step, loss)
        self.last_saved = -1
        self.previous = 0  # the step at the end of the last execution

    def _save(self, step: int) -> None:
        self.manager.save(checkpoint_number=step)
        self.last_saved = step

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_begin(self, logs=None):
        self.previous = self._step()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        step = self._step()
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = (self.previous + 1, step, float(loss))
            self.model.stop_training = True
            return
        if step // self.every > self.previous // self.every and step % self.steps_per_epoch != 0:
            self._save(step)
        self.previous = step

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return
        pending = self.prepare(logs or {})
        if self.last_saved != self._step():
            self._save(self._step())
        self.commit(pending)


class _Progbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting epochs of the whole run ("Epoch 2/3"), not of one fit call."""

    def __init__(self, epochs: int):
        super().__init__(count_mode="steps")
        self.total_epochs = epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.total_epochs})


# -- fit --------------------------------------------------------------------------------------------


def fit(
    model: keras.Model | Callable[[], keras.Model],
    train: DataSource,
    *,
    recipe: Recipe,
    val: DataSource | None = None,
    out_dir: str | os.PathLike,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int | str = "auto",
) -> FitResult:
    """Trains ``model`` on ``train`` by ``recipe``, resuming from ``out_dir`` if it holds a checkpoint.

    Args:
        model: a ``tf_keras.Model`` (functional, Sequential or subclassed; a subclassed one is
            called on the first batch if unbuilt, and its output is taken for logits) or a function
            building one. Pass a function when training under a distribution strategy or mixed
            precision, so that it is built in place (a built model is cloned there instead; a
            subclassed one cannot be).
        train: a dataset name for `training.data.load_dataset` (batched, shuffled and augmented
            per the recipe, resized to the model's input height and width), a function
            ``epoch -> tf.data.Dataset`` that is deterministic in its argument, a ``tf.data.Dataset``
            of ``(images, labels)`` batches, or a tuple ``(images, labels)`` of arrays (numpy or tensors,
            the images as the model takes them; batched, shuffled and augmented per the recipe by
            `training.data.from_arrays`). Labels are class ids (``[batch]`` or ``[batch, 1]``) or one-hot
            rows ``[batch, num_classes]`` (label smoothing applies to either). The recipe's ``batch_size``
            and ``augment`` apply to a dataset name and to arrays; a dataset or a function is read as it
            is batched and augmented (``recipe.augment`` is refused for it, unless a function says it
            applies it, `augmented_by`).
        recipe: the `Recipe`.
        val: validation data in the same forms (a name loads its ``"test"`` split), or None.
        out_dir: checkpoints, ``recipe.json``, ``state.json``, ``log.csv``, TensorBoard logs and
            the best and final weights go here. Running again on the same directory resumes.
        strategy: a ``tf.distribute`` strategy; the default strategy when None.
        callbacks: extra Keras callbacks.
        verbose: Keras' verbosity.

    Returns:
        `FitResult`; ``result.model`` is the trained model (``model`` itself unless it had to be
        cloned into a strategy's scope or a mixed-precision policy). Its history's ``loss`` and ``val_loss``
        include the recipe's weight penalty, as Keras reports them; `training.evaluate`'s loss (``eval.json``)
        is the data's alone. The epoch a run resumed in (``resumed_from_step``) reports its training loss and
        accuracy over the batches after the resume; its validation and the weights are as without the kill.

    Raises:
        TrainingDiverged: the loss became NaN or Inf.
        ValueError: ``out_dir`` holds a run of a different recipe or of another number of steps per
            epoch, the data is unusable (unbatched, images or labels of shapes the model does not take), or
            ``recipe.augment`` is set for data that does not apply it.
    """
    if (recipe.augment is not None and not isinstance(train, (str, tuple, list))  # arrays: augmented; others refused
            and getattr(train, "augment", None) != recipe.augment):
        kind = "a tf.data.Dataset" if isinstance(train, tf.data.Dataset) else "a function epoch -> dataset"
        raise ValueError(f"recipe.augment={recipe.augment!r} augments a dataset name, which fit loads; {kind} is read "
                         "as it is. Augment it yourself (training.augment.get_augment(...).apply; mark a function "
                         "that does with training.augmented_by), pass the dataset's name, or set augment=None")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    chief = strategy.extended.should_checkpoint  # the chief (worker 0 without one); True but multi-worker
    # Every worker of a multi-worker run checkpoints and logs (saving is collective); the chief's
    # files are the run's, the others go to a scratch folder each.
    work_dir = out_dir if chief else os.path.join(out_dir, f"worker-{strategy.cluster_resolver.task_id}")
    os.makedirs(work_dir, exist_ok=True)
    ckpt_dir = os.path.join(work_dir, CHECKPOINT_DIR)

    recipe_path = os.path.join(out_dir, RECIPE_FILE)
    if os.path.exists(recipe_path) and tf.train.latest_checkpoint(ckpt_dir):
        check_resume(Recipe.from_file(recipe_path), recipe, out_dir)

    from tensorflow.python.framework import config as tf_config  # disable_op_determinism is not public

    was_deterministic = tf_config.is_op_determinism_enabled()
    if recipe.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        with contextlib.ExitStack() as for_the_run:  # what _fit puts on the model for this run only
            return _fit(model, train, recipe=recipe, val=val, out_dir=out_dir, strategy=strategy,
                        callbacks=callbacks, verbose=verbose, chief=chief, work_dir=work_dir, ckpt_dir=ckpt_dir,
                        for_the_run=for_the_run)
    finally:  # op determinism is process-wide: leave it as it was
        if recipe.deterministic and not was_deterministic:
            tf_config.disable_op_determinism()


def _fit(model, train, *, recipe, val, out_dir, strategy, callbacks, verbose, chief, work_dir, ckpt_dir, for_the_run):
    keras.utils.set_random_seed(recipe.seed)
    previous_policy = keras.mixed_precision.global_policy()
    if recipe.mixed_precision:
        keras.mixed_precision.set_global_policy(recipe.mixed_precision)
    try:
        model = _build_model(model, strategy, recipe)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    for data, what in ((train, "the training data"), (val, "the validation data")):
        if is_array_pair(data):
            check_array_pixels(_penalized(model), data[0], what=what)
            if not _has_custom_train_step(model):  # its own train_step takes whatever labels it takes
                check_array_labels(_penalized(model), data[1], what=what)
    size = _image_size(model)
    train_for = _epoch_source(train, "train", recipe, recipe.augment, size)
    val_data = None if val is None else _epoch_source(val, "test", recipe, None, size)(0)
    first_epoch = train_for(0)
    steps = _steps_in(first_epoch)
    one_hot = _check_data(model, first_epoch, val_data)
    if chief:
        write_json(os.path.join(out_dir, RECIPE_FILE), recipe.to_dict())
    manager = _compile_and_restore(model, first_epoch, recipe, strategy, steps, one_hot=one_hot, ckpt_dir=ckpt_dir,
                                   for_the_run=for_the_run)
    start_step = int(model.optimizer.iterations.numpy())
    run = _RunState.load(model, out_dir, steps_per_epoch=steps, chief=chief,
                         restored=manager.latest_checkpoint is not None)
    run.settle(start_step)

    checkpointer = _Checkpointer(manager, recipe.checkpoint_every, steps, run.prepare, run.commit)
    all_callbacks = [
        *callbacks,
        checkpointer,
        keras.callbacks.CSVLogger(os.path.join(work_dir, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(work_dir, "logs"), write_graph=False, profile_batch=0),
    ]
    if verbose != 0:
        all_callbacks.append(_Progbar(recipe.epochs))
    for epoch in range(start_step // steps, recipe.epochs):
        _train_epoch(model, train_for, val_data, epoch, steps_per_epoch=steps, callbacks=all_callbacks,
                     verbose=verbose, manager=manager)
        if checkpointer.diverged is not None:
            first, step, loss = checkpointer.diverged
            where = f"at step {step}" if first == step else f"in steps {first}-{step} (one execution)"
            raise TrainingDiverged(
                f"loss became {loss} {where} (epoch {epoch + 1}); stopped. The last good checkpoint is "
                f"{manager.latest_checkpoint or 'none (diverged before the first one)'}. Lower the learning rate "
                f"(recipe.learning_rate={recipe.learning_rate}) or add warmup.")
    if chief:
        _save_weights(model, os.path.join(out_dir, FINAL_WEIGHTS))
    return FitResult(history=tuple(run.history), steps=int(model.optimizer.iterations.numpy()),
                     best_val_accuracy=run.best, out_dir=out_dir, resumed_from_step=start_step, model=model)


def _compile_and_restore(model, first_epoch, recipe, strategy, steps_per_epoch, *, one_hot, ckpt_dir, for_the_run
                         ) -> tf.train.CheckpointManager:
    """In the strategy's scope: builds a subclassed model, puts the recipe's weight penalty on for the run,
    compiles, and restores the last checkpoint of ``ckpt_dir`` if any; returns its manager."""
    with strategy.scope():
        if not model.built:  # a subclassed model: its variables exist once it is called (the penalties,
            model(next(iter(first_epoch))[0])  # the optimizer's slots and the checkpoint need them)
        if recipe.regularization.l1 or recipe.regularization.l2:
            from training.regularizers import weight_penalty

            # After the run (last: the penalty is off by then) Keras' compiled steps, which add it, are dropped.
            for_the_run.callback(_forget_compiled_steps, model)
            for_the_run.enter_context(weight_penalty(_penalized(model), l1=recipe.regularization.l1,
                                                     l2=recipe.regularization.l2))
        _compile(model, recipe, steps_per_epoch, one_hot=one_hot)
        model.optimizer.build(model.trainable_variables)
        generators = _resumable_random_generators(model, recipe.seed)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, random_generators=generators)
        manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=2)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    return manager


def _train_epoch(model, train_for, val_data, epoch: int, *, steps_per_epoch: int, callbacks, verbose, manager) -> None:
    """Runs ``Model.fit`` over what is left of epoch ``epoch`` (a resumed run skips the batches it trained on)."""
    done = int(model.optimizer.iterations.numpy()) - epoch * steps_per_epoch
    data = _label_every_output(model, train_for(epoch).skip(done))
    try:
        model.fit(data, epochs=epoch + 1, initial_epoch=epoch, validation_data=(
            None if val_data is None else _label_every_output(model, val_data)), callbacks=callbacks, verbose=verbose)
    except tf.errors.InvalidArgumentError as err:  # a graph dump, the point in its last line
        bad = _LABEL_OUT_OF_RANGE.search(str(err))
        if bad is None:
            raise
        raise ValueError(f"{label_outside(bad[1], bad[2])}, in epoch "
                         f"{epoch + 1}'s training or validation data; the last checkpoint is "
                         f"{manager.latest_checkpoint or 'none'}. Accepted: class ids 0 to num_classes - 1") from None


class _RunState:
    """The run's history and best validation accuracy, in ``state.json``, committed with the checkpoints.

    An epoch's entry (and its best weights) is first written as *pending* (`prepare`, before the epoch's
    checkpoint is saved) and then committed (`commit`, after it): a run killed between the two finds on
    resume whether the checkpoint was saved (`settle`) and commits or drops the entry accordingly.
    """

    def __init__(self, model, out_dir: str, state: dict, *, steps_per_epoch: int, chief: bool):
        self.model, self.chief, self.steps_per_epoch = model, chief, steps_per_epoch
        self.path = os.path.join(out_dir, STATE_FILE)
        self.best_path = os.path.join(out_dir, BEST_WEIGHTS)
        self.pending_path = os.path.join(out_dir, PENDING_BEST_WEIGHTS)
        self.history: list[dict[str, float]] = list(state["history"])
        self.best: float | None = state.get("best_val_accuracy")
        self.pending: dict | None = state.get("pending")

    @classmethod
    def load(cls, model, out_dir: str, *, steps_per_epoch: int, chief: bool, restored: bool) -> "_RunState":
        """The state of the run in ``out_dir`` if a checkpoint was ``restored``, else a new one; written back at
        once (before the first checkpoint, so a run stopped in its first epoch is checked on resume too).

        Raises:
            ValueError: the run has another number of steps per epoch.
        """
        path = os.path.join(out_dir, STATE_FILE)
        state = {"history": [], "best_val_accuracy": None}
        if restored and os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
            if state.get("steps_per_epoch", steps_per_epoch) != steps_per_epoch:
                raise ValueError(f"{out_dir!r} holds a run of {state['steps_per_epoch']} steps per epoch; this data "
                                 f"has {steps_per_epoch}: resume with the same data or use a new out_dir")
        if chief:
            write_json(path, {**state, "steps_per_epoch": steps_per_epoch})
        return cls(model, out_dir, state, steps_per_epoch=steps_per_epoch, chief=chief)

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def write(self, pending: dict | None = None) -> None:
        if self.chief:
            state = {"history": self.history, "best_val_accuracy": self.best, "step": self._step(),
                     "steps_per_epoch": self.steps_per_epoch}
            write_json(self.path, {**state, "pending": pending} if pending else state)

    def prepare(self, logs: dict) -> dict:
        """Records the epoch's ``logs`` as pending, its weights as the pending best if they are; before the
        epoch's checkpoint (`_Checkpointer`)."""
        entry = {k: float(v) for k, v in logs.items()}
        val_accuracy = _primary_val_accuracy(entry)
        pending = {"entry": entry, "step": self._step(),
                   "improved": val_accuracy is not None and (self.best is None or val_accuracy > self.best)}
        if pending["improved"] and self.chief:
            _save_weights(self.model, self.pending_path)
        self.write(pending)
        return pending

    def commit(self, pending: dict) -> None:
        """Makes a pending epoch part of the run; after its checkpoint."""
        self.history.append(pending["entry"])
        if pending["improved"]:
            self.best = _primary_val_accuracy(pending["entry"])
            if self.chief and os.path.exists(self.pending_path):
                os.replace(self.pending_path, self.best_path)
        self.write()

    def settle(self, restored_step: int) -> None:
        """Commits the epoch a run stopped between `prepare` and `commit` if its checkpoint (``restored_step``)
        was saved; drops it if not."""
        if not self.pending:
            return
        if restored_step >= self.pending["step"]:
            self.commit(self.pending)
        else:
            if self.chief and os.path.exists(self.pending_path):
                os.remove(self.pending_path)
            self.write()
        self.pending = None


def _check_data(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset | None) -> bool:
    """Refuses data ``model`` cannot train on, naming it, before anything is written (each case failed in
    the first step, in an AutoGraph trace); returns whether the labels are one-hot rows (else class ids)."""
    from training.evaluation import check_data

    checked = _penalized(model)
    labels = not _has_custom_train_step(model)  # its own train_step takes whatever labels it takes
    kinds = {what: check_data(checked, data, what=what, labels=labels)  # one-hot rows or class ids
             for data, what in ((train, "the training data"), (val, "the validation data")) if data is not None}
    if len(set(kinds.values())) > 1:  # one loss for both
        said = {what: "one-hot rows" if rows else "class ids" for what, rows in kinds.items()}
        raise ValueError(f"the training data has {said['the training data']} for labels and the validation data "
                         f"{said['the validation data']}; accepted: the same kind in both")
    return any(kinds.values())


def _forget_compiled_steps(model: keras.Model) -> None:
    """Makes Keras trace ``model``'s train and test steps again (they hold the losses it had when traced)."""
    model.train_function = model.test_function = None


_LABEL_OUT_OF_RANGE = re.compile(r"Received a label value of (-?\d+) which is outside the valid range of \[0, (\d+)\)")


def _primary_val_accuracy(logs: dict[str, float]) -> float | None:
    for key in logs:
        if key.startswith("val_") and key.endswith("accuracy"):
            return logs[key]
    return None
