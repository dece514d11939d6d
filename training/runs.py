"""Training runs on disk: train, resume, evaluate and report a zoo model the same way from anywhere.

The ``zoo train``/``finetune``/``eval`` commands and ``make demo`` are thin layers over these functions.
A run directory holds what `training.fit` writes (``checkpoints/``, ``recipe.json``, ``state.json``,
``log.csv``, ``logs/``, ``best_weights.h5``, ``final_weights.h5``) and:

- ``run.json``: what was trained on what, a `RunSpec` (model, architecture options, input shape,
  classes, dataset, limit; for fine-tuning the source weights and ``train_layers``);
- ``command.txt``: the command lines that trained it, one per invocation: the first started the
  run, any later ones resumed it;
- ``eval.json``, ``confusion_matrix.png``, ``curves.png``: the final model on the test split.

Resuming is explicit here, where `training.fit` resumes whenever ``out_dir`` holds a checkpoint:
``train_run(..., resume=False)`` refuses a directory that holds a run, so that nobody resumes by
accident, and ``resume=True`` requires one of the same `RunSpec` and recipe. A resume may raise
``recipe.epochs`` (train a finished run longer; a cosine or step schedule is then recomputed for the
new length from the step reached) and change ``recipe.steps_per_execution`` (when callbacks run, not
what the steps compute): `training.loop.RESUMABLE_CHANGES`.

    >>> spec = RunSpec(model="resnet20", dataset="digits", options={"stage_depths": (1, 1, 1)})
    >>> run = train_run(spec, recipe=Recipe(epochs=1), out_dir="runs/digits")  # doctest: +SKIP
    >>> run.evaluation.accuracy, run.files["curves"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, Mapping, Sequence

import zoo

import numpy as np
import tensorflow as tf
import tf_keras as keras

from training.data import DatasetInfo, load_dataset, load_epochs
from training.evaluation import EvalResult, evaluate
from training.loop import (BEST_WEIGHTS, CHECKPOINT_DIR, FINAL_WEIGHTS, RECIPE_FILE, STATE_FILE, FitResult,
                           check_resume, fit, write_json)
from training.recipes import Recipe
from zoo._checks import as_int, check_sizes, tuples

__all__ = [
    "COMMAND_FILE",
    "CONFUSION_PNG",
    "CURVES_PNG",
    "EVAL_FILE",
    "RUN_FILE",
    "RunResult",
    "RunSpec",
    "SavedRun",
    "build_model",
    "evaluate_weights",
    "load_recipe",
    "per_class_table",
    "run_file",
    "saved_run",
    "source_options",
    "spec_beside",
    "train_run",
]

RUN_FILE = "run.json"
COMMAND_FILE = "command.txt"
EVAL_FILE = "eval.json"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "curves.png"

EVAL_BATCH_SIZE = 256


# A fine-tuning source's classes when nothing says: the shipped weights are Fashion-MNIST's 10 classes.
DEFAULT_SOURCE_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """The model and data of a run: everything but the recipe.

    Attributes:
        model: a registered model name (``zoo list``).
        dataset: a dataset name `training.load_dataset` accepts.
        options: the model's architecture options (``zoo info NAME`` lists them).
        input_shape: the model's ``(height, width, channels)``; ``None`` means the dataset's image
            shape. A different height and width resizes the images; the channels must agree.
        num_classes: the classifier's size; ``None`` means the dataset's number of classes.
        limit: use only the first ``limit`` examples of each split (quick runs).
        source_weights: fine-tuning: the weights file of the source model, whose classifier has
            ``source_classes`` outputs and is replaced (`training.finetune`) by a new one.
        source_classes: fine-tuning: the source model's number of classes; ``None`` means
            `DEFAULT_SOURCE_CLASSES` (10, the classes of every shipped weights' Fashion-MNIST) when the
            source weights have no ``run.json`` or metadata that says.
        train_layers: fine-tuning: ``"head"``, ``"last:N"`` or ``"all"`` (see `training.finetune`).
        teacher: shipped pretrained weights (``ARCH.TAG``, ``zoo list --pretrained``) to distill from: the
            model learns their softened outputs besides the labels (`training.distill.Distiller`).
            Same input shape, classes and normalization as this run's.

    Example:
        >>> spec = RunSpec(model="resnet20", dataset="fashion_mnist", options={"stage_depths": (2, 2, 2)})
        >>> spec.resolve().input_shape, spec.resolve().num_classes
        ((28, 28, 1), 10)
    """

    model: str
    dataset: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    input_shape: tuple[int, int, int] | None = None
    num_classes: int | None = None
    limit: int | None = None
    source_weights: str | None = None
    source_classes: int | None = None
    train_layers: str | None = None
    teacher: str | None = None

    def __post_init__(self):
        for field in ("model", "dataset"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ValueError(f"{field} must be a non-empty name; received {getattr(self, field)!r}")
        object.__setattr__(self, "options", dict(self.options))
        if self.input_shape is not None:
            shape = check_sizes("input_shape", self.input_shape, ("height", "width", "channels"))
            object.__setattr__(self, "input_shape", shape)
        for field in ("num_classes", "limit", "source_classes"):
            value = getattr(self, field)
            if value is not None and as_int(value, minimum=1) is None:
                raise ValueError(f"{field} must be a positive int or None; received {value!r}")
            object.__setattr__(self, field, None if value is None else int(value))
        if self.source_weights is not None:
            object.__setattr__(self, "source_weights", os.fspath(self.source_weights))
        if (self.train_layers is None) != (self.source_weights is None):
            raise ValueError("fine-tuning needs both source_weights and train_layers (or neither); received "
                             f"source_weights={self.source_weights!r}, train_layers={self.train_layers!r}")

    @property
    def is_finetune(self) -> bool:
        return self.source_weights is not None

    def resolve(self) -> "RunSpec":
        """This spec with ``input_shape`` and ``num_classes`` filled in from the dataset, checked against it.

        Raises:
            ValueError: an unknown dataset, channels that differ from the dataset's, or fewer classes
                than the dataset has.
        """
        info = _dataset_info(self.dataset)
        input_shape = self.input_shape or info.image_shape
        if input_shape[2] != info.image_shape[2]:
            raise ValueError(f"input_shape {input_shape} has {input_shape[2]} channel(s) but {self.dataset!r} images "
                             f"have {info.image_shape[2]} ({'x'.join(map(str, info.image_shape))}); the height and "
                             "width may differ (images are resized), the channels may not")
        num_classes = self.num_classes or info.num_classes
        if num_classes < info.num_classes:
            raise ValueError(f"num_classes={num_classes} is fewer than the {info.num_classes} classes of "
                             f"{self.dataset!r}; use at least {info.num_classes}")
        if self.teacher is not None:
            _check_teacher(self.teacher, tuple(input_shape), num_classes, info)
        source_classes = self.source_classes or (DEFAULT_SOURCE_CLASSES if self.is_finetune else None)
        return dataclasses.replace(self, input_shape=tuple(input_shape), num_classes=num_classes,
                                   source_classes=source_classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run field(s) {', '.join(unknown)}. Accepted: {', '.join(sorted(known))}")
        data = dict(data)
        if data.get("input_shape") is not None:
            data["input_shape"] = tuple(data["input_shape"])
        data["options"] = {k: tuples(v) for k, v in (data.get("options") or {}).items()}
        return cls(**data)

    def _image_size(self) -> tuple[int, int] | None:
        """``image_size`` for `load_dataset`: the model's height and width when they differ from the data's."""
        native = _dataset_info(self.dataset).image_shape
        return None if self.input_shape is None or self.input_shape[:2] == native[:2] else self.input_shape[:2]

    def data(self, split: str, *, batch_size: int, augment: str | None = None, seed: int = 0,
             shuffle: bool | None = None) -> Callable[[int], tf.data.Dataset]:
        """A function ``epoch -> tf.data.Dataset`` of this run's split, deterministic in ``epoch`` (as `fit` needs)."""
        return load_epochs(self.dataset, split, batch_size=batch_size, augment=augment, seed=seed, shuffle=shuffle,
                           limit=self.limit, image_size=self._image_size())


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """What a run directory holds: its spec (``None`` if it has no ``run.json``), recipe and progress."""

    out_dir: str
    spec: RunSpec | None
    recipe: Recipe
    epochs_done: int

    @property
    def finished(self) -> bool:
        return self.epochs_done >= self.recipe.epochs

    def describe(self) -> str:
        what = f"{self.spec.model} on {self.spec.dataset}, " if self.spec else ""
        return f"{what}{self.epochs_done}/{self.recipe.epochs} epochs{' (finished)' if self.finished else ''}"


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What `train_run` returns: the fit, the final model's evaluation on the test split, the files written."""

    spec: RunSpec
    fit: FitResult
    evaluation: EvalResult
    files: Mapping[str, str]


def saved_run(out_dir: str | os.PathLike) -> SavedRun | None:
    """The run in ``out_dir``, or ``None`` when it holds no checkpoint (nothing to resume).

    Example:
        >>> saved_run("runs/r20").describe()  # doctest: +SKIP
        'resnet20 on fashion_mnist, 2/2 epochs (finished)'
    """
    out_dir = os.fspath(out_dir)
    recipe_path = os.path.join(out_dir, RECIPE_FILE)
    if not (tf.train.latest_checkpoint(os.path.join(out_dir, CHECKPOINT_DIR)) and os.path.exists(recipe_path)):
        return None
    state = _read_json(os.path.join(out_dir, STATE_FILE)) or {}
    spec_data = _read_json(os.path.join(out_dir, RUN_FILE))
    return SavedRun(out_dir=out_dir, spec=None if spec_data is None else RunSpec.from_dict(spec_data),
                    recipe=Recipe.from_file(recipe_path), epochs_done=len(state.get("history", ())))


def shipped_recipes() -> dict[str, str]:
    """The recipes the package ships (``training/recipes/``, the pretrained weights' own): name -> file."""
    from importlib import resources

    folder = resources.files("training") / "recipes"
    return {p.name[: -len(".json")]: str(p) for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".json")}


def load_recipe(path: str | os.PathLike | None = None, **overrides: Any) -> Recipe:
    """A `Recipe` from a JSON file (or the defaults), with the given fields replaced; ``None`` values are ignored.

    ``path`` may also name a recipe the package ships (`shipped_recipes`), as ``resnet20_fashion_mnist``
    or as the repository path the pretrained weights' commands give (``training/recipes/...json``),
    so those commands work from an installed package too.

    Raises:
        ValueError: the file is missing, not JSON, or has unknown or invalid fields.

    Example:
        >>> load_recipe(None, epochs=2, learning_rate=None).epochs
        2
        >>> load_recipe("resnet20_fashion_mnist").optimizer
        'momentum'
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}  # applied before the checks: they may mend
    if path is None:
        return Recipe.from_dict(overrides)
    path = os.fspath(path)
    name = os.path.basename(path)[: -len(".json")] if path.endswith(".json") else path
    shipped = shipped_recipes()
    if not os.path.isfile(path) and name in shipped and path in (name, f"training/recipes/{name}.json"):
        path = shipped[name]
    try:
        return Recipe.from_file(path, **overrides)
    except FileNotFoundError:
        raise ValueError(f"no recipe file {path!r}. Accepted: a recipe's JSON file (a run's recipe.json) or a "
                         f"shipped recipe: {', '.join(shipped)}") from None
    except OSError as err:
        raise ValueError(f"cannot read recipe file {os.fspath(path)!r}: {err.strerror or err}") from err
    except TypeError as err:
        raise ValueError(f"recipe file {os.fspath(path)!r} is invalid: {err}") from err


def build_model(spec: RunSpec, *, weights: str | os.PathLike | None = None) -> keras.Model:
    """The spec's model: `zoo.create_model`, or for fine-tuning the source model with its weights and a new head.

    With ``weights``, a weights file of a run of this spec (its ``final_weights.h5``, say), the model is
    built as that run built it and filled from the file (checked as `zoo.create_model` checks, every layer
    filled). A fine-tuning run's source weights are then not loaded: shipped ones only fix the architecture
    (`source_options`), and a source file need not exist any more. Which layers train is as the run left
    them (a fine-tuning run's frozen layers stay frozen).

    Example:
        >>> build_model(RunSpec(model="resnet20", dataset="digits")).input_shape
        (None, 8, 8, 1)
    """
    return _build_model(spec, weights, load_source=weights is None)


def _build_model(spec: RunSpec, weights: str | os.PathLike | None, *, load_source: bool) -> keras.Model:
    """`build_model`; a fine-tuning run's source weights are loaded only with ``load_source``. The run's own
    weights replace every value of its model, as a fine-tuning source's weights replace those of its source."""
    spec = spec.resolve()
    if not spec.is_finetune:
        return zoo.create_model(spec.model, weights=None if weights is None else os.fspath(weights),
                                input_shape=spec.input_shape, num_classes=spec.num_classes, **spec.options)
    from training.transfer import finetune
    from zoo._registry import load_weights

    spec = source_options(spec)  # the architecture shipped source weights fix, written out
    source_weights = spec.source_weights if load_source else None
    upstream = spec_beside(spec.source_weights)
    if upstream is not None and upstream.is_finetune and upstream.model == spec.model:
        # fine-tuned again: the source is that run's model (its head need not be the family's)
        source = _build_model(dataclasses.replace(upstream, input_shape=spec.input_shape, teacher=None),
                              source_weights, load_source=False)
        source.trainable = True
    else:
        source = zoo.create_model(spec.model, weights=source_weights, input_shape=spec.input_shape,
                                  num_classes=spec.source_classes, **spec.options)
    model = finetune(source, spec.num_classes, train_layers=spec.train_layers)
    if weights is not None:
        load_weights(model, spec.model, os.fspath(weights))
    return model


def spec_beside(weights: str | os.PathLike | None) -> RunSpec | None:
    """The spec in the ``run.json`` of the run a weights file came from (`run_file`), as the run wrote it;
    None when there is none (shipped weights, a file on its own)."""
    if not isinstance(weights, (str, os.PathLike)):
        return None
    path = run_file(weights)
    return RunSpec.from_dict(_read_json(path)) if os.path.isfile(path) else None


def run_file(weights: str | os.PathLike) -> str:
    """Where the ``run.json`` of the run a weights file came from would be: beside a run's final or best
    weights, above one of its checkpoints (``out_dir/checkpoints/ckpt-N``, or its ``.index`` file)."""
    weights = os.fspath(weights)
    folder = os.path.dirname(os.path.abspath(weights))  # "ckpt-4" given from inside checkpoints/ too
    if os.path.basename(folder) == CHECKPOINT_DIR and (weights.endswith(".index")
                                                       or os.path.exists(f"{weights}.index")):
        return os.path.join(os.path.dirname(folder), RUN_FILE)
    return os.path.join(os.path.dirname(weights), RUN_FILE)


def _shipped(arch: str, weights: str | None):
    """The shipped weights of ``arch`` that ``weights`` names (`zoo._weights.PretrainedWeights`), else None: a
    file, even one whose name looks like ``arch.tag`` (``resnet20.h5``) and is gone from where it was recorded."""
    from zoo._weights import resolve

    try:
        return resolve(arch, weights)
    except ValueError:
        return None


def source_options(spec: RunSpec) -> RunSpec:
    """``spec`` with the architecture options of its model written out: for fine-tuning from shipped weights,
    the options those weights apply (their own, and the stem resolved at the size they were trained at,
    `zoo._weights.check_options`), which ``run.json`` does not record. A model built from the result, e.g.
    a source for fine-tuning again at the run's input size, is the run's network."""
    meta = _shipped(spec.model, spec.source_weights) if spec.is_finetune else None
    if meta is None:
        return spec
    from zoo._registry import get_spec
    from zoo._weights import check_options

    return dataclasses.replace(spec, options=check_options(meta, get_spec(spec.model), spec.options))


def train_run(
    spec: RunSpec,
    *,
    recipe: Recipe,
    out_dir: str | os.PathLike,
    resume: bool = False,
    command: str | None = None,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> RunResult:
    """Trains the spec's model by ``recipe`` with `training.fit`, then evaluates it on the test split.

    Validation during training is the dataset's test split (with ``spec.limit``). Afterwards the final
    model's `EvalResult` goes to ``eval.json``, with ``confusion_matrix.png`` and ``curves.png``.

    Args:
        spec: the model and data.
        recipe: the `Recipe`.
        out_dir: the run directory.
        resume: ``False`` refuses an ``out_dir`` that holds a run; ``True`` requires one, of the same
            spec and recipe except that ``recipe.epochs`` may be larger and ``steps_per_execution`` other.
        command: the command line, appended to ``command.txt``.
        verbose: Keras' verbosity.
        callbacks: extra Keras callbacks.

    Returns:
        `RunResult`.

    Raises:
        ValueError: a bad spec or recipe, or ``out_dir`` does not fit ``resume``.
        training.TrainingDiverged: the loss became NaN or Inf.

    Example:
        >>> run = train_run(RunSpec(model="resnet20", dataset="fashion_mnist"),
        ...                 recipe=Recipe(epochs=2), out_dir="runs/r20")  # doctest: +SKIP
    """
    out_dir = os.fspath(out_dir)
    spec = spec.resolve()
    _check_recipe(recipe)
    _require_matplotlib()  # before hours of training, not after
    saved = saved_run(out_dir)
    if saved is not None and not resume:
        raise ValueError(f"{out_dir!r} holds a run ({saved.describe()}); resume it (resume=True) or use a new out_dir")
    if saved is None and resume:
        raise ValueError(f"nothing to resume: {out_dir!r} holds no run (no checkpoint under "
                         f"{os.path.join(out_dir, CHECKPOINT_DIR)})")
    if saved is not None:
        _check_resume(saved, spec, recipe)

    keras.utils.set_random_seed(recipe.seed)  # the initialization; fit seeds again for the data
    model = build_model(spec)
    if spec.teacher is not None:
        from training.distill import Distiller

        meta = zoo.get_weights_info(spec.teacher)
        model = Distiller(model, zoo.strip_training_outputs(zoo.create_model(meta.arch, weights=meta.tag)))

    os.makedirs(out_dir, exist_ok=True)
    write_json(os.path.join(out_dir, RUN_FILE), spec.to_dict())
    if command is not None:
        with open(os.path.join(out_dir, COMMAND_FILE), "a") as f:
            f.write(command.rstrip("\n") + "\n")

    val = spec.data("test", batch_size=EVAL_BATCH_SIZE, shuffle=False)
    fitted = fit(model, spec.data("train", batch_size=recipe.batch_size, augment=recipe.augment, seed=recipe.seed),
                 recipe=recipe, val=val, out_dir=out_dir, verbose=verbose, callbacks=callbacks)
    trained = fitted.model.student if spec.teacher is not None else fitted.model
    evaluation = evaluate(trained, val(0), class_names=_class_names(spec))
    files = _write_report(evaluation, out_dir, about={"model": spec.model, "dataset": spec.dataset, "split": "test",
                                                       "weights": os.path.join(out_dir, FINAL_WEIGHTS)},
                          history=fitted.history)
    files["final_weights"] = fitted.final_weights
    if os.path.exists(os.path.join(out_dir, BEST_WEIGHTS)):
        files["best_weights"] = fitted.best_weights
    return RunResult(spec=spec, fit=fitted, evaluation=evaluation, files=files)


def evaluate_weights(
    spec: RunSpec,
    *,
    weights: str | os.PathLike,
    split: str = "test",
    batch_size: int = EVAL_BATCH_SIZE,
    out_dir: str | os.PathLike | None = None,
) -> EvalResult:
    """Builds the spec's model with ``weights`` (`build_model`: a fine-tuning spec's as its run built it) and
    evaluates it on a split of the spec's dataset.

    With ``out_dir``, writes ``eval.json`` and ``confusion_matrix.png`` there.

    Raises:
        ValueError: a bad spec, or weights that are missing or do not fit the model.

    Example:
        >>> spec = RunSpec(model="resnet20", dataset="fashion_mnist")
        >>> print(evaluate_weights(spec, weights="runs/r20/final_weights.h5").summary())  # doctest: +SKIP
    """
    spec = spec.resolve()
    model = build_model(spec, weights=weights)
    result = evaluate(model, spec.data(split, batch_size=batch_size, shuffle=False)(0), class_names=_class_names(spec))
    if out_dir is not None:
        _write_report(result, os.fspath(out_dir), about={"model": spec.model, "dataset": spec.dataset,
                                                         "split": split, "weights": os.fspath(weights)})
    return result


def per_class_table(result: EvalResult) -> str:
    """Per-class accuracy as an aligned text table, one row a class.

    Example:
        >>> print(per_class_table(result))  # doctest: +SKIP
        class        accuracy  examples
        T-shirt/top     86.5%      1000
        ...
    """
    counts = result.confusion_matrix.sum(axis=1)
    width = max(len("class"), *(len(n) for n in result.class_names))
    lines = [f"{'class':<{width}}  accuracy  examples"]
    for name, accuracy, count in zip(result.class_names, result.per_class_accuracy, counts):
        shown = "-" if math.isnan(accuracy) else f"{accuracy:.1%}"
        lines.append(f"{name:<{width}}  {shown:>8}  {int(count):>8}")
    return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------------------


def _dataset_info(name: str) -> DatasetInfo:
    # The split is held in memory by load_dataset's caches, so asking again is cheap.
    return load_dataset(name, "test", batch_size=1, limit=1)[1]


def _check_teacher(name: str, input_shape: tuple[int, int, int], num_classes: int, info: DatasetInfo) -> None:
    try:
        meta = zoo.get_weights_info(name)
    except (KeyError, ValueError) as error:
        raise ValueError(f"teacher {name!r} is not shipped pretrained weights ({error}); see zoo.list_pretrained() or "
                         "'zoo list --pretrained'") from None
    if tuple(meta.input.shape) != input_shape or meta.head.num_classes != num_classes:
        raise ValueError(f"teacher {meta.name} takes {'x'.join(map(str, meta.input.shape))} and predicts "
                         f"{meta.head.num_classes} classes; this run's model takes {'x'.join(map(str, input_shape))} "
                         f"and predicts {num_classes}: they must agree")
    if not (np.allclose(meta.input.mean, info.mean) and np.allclose(meta.input.std, info.std)):
        raise ValueError(f"teacher {meta.name} normalizes with mean {meta.input.mean}, std {meta.input.std}; "
                         f"{info.name!r} with mean {info.mean}, std {info.std}: it would see other inputs")


def _class_names(spec: RunSpec) -> tuple[str, ...] | None:
    """The dataset's class names, or None (indices) when the model has more outputs than the data has classes."""
    info = _dataset_info(spec.dataset)
    return info.class_names if spec.num_classes == info.num_classes else None


def _require_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("the run's plots need matplotlib: pip install matplotlib (or keras-zoo[dev])")


def _check_recipe(recipe: Recipe) -> None:
    """Fails before anything is written on names the loop would only reject at compile time."""
    from training.augment import get_augment
    from training.optimizers import get_optimizer

    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a training.Recipe; received {type(recipe).__name__}")
    get_augment(recipe.augment)
    get_optimizer(recipe.optimizer, learning_rate=recipe.learning_rate, **recipe.optimizer_options)


def _check_resume(saved: SavedRun, spec: RunSpec, recipe: Recipe) -> None:
    if saved.spec is not None and saved.spec.to_dict() != spec.to_dict():
        old, new = saved.spec.to_dict(), spec.to_dict()
        changed = "; ".join(f"{k}: run has {old[k]!r}, received {new[k]!r}" for k in old if old[k] != new[k])
        raise ValueError(f"{saved.out_dir!r} holds a run of a different model or data ({changed}); resume with "
                         "the same ones or use a new out_dir")
    check_resume(saved.recipe, recipe, saved.out_dir, epochs_done=saved.epochs_done)  # what training.fit checks


def _write_report(result: EvalResult, out_dir: str, *, about: Mapping[str, Any],
                  history: Sequence[Mapping[str, float]] | None = None) -> dict[str, str]:
    from training.plots import confusion_matrix_png, training_curves_png

    os.makedirs(out_dir, exist_ok=True)
    files = {"eval": os.path.join(out_dir, EVAL_FILE)}
    write_json(files["eval"], {**about, **result.to_dict()})
    title = f"{about['model']} on {about['dataset']} {about['split']} (accuracy {result.accuracy:.1%})"
    files["confusion_matrix"] = str(confusion_matrix_png(result, os.path.join(out_dir, CONFUSION_PNG), title=title))
    if history:
        keys = sorted({k for logs in history for k in logs})
        curves = {k: [float(logs.get(k, math.nan)) for logs in history] for k in keys}
        files["curves"] = str(training_curves_png(curves, os.path.join(out_dir, CURVES_PNG)))
    return files


def _read_json(path: str) -> Any:
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
