"""Pretrained weights: their typed metadata, the registry of the weights that ship, verified loading.

Each pretrained entry is named ``arch.tag`` (``resnet20.fashion_mnist``); each architecture that ships
weights has exactly one default tag. An entry is two files in ``zoo/weights/`` (package data):

- ``<arch>.<tag>.h5``: the weights, as ``Model.save_weights`` writes them in the legacy HDF5 format;
  they are matched to a model by layer name (layer names are the weight-compatibility contract);
- ``<arch>.<tag>.json``: the metadata, pure data, a `PretrainedWeights` (``to_dict``/``from_dict``).

The registry reads the JSON files lazily, on first use, and checks them: an unknown architecture, a
file named other than its entry, a missing weights file or an architecture with no (or two) default
tags fails there. Loading (``zoo.create_model(name, weights=...)``) checks the file's size and sha256
before a single weight is read, applies the architecture options the weights were trained with
(their stem included, so they load at other input sizes; AlexNet's and VGG's flattening classifiers
only at the trained size, or with ``include_top=False``), and requires every weight-carrying layer
of the model to be filled from the file, but for a classifier of another ``num_classes``, which is
freshly initialized: a wrong sha256, a truncated file or another architecture raises
``ValueError``; nothing ever falls back to random weights.

`training.publish.publish_run` turns a finished ``zoo train`` run directory into an entry (``zoo publish``):
it re-evaluates the weights on the full test split and refuses when the run's ``eval.json`` disagrees. It
replaces the registry's files with `_replace_files`, all or none, which readers finish (`_finish_journal`).

    >>> import zoo
    >>> len(zoo.list_pretrained()), zoo.list_pretrained()[:2]
    (11, ['alexnet_2012.fashion_mnist', 'densenet_bc100_k12.fashion_mnist'])
    >>> info = zoo.get_weights_info("resnet20")  # the default tag
    >>> info.name, info.input.shape, info.head.class_names[:2]
    ('resnet20.fashion_mnist', (28, 28, 1), ('T-shirt/top', 'Trouser'))
    >>> model = zoo.create_model("resnet20", weights="DEFAULT")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo._checks import check_int, check_sizes, tuples
from zoo._files import atomic_path, locked, write_bytes, write_json

__all__ = [
    "DEFAULT",
    "PUBLISHED_FASHION_MNIST",
    "PretrainedWeights",
    "Provenance",
    "WeightsHead",
    "WeightsInput",
    "WeightsMetrics",
    "WeightsSource",
    "get_weights_info",
    "list_pretrained",
    "sample_images",
    "write_sample_images",
]

DEFAULT = "DEFAULT"
FORMAT_VERSION = 1
WEIGHTS_DIR = "weights"  # inside the zoo package
SAMPLES_DIR = "data"  # inside the zoo package: <dataset>_sample.npz
SAMPLES_PER_CLASS = 10
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# The best published test accuracy per family in the Fashion-MNIST benchmark table (issue 4, item 3).
_FM_TABLE = "Fashion-MNIST benchmark table (zalandoresearch/fashion-mnist README), {}"
_NO_ENTRY = "keras-zoo's target for families without an entry in the Fashion-MNIST benchmark table"
PUBLISHED_FASHION_MNIST: Mapping[str, tuple[float, str]] = {
    "alexnet": (0.899, _FM_TABLE.format("AlexNet")),
    "squeezenet": (0.900, _FM_TABLE.format("SqueezeNet")),
    "vgg": (0.935, _FM_TABLE.format("VGG")),
    "googlenet": (0.937, _FM_TABLE.format("GoogLeNet")),
    "resnet": (0.949, _FM_TABLE.format("ResNet")),
    "densenet": (0.954, _FM_TABLE.format("DenseNet")),
    "wide_resnet": (0.959, _FM_TABLE.format("Wide ResNet")),
    # Families without an entry in that table: the project's target (issue 4).
    "nin": (0.93, _NO_ENTRY),
    "resnext": (0.93, _NO_ENTRY),
    "stochastic_depth": (0.93, _NO_ENTRY),
    "fractalnet": (0.93, _NO_ENTRY),
}


# -- the metadata -------------------------------------------------------------------------------------


def _fraction(value: Any, field: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{field} must be a number in [0, 1]; received {value!r}")
    return float(value)


def _lists(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _lists(v) for k, v in value.items()}
    return [_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """The weights file.

    Attributes:
        file: its name in the registry's directory (``<arch>.<tag>.h5``).
        sha256: hex digest of the file, checked before every load.
        size_bytes: its size, checked first (a truncated copy fails fast).
    """

    file: str
    sha256: str
    size_bytes: int

    def __post_init__(self):
        if not isinstance(self.sha256, str) or not _SHA256.fullmatch(self.sha256):
            raise ValueError(f"sha256 must be 64 lowercase hex digits; received {self.sha256!r}")
        object.__setattr__(self, "size_bytes", check_int("size_bytes", self.size_bytes, minimum=1))


@dataclasses.dataclass(frozen=True)
class WeightsInput:
    """What the weights expect as input: a raw image ``x`` becomes ``(x * scale - mean) / std``.

    Attributes:
        shape: ``(height, width, channels)`` the weights were trained at.
        mean: per-channel mean, on the scaled (``[0, 1]``) values.
        std: per-channel standard deviation, likewise.
        scale: multiplies the raw pixel values first (``1/255`` for ``uint8`` images).
    """

    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1 / 255

    def __post_init__(self):
        object.__setattr__(self, "shape", check_sizes("input shape", self.shape, ("height", "width", "channels")))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(self.mean) != self.shape[2] or len(self.std) != self.shape[2] or min(self.std) <= 0:
            raise ValueError(f"mean and std need one value per channel ({self.shape[2]}), std > 0; received "
                             f"mean={self.mean!r}, std={self.std!r}")

    def normalize(self, images):
        """Raw images (``[N, H, W]`` or ``[N, H, W, C]``, e.g. ``uint8``) as the model's float32 input.

        Grayscale weights' mean and std apply to each channel of RGB images, as a model built for RGB from
        them (`zoo.create_model` with ``input_shape=(H, W, 3)``) takes them.

        Raises:
            ValueError: images of another rank, or another number of channels than (non-grayscale) weights take.

        Example:
            >>> info = get_weights_info("resnet20.fashion_mnist")
            >>> images, labels = sample_images("fashion_mnist")
            >>> info.input.normalize(images).shape
            (100, 28, 28, 1)
        """
        import numpy as np

        x = np.asarray(images)
        if x.ndim == 3 and self.shape[2] == 1:
            x = x[..., None]
        if x.ndim != 4 or (x.shape[-1] != self.shape[2] and self.shape[2] != 1):
            raise ValueError(f"images must be [N, H, W, {self.shape[2]}] (or [N, H, W] for one channel): the weights "
                             f"take {self.shape[2]} channel(s); received shape {x.shape}")
        x = x.astype(np.float32) * np.float32(self.scale)
        return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)


@dataclasses.dataclass(frozen=True)
class WeightsHead:
    """The classifier the weights were trained with."""

    num_classes: int
    class_names: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        object.__setattr__(self, "num_classes", check_int("num_classes", self.num_classes, minimum=1))
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names must have num_classes={self.num_classes} entries; "
                             f"received {len(self.class_names)}")


@dataclasses.dataclass(frozen=True)
class Provenance:
    """How the weights were made.

    Attributes:
        command: the ``zoo train ...`` command line that trained them (from the repository's root).
        recipe: the `training.Recipe` as canonical JSON (sorted keys); `recipe_dict` parses it.
        seed: the recipe's seed.
        dataset: the dataset trained on (a name ``training.load_dataset`` accepts).
        split: the split trained on.
        options: the architecture options the model was built with, as sorted ``(name, value)`` pairs;
            loading applies them.
        license: the weights' license.
        paper: the architecture's paper, year and URL.
    """

    command: str
    recipe: str
    seed: int
    dataset: str
    split: str
    options: tuple[tuple[str, Any], ...]
    license: str
    paper: str

    def __post_init__(self):
        recipe = self.recipe if isinstance(self.recipe, str) else json.dumps(self.recipe, sort_keys=True)
        object.__setattr__(self, "recipe", json.dumps(json.loads(recipe), sort_keys=True))
        options = dict(self.options) if not isinstance(self.options, Mapping) else self.options
        object.__setattr__(self, "options", tuple(sorted((str(k), tuples(v)) for k, v in options.items())))
        object.__setattr__(self, "seed", check_int("seed", self.seed, minimum=0))

    @property
    def recipe_dict(self) -> dict[str, Any]:
        return json.loads(self.recipe)

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def options_text(self) -> str:
        """The options for people: ``"cardinality=4, bottleneck_width=16"``, or the variant's defaults."""
        return ", ".join(f"{k}={v!r}" for k, v in self.options) or "the variant's defaults"


@dataclasses.dataclass(frozen=True)
class WeightsMetrics:
    """The weights measured by ``zoo eval`` on the full test split, and the model's size.

    Attributes:
        top1: test accuracy in [0, 1].
        per_class_accuracy: test accuracy of each class.
        loss: mean cross-entropy on the test split.
        num_examples: test examples evaluated.
        params: every weight of the model, batch-norm statistics included.
        flops: 2 x the multiply-accumulates of one example's forward pass (`zoo.model_info`'s convention).
        eval_command: the ``zoo eval ...`` command that prints ``top1``.
    """

    top1: float
    per_class_accuracy: tuple[float, ...]
    loss: float
    num_examples: int
    params: int
    flops: int
    eval_command: str

    def __post_init__(self):
        object.__setattr__(self, "top1", _fraction(self.top1, "top1"))
        object.__setattr__(self, "per_class_accuracy",
                           tuple(_fraction(a, "per_class_accuracy") for a in self.per_class_accuracy))
        object.__setattr__(self, "loss", float(self.loss))
        for field in ("num_examples", "params", "flops"):
            object.__setattr__(self, field, check_int(field, getattr(self, field), minimum=1))


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One pretrained entry, ``arch.tag``: the weights file, what it expects, how it was made, how it scores.

    Attributes:
        arch: the registered model name (``zoo.list_models()``).
        tag: lower_snake name of these weights among the arch's (``fashion_mnist``).
        default: the arch's default weights (``weights="DEFAULT"``); one per arch.
        source: the file, its sha256 and size.
        input: input shape and normalization.
        head: number of classes and their names.
        provenance: the training command, recipe, seed, data, architecture options, license, paper.
        metrics: test accuracy (overall and per class), loss, params, FLOPs, the ``zoo eval`` command.
        published_top1: the best published test accuracy of the same family on the same dataset, if any.
        published_source: where ``published_top1`` is published.
        sample_predictions: the predicted class of each image of the package's sample of the dataset
            (`sample_images`), in order; the tests check a load against them.
        notes: what a reader of ``docs/pretrained.md`` should know (e.g. the budget the target needs).

    Example:
        >>> info = get_weights_info("resnet20.fashion_mnist")
        >>> PretrainedWeights.from_dict(info.to_dict()) == info
        True
    """

    arch: str
    tag: str
    default: bool
    source: WeightsSource
    input: WeightsInput
    head: WeightsHead
    provenance: Provenance
    metrics: WeightsMetrics
    published_top1: float | None = None
    published_source: str | None = None
    sample_predictions: tuple[int, ...] = ()
    notes: str = ""

    def __post_init__(self):
        for field in ("arch", "tag"):
            value = getattr(self, field)
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise ValueError(f"{field} must be lower_snake_case; received {value!r}")
        if not isinstance(self.default, bool):
            raise ValueError(f"default must be a bool; received {self.default!r}")
        if self.published_top1 is not None:
            object.__setattr__(self, "published_top1", _fraction(self.published_top1, "published_top1"))
        if (self.published_top1 is None) != (self.published_source is None):
            raise ValueError("published_top1 and published_source go together; received "
                             f"{self.published_top1!r} and {self.published_source!r}")
        object.__setattr__(self, "sample_predictions", tuple(int(p) for p in self.sample_predictions))
        if len(self.metrics.per_class_accuracy) != self.head.num_classes:
            raise ValueError(f"metrics.per_class_accuracy needs one entry per class ({self.head.num_classes}); "
                             f"received {len(self.metrics.per_class_accuracy)}")

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: what ``<arch>.<tag>.json`` holds (the recipe as an object)."""
        data = _lists(dataclasses.asdict(self))
        data["provenance"]["recipe"] = self.provenance.recipe_dict
        data["provenance"]["options"] = {k: _lists(v) for k, v in self.provenance.options}
        return {"format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PretrainedWeights":
        """The inverse of `to_dict`; unknown or missing fields raise ``ValueError`` naming them."""
        data = dict(data)
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version must be {FORMAT_VERSION}; received {version!r}")
        parts = {"source": WeightsSource, "input": WeightsInput, "head": WeightsHead, "provenance": Provenance,
                 "metrics": WeightsMetrics}
        _check_fields(cls, data, "weights metadata")
        for key, part in parts.items():
            _check_fields(part, data[key], key)
            data[key] = part(**{k: tuples(v) if k != "recipe" else v for k, v in data[key].items()})
        return cls(**{k: tuples(v) for k, v in data.items()})


def _check_fields(cls, data: Any, what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object; received {type(data).__name__}")
    fields = dataclasses.fields(cls)
    known = {f.name for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    unknown, missing = sorted(set(data) - known), sorted(required - set(data))
    if unknown or missing:
        raise ValueError(f"{what}: unknown field(s) {unknown or 'none'}, missing field(s) {missing or 'none'}. "
                         f"Accepted: {', '.join(sorted(known))}")


# -- the registry ---------------------------------------------------------------------------------------

_DIR_OVERRIDE: str | None = None  # tests point the registry at a copy of the weights directory


def weights_dir() -> Path:
    """The directory the registry reads: ``zoo/weights`` in the installed package."""
    if _DIR_OVERRIDE is not None:
        return Path(_DIR_OVERRIDE)
    from importlib import resources

    root = resources.files("zoo") / WEIGHTS_DIR
    if not isinstance(root, Path):
        raise OSError(f"the zoo package is not on the file system ({root!r}); pretrained weights need an "
                      "unzipped install (pip installs it so)")
    return root


def _entries() -> dict[str, PretrainedWeights]:
    return _read_registry(str(weights_dir()))


@lru_cache(maxsize=4)
def _read_registry(root: str) -> dict[str, PretrainedWeights]:
    # Shared with other readers, not with a publish: read between its renames, the new default was in
    # place before the old one was demoted ("exactly one default" failed).
    if not Path(root).is_dir():
        return _read_entries(root)
    with locked(root, shared=True):
        return _read_entries(root)


def _read_entries(root: str) -> dict[str, PretrainedWeights]:
    from zoo._registry import get_spec

    entries: dict[str, PretrainedWeights] = {}
    _finish_journal(Path(root))  # a publish interrupted after its commit point (under the shared lock: the
    # readers that finish it at once tolerate each other's renames)
    for path in sorted(Path(root).glob("[!.]*.json")):  # not a killed write's temporary file
        try:
            meta = PretrainedWeights.from_dict(json.loads(path.read_text(encoding="utf-8")))
            get_spec(meta.arch)  # an unknown arch fails here, with close matches
        except (ValueError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"pretrained weights metadata {path} is invalid: {err}") from err
        if path.name != f"{meta.name}.json" or meta.source.file != f"{meta.name}.h5":
            raise ValueError(f"pretrained weights metadata {path} describes {meta.name!r} with file "
                             f"{meta.source.file!r}; expected {meta.name}.json beside {meta.name}.h5")
        if not (path.parent / meta.source.file).is_file():
            raise ValueError(f"pretrained weights {meta.name!r}: the weights file {path.parent / meta.source.file} "
                             "is missing (is zoo/weights/*.h5 in the package data?)")
        entries[meta.name] = meta
    for arch in sorted({m.arch for m in entries.values()}):
        defaults = [m.tag for m in entries.values() if m.arch == arch and m.default]
        if len(defaults) != 1:
            raise ValueError(f"pretrained weights of {arch!r} must have exactly one default tag; received "
                             f"{len(defaults)} ({', '.join(defaults) or 'none'}) in {root}")
    return entries


def _clear_cache() -> None:
    _read_registry.cache_clear()
    from zoo import _registry

    _registry._model_info.cache_clear()  # its cards list the pretrained tags


def tags(arch: str) -> tuple[str, ...]:
    """The tags of ``arch``'s pretrained weights, the default first; ``()`` when none ship."""
    found = [m for m in _entries().values() if m.arch == arch]
    return tuple(m.tag for m in sorted(found, key=lambda m: (not m.default, m.tag)))


def list_pretrained(include: str | Sequence[str] = "*") -> list[str]:
    """The names (``arch.tag``) of the pretrained weights that ship, naturally sorted.

    Args:
        include: glob pattern(s) over the ``arch.tag`` names (any of them).

    Example:
        >>> list_pretrained("resnet*")
        ['resnet20.fashion_mnist']
    """
    from zoo._registry import _as_patterns

    patterns = _as_patterns(include, "include")
    names = [n for n in _entries() if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    from zoo._registry import _natural_key

    return sorted(names, key=_natural_key)


def get_weights_info(name: str) -> PretrainedWeights:
    """The metadata of pretrained weights ``arch.tag``, or of an arch's default weights given ``arch``.

    Raises:
        ValueError: the name is not shipped; the error lists what ships.

    Example:
        >>> get_weights_info("resnet20").metrics.num_examples
        10000
    """
    entries = _entries()
    if isinstance(name, str) and name in entries:
        return entries[name]
    if isinstance(name, str):
        default = [m for m in entries.values() if m.arch == name and m.default]
        if default:
            return default[0]
    raise ValueError(f"no pretrained weights {name!r}. Received name={name!r}. Accepted: "
                     f"{', '.join(list_pretrained()) or 'none ship yet'} (or an arch name for its default)")


def resolve(arch: str, weights: Any) -> PretrainedWeights | None:
    """The entry ``weights`` names for model ``arch`` (``"DEFAULT"``, a tag, ``"arch.tag"``), else ``None`` (a path).

    Raises:
        ValueError: ``"DEFAULT"`` for an arch that ships none, or ``"other_arch.tag"`` / an unknown tag
            of this arch in the ``arch.tag`` form; the error lists the arch's tags.
    """
    if not isinstance(weights, str):
        return None
    own = {m.tag: m for m in _entries().values() if m.arch == arch}
    if weights == DEFAULT:
        for meta in own.values():
            if meta.default:
                return meta
        shipping = ", ".join(sorted({m.arch for m in _entries().values()})) or "none"
        raise ValueError(f"{arch!r} ships no pretrained weights, so weights={DEFAULT!r} has nothing to load. Models "
                         f"with pretrained weights: {shipping}; otherwise pass weights=None or a path to a weights file")
    if weights in own:
        return own[weights]
    head, dot, tag = weights.partition(".")
    if dot and _NAME.fullmatch(head) and _NAME.fullmatch(tag) and not os.path.exists(weights):
        from zoo._registry import _MODELS

        if head in _MODELS:
            if head == arch and tag in own:
                return own[tag]
            if head != arch:
                raise ValueError(f"weights={weights!r} are for {head!r}, not {arch!r}; load them with "
                                 f"create_model({head!r}, weights={weights!r})")
            accepted = ", ".join([DEFAULT, *(f"{t!r} / '{arch}.{t}'" for t in tags(arch))]) if own else "none ship"
            raise ValueError(f"no pretrained weights {weights!r}. Received weights={weights!r}. Tags of {arch!r}: "
                             f"{accepted}")
    return None


# -- loading ----------------------------------------------------------------------------------------------

_VERIFIED: dict[tuple[str, int, int], str] = {}  # (real path, mtime_ns, size) -> sha256 found


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_path(meta: PretrainedWeights) -> Path:
    """The weights file of ``meta`` in the registry's directory."""
    return weights_dir() / meta.source.file


def verify(meta: PretrainedWeights) -> Path:
    """Checks the size and sha256 of ``meta``'s file (cached per path and modification time); returns its path.

    Raises:
        ValueError: the file is missing, of another size (truncated) or another sha256.
    """
    path = weights_path(meta)
    try:
        stat = path.stat()
    except OSError as err:
        raise ValueError(f"pretrained weights {meta.name!r}: cannot read {path}: {err.strerror or err}") from err
    if stat.st_size != meta.source.size_bytes:
        raise ValueError(f"pretrained weights {meta.name!r}: {path} has {stat.st_size:,} bytes; its metadata "
                         f"accepts only {meta.source.size_bytes:,} (a truncated or replaced file). Reinstall the "
                         "package or restore the file")
    key = (os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    found = _VERIFIED.get(key) or sha256_file(path)
    if found != meta.source.sha256:
        raise ValueError(f"pretrained weights {meta.name!r}: {path} has sha256 {found}; its metadata accepts only "
                         f"{meta.source.sha256}. The file is corrupt or was replaced; reinstall the package or "
                         "restore the file")
    _VERIFIED[key] = found
    return path


STEM_OPTION = "stem"  # every family's; "auto" resolves by input size (`zoo.models._common.resolve_stem`)


def check_options(meta: PretrainedWeights, spec, options: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture options to build ``spec`` with for ``meta``'s weights, given the caller's ``options``.

    The weights' own options apply: those they were trained with, and their stem resolved against
    the input shape they were trained at (``stem="auto"`` picks the small-input stem at 28x28 but the
    ImageNet one at 64x64), so that they load into the network they were trained as at other input
    sizes (AlexNet's and VGG's flattening classifiers still fit only the trained size). The caller may set the family's weight-free options (`Family.weight_free_options`, e.g.
    dropout rates) to any value, ``stem="auto"``, and every other option to the weights' value.

    Raises:
        ValueError: an option that differs from the weights', naming both values.
    """
    from zoo._registry import _architecture_params
    from zoo.models._common import resolve_stem

    family = spec.family
    recorded = meta.provenance.options_dict
    defaults = {name: param.default for name, param in _architecture_params(family.builder).items()}
    trained = {**defaults, **spec.options, **recorded}
    pinned = dict(recorded)
    if STEM_OPTION in trained:
        trained[STEM_OPTION] = pinned[STEM_OPTION] = resolve_stem(trained[STEM_OPTION], meta.input.shape,
                                                                  family=family.name)
    free = {key: value for key, value in options.items() if key in family.weight_free_options}
    conflicts = [f"{key}={value!r} (the weights have {key}={trained[key]!r})" for key, value in options.items()
                 if key not in free and not (key == STEM_OPTION and value == "auto")
                 and tuples(value) != tuples(trained[key])]
    if conflicts:
        described = meta.provenance.options_text
        any_value = ", ".join(family.weight_free_options) or "none"
        raise ValueError(f"pretrained weights {meta.name!r} were trained with {described}; received "
                         f"{'; '.join(conflicts)}. Accepted: leave those options out (they are applied), options "
                         f"that change no weights ({any_value}) at any value, or weights=None for a freshly "
                         "initialized model")
    return {**pinned, **free}


def is_legacy_h5(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a legacy Keras HDF5 weights file, which lists its layers by name: what
    ``save_weights`` writes for a ``.h5`` name, or ``model.save`` for a full model. (A
    ``.weights.h5`` name gets Keras' newer format, without layer names; `_read_h5` cannot read it.)"""
    import h5py

    if not (os.path.isfile(path) and h5py.is_hdf5(path)):
        return False
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        return "layer_names" in group.attrs


def _read_h5(path: str | os.PathLike, what: str) -> dict[str, list[tuple[str, Any]]]:
    """``{layer name: [(weight name, array)] in the layer's weight order}`` from a legacy ``save_weights``
    HDF5 file."""
    import h5py
    import numpy as np

    def text(value) -> str:
        return value.decode("utf8") if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            layers = {}
            for layer in (text(n) for n in group.attrs["layer_names"]):
                g = group[layer]
                layers[layer] = [(text(w).split(":")[0], np.asarray(g[text(w)])) for w in g.attrs["weight_names"]]
            return layers
    except (OSError, KeyError) as err:
        raise ValueError(f"{what} are not a Keras HDF5 weights file ({err})") from err


def _read_checkpoint(path: str | os.PathLike, what: str) -> dict[str, list[tuple[str, Any]]]:
    """``{layer name: [(weight name, array)]}`` from a TF checkpoint: a model's ``save_weights`` (TF format)
    or the model in a `training.fit` checkpoint (``out_dir/checkpoints/ckpt-N``; a distiller's student).

    A TF checkpoint keys a functional model's variables by layer position (``layer_with_weights-57``), so
    Keras cannot restore it into a model with other layers (a backbone, a GoogLeNet without auxiliary
    heads). Its object graph also records each variable's name (``stem_conv/kernel``), which is read here.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(os.fspath(path))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError) as err:
        raise ValueError(f"{what} are not a TF2 checkpoint of a model ({err}). Accepted: a legacy .h5 weights file, "
                         "or the prefix of a checkpoint that save_weights or tf.train.Checkpoint wrote") from err
    # A training checkpoint holds the model under "model" (beside the optimizer), and a distillation run's
    # model is a `training.Distiller`: its weights are the student's.
    node = 0
    for name in ("model", "student"):
        node = next((c.node_id for c in graph.nodes[node].children if c.local_name == name), node)
    layers: dict[str, list] = {}
    keys: dict[str, str] = {}
    # Breadth first from the model: its layers' variables in creation order, not its optimizer's (a compiled
    # model's save_weights holds both).
    order, seen = [node], {node}
    for node in order:
        for child in graph.nodes[node].children:
            if child.local_name != "optimizer" and child.node_id not in seen:
                seen.add(child.node_id)
                order.append(child.node_id)
        for attribute in graph.nodes[node].attributes:
            name, key = attribute.full_name, attribute.checkpoint_key
            if not key.endswith("/.ATTRIBUTES/VARIABLE_VALUE") or "/" not in name:
                continue
            if keys.setdefault(name, key) != key:
                raise ValueError(f"{what} hold two variables named {name!r} ({keys[name]} and {key}): two models? "
                                 "Accepted: the checkpoint of one model (or of a training run)")
            layers.setdefault(name.split("/")[0], []).append((name, reader.get_tensor(key)))
    return layers


def load_pretrained(model, meta: PretrainedWeights) -> None:
    """Verifies ``meta``'s file, then fills ``model``'s layers from it by layer name (`load_by_name`).

    With another ``num_classes`` than the weights' the classifier keeps its fresh initialization.

    Raises:
        ValueError: the file fails `verify`, or its layers do not fit ``model`` (another architecture).
    """
    from zoo._registry import get_spec

    path = verify(meta)
    options = meta.provenance.options_text
    load_by_name(model, path, get_spec(meta.arch).family, what=f"pretrained weights {meta.name!r}",
                 num_classes=meta.head.num_classes,
                 accepted=f"the architecture they were trained as ({meta.arch} with {options}, input "
                          f"{'x'.join(map(str, meta.input.shape))})")


def load_by_name(model, path: str | os.PathLike, family, *, what: str, accepted: str,
                 num_classes: int | None = None) -> None:
    """Fills ``model``'s layers by layer name, all or nothing, from a legacy ``save_weights`` HDF5 file
    (`is_legacy_h5`) or a TF checkpoint (a ``save_weights`` prefix, or a `training.fit` checkpoint).

    Every layer of ``model`` with weights must be in the file with the same shapes (the kernels of the
    convolutions that read the images, `_image_readers`, may differ in their input channels: they are
    adapted as `_adapt_input_channels` says), except the family's classifier layers
    (`Family.classifier_layers`) when ``num_classes``, the file's number of classes, differs from the
    model's: those keep their fresh initialization. Every layer of the file
    with weights must be in ``model``, except the family's head layers (`Family.head_layers`), which
    a backbone or a GoogLeNet without auxiliary heads leaves out.

    Args:
        model: a model of ``family``.
        path: the HDF5 file or the checkpoint prefix.
        family: the `zoo._registry.Family` of ``model``.
        what: names the weights in errors (``"pretrained weights 'resnet20.fashion_mnist'"``).
        accepted: what would fit, for errors.
        num_classes: the file's number of classes, if known; ``None`` requires the model's.

    Raises:
        ValueError: the file is neither, or its layers do not fit ``model``.
    """
    import tf_keras as keras

    # A checkpoint is PREFIX.index beside its data; anything else is read as HDF5, which checks it (the caller
    # tested is_legacy_h5 already: a second open of the file would only repeat that).
    saved = _read_checkpoint(path, what) if os.path.exists(f"{path}.index") else _read_h5(path, what)
    names = _layer_names(model)
    readers = _image_readers(model)  # their kernels may differ in input channels (`_adapt_input_channels`)
    classifier = [name for name in family.classifier_layers if name in names]
    fresh = set()
    if classifier and num_classes is not None and model.get_layer(classifier[0]).output_shape[-1] != num_classes:
        fresh = set(classifier)
    missing, mismatched, assign = [], [], []
    for layer in model.layers:
        variables = layer.trainable_weights + layer.non_trainable_weights  # the order save_weights writes
        if not variables or layer.name in fresh:
            continue
        arrays = saved.get(layer.name)
        if arrays is None:
            missing.append(layer.name)
            continue
        # By weight name where the names agree (a checkpoint lists them in creation order), else in order.
        by_name = dict(arrays)
        wanted = [v.name.split(":")[0] for v in variables]
        arrays = [by_name[n] for n in wanted] if sorted(wanted) == sorted(by_name) else [a for _, a in arrays]
        want = [tuple(v.shape) for v in variables]
        have = [tuple(a.shape) for a in arrays]
        if want != have and layer in readers:
            arrays = _adapt_input_channels(arrays, want)
            have = [tuple(a.shape) for a in arrays]
        if want != have:
            mismatched.append(f"{layer.name} (file {have}, model {want})")
            continue
        assign.extend(zip(variables, arrays))
    # Weightless layers in the file (a reshape, a padding) carry nothing to lose.
    extra = sorted(n for n, arrays in saved.items() if arrays and n not in names and n not in family.head_layers)
    if missing or mismatched or extra:
        problems = [f"{label}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}"
                    for label, items in (("model layers not in the file", missing),
                                         ("layers of other shapes", mismatched),
                                         ("file layers not in the model", extra)) if items]
        raise ValueError(f"{what} do not fit this {model.name!r} model ({'; '.join(problems)}). Accepted: {accepted}")
    keras.backend.batch_set_value(assign)


def _image_readers(model) -> list:
    """The plain ``Conv2D`` layers that read the model's input images, directly or through layers without
    weights (padding, rescaling): the stem convolution, or each FractalNet column's first one."""
    import tensorflow as tf
    import tf_keras as keras

    if not getattr(model, "_is_graph_network", False) or len(model.inputs) != 1:
        return []
    images = {id(model.inputs[0])}  # tensors that are still the images
    readers = []
    for layer in model.layers:
        inputs = [t for node in layer._inbound_nodes for t in tf.nest.flatten(node.input_tensors)]
        if not inputs or not all(id(t) in images for t in inputs):
            continue
        if type(layer) is keras.layers.Conv2D:
            readers.append(layer)
        elif not layer.weights:
            images.update(id(t) for node in layer._inbound_nodes for t in tf.nest.flatten(node.output_tensors))
    return readers


def _adapt_input_channels(arrays: list, want: list[tuple]) -> list:
    """An image-reading convolution's weights for another number of input channels, as timm's ``in_chans`` adapts
    them: for one channel, the kernel summed over the file's channels; for more, the file's channels
    repeated and scaled by ``file's / model's``. A grayscale image repeated over the channels (or the gray
    sum of one) then gives the response the weights were trained to. Anything but a kernel that differs
    in its input channels alone comes back as it is (and is reported as a mismatch)."""
    import numpy as np

    kernel = arrays[0]
    if len(arrays) != len(want) or kernel.ndim != 4 or len(want[0]) != 4 or \
            kernel.shape[:2] + kernel.shape[3:] != want[0][:2] + want[0][3:] or \
            [a.shape for a in arrays[1:]] != list(want[1:]):
        return arrays
    have, channels = kernel.shape[2], want[0][2]
    if channels == 1:
        adapted = kernel.sum(axis=2, keepdims=True)
    else:
        adapted = np.tile(kernel, (1, 1, -(-channels // have), 1))[:, :, :channels] * (have / channels)
    return [adapted.astype(kernel.dtype), *arrays[1:]]


def load_file(model, name: str, family, weights: str | os.PathLike) -> None:
    """Fills ``model`` (of the registered ``name``, of ``family``) from a weights file: a legacy HDF5 file, a TF
    checkpoint (a SavedModel's variables too) by layer name (`load_by_name`), anything else through Keras.

    Raises:
        ValueError: no such file, a directory that is no SavedModel, or weights that do not fit ``model``.
    """
    if not isinstance(weights, (str, os.PathLike)) or not (
        os.path.exists(weights) or os.path.exists(f"{weights}.index")
    ):
        known = tags(name)
        pretrained = [f"'DEFAULT' ({known[0]})", *(repr(t) for t in known)] if known else []
        accepted = ", ".join([*pretrained, "None", "a path to a weights file"])
        raise ValueError(f"cannot load weights={weights!r} for {name!r}. Accepted: {accepted}")
    path = os.fspath(weights)
    accepted = (f"weights saved from {name} with the same options and num_classes (for "
                "include_top=False, also a full model's file)")
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "variables", "variables.index")):
        path = os.path.join(path, "variables", "variables")  # a SavedModel: its variables are a checkpoint
    elif os.path.isdir(path):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        raise ValueError(f"weights={path!r} is a directory. Accepted: a weights file, a SavedModel directory, or a "
                         "checkpoint's prefix" + (f", e.g. the latest checkpoint in it, {latest!r}" if latest
                                                  else " (PREFIX.index is a file)"))
    if path.endswith(".index") and os.path.isfile(path):  # a checkpoint's index file: the checkpoint is meant
        path = path[: -len(".index")]
    if is_legacy_h5(path) or os.path.exists(f"{path}.index"):
        load_by_name(model, path, family, what=f"the weights in {path}", accepted=accepted)
        return
    try:  # another format Keras reads (a .weights.h5 or .keras file): it checks the layers itself
        model.load_weights(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"weights file {weights!r} does not fit {name!r}: {err}") from err


def _layer_names(model) -> set[str]:
    return {layer.name for layer in model.layers}


# -- the shipped sample images -------------------------------------------------------------------------


def _sample_path(dataset: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("zoo") / SAMPLES_DIR / f"{dataset}_sample.npz"))


def sample_images(dataset: str = "fashion_mnist"):
    """The package's sample of a dataset's test split: ``(images uint8 [N, H, W, C], labels int64 [N])``.

    The Fashion-MNIST sample is the first 10 test images of each class (100, class by class, in
    test-split order), a few KB; `write_sample_images` made it.

    Raises:
        ValueError: no sample ships for ``dataset``.

    Example:
        >>> images, labels = sample_images("fashion_mnist")
        >>> images.shape, images.dtype.name, labels[:3].tolist(), labels[-1].item()
        ((100, 28, 28, 1), 'uint8', [0, 0, 0], 9)
    """
    import numpy as np

    path = _sample_path(dataset)
    if not path.is_file():
        shipped = sorted(p.name[: -len("_sample.npz")] for p in path.parent.glob("*_sample.npz"))
        raise ValueError(f"no sample images ship for dataset {dataset!r}. Accepted: {', '.join(shipped) or 'none'}")
    with np.load(path) as data:
        images, labels = data["images"], data["labels"].astype(np.int64)
    return (images[..., None] if images.ndim == 3 else images), labels


def write_sample_images(dataset: str = "fashion_mnist", *, per_class: int = SAMPLES_PER_CLASS,
                        path: str | os.PathLike | None = None) -> Path:
    """Writes the sample `sample_images` reads: the first ``per_class`` test images of each class.

    Stores ``images`` (uint8, ``[N, H, W]`` for one channel), ``labels`` and ``indices`` (their
    positions in the test split) with ``np.savez_compressed``, atomically.
    """
    import numpy as np

    from training.data import load_dataset

    ds, info = load_dataset(dataset, "test", batch_size=1 << 16, shuffle=False, normalize=False)
    images = np.concatenate([x.numpy() for x, _ in ds])
    labels = np.concatenate([y.numpy() for _, y in ds])
    indices = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(info.num_classes)])
    raw = np.round(images[indices] * 255).astype(np.uint8)
    if raw.shape[-1] == 1:
        raw = raw[..., 0]
    path = Path(path) if path is not None else _sample_path(dataset)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: NumPy adds no ".npz" to its name
        np.savez_compressed(f, images=raw, labels=labels[indices].astype(np.uint8), indices=indices.astype(np.int32))
    return path


def predict_samples(model, meta_input: WeightsInput, dataset: str) -> tuple[int, ...]:
    """The model's predicted class for each of the dataset's sample images (``()`` without a sample)."""
    import numpy as np

    try:
        images, _ = sample_images(dataset)
    except ValueError:
        return ()
    if images.shape[1:] != tuple(meta_input.shape):
        return ()
    outputs = model(meta_input.normalize(images), training=False)
    outputs = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    return tuple(int(p) for p in np.argmax(np.asarray(outputs), axis=-1))


# -- the registry directory: files replaced together ---------------------------------------------


JOURNAL = ".publish-journal.json"  # in a registry directory while a publish replaces its files


def _replace_files(directory: Path, contents: Mapping[Path, bytes | Path]) -> None:
    """Replaces files of the registry ``directory`` as one change that neither an error nor a hard kill
    leaves half done: each new content (bytes, or a copy of a file) is first written in full under a
    staging name beside its target; then a journal listing the renames is written atomically (the commit
    point); then the renames run and the journal is removed. An error before the journal removes the
    staged files and leaves the registry as it was; after it, the registry finishes the renames the next
    time it is read (`_finish_journal`)."""
    directory.mkdir(parents=True, exist_ok=True)
    _finish_journal(directory)
    for stray in directory.glob(".*"):  # what a publish killed before its journal staged (and atomic writes' temps)
        if _left_by_a_dead_process(stray.name):
            stray.unlink(missing_ok=True)
    staged: dict[Path, Path] = {}
    try:
        for path, content in contents.items():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.staged")
            staged[tmp] = path
            if isinstance(content, Path):
                shutil.copyfile(content, tmp)
            else:
                write_bytes(tmp, content)
    except BaseException:
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        raise
    write_json(directory / JOURNAL, [[tmp.name, path.name] for tmp, path in staged.items()], sort_keys=False)
    _finish_journal(directory)


def _finish_journal(directory: Path) -> None:
    """Completes the renames of a publish that wrote its journal (`_replace_files`), if any.

    Raises:
        ValueError: they cannot be done here (a registry this process may not write).
    """
    journal = directory / JOURNAL
    if not journal.exists():
        return
    with locked(directory):  # a reader may finish it too: one at a time, or one could remove the next journal
        try:
            renames = json.loads(journal.read_text(encoding="utf-8"))
        except FileNotFoundError:  # finished by the process that held the lock
            return
        _rename_journaled(directory, journal, renames)


def _rename_journaled(directory: Path, journal: Path, renames) -> None:
    try:
        for tmp, name in renames:
            try:
                os.replace(directory / tmp, directory / name)
            except FileNotFoundError:  # renamed already, before the interruption
                pass
        journal.unlink(missing_ok=True)
    except OSError as err:
        raise ValueError(f"a publish into {directory} was interrupted after it wrote {JOURNAL}; its renames finish "
                         f"when the registry is next read by a process that may write there ({err})") from err


def _left_by_a_dead_process(name: str) -> bool:
    """Whether ``name`` is a staged or temporary file (`_replace_files`, `zoo._files.atomic_path`) of a process
    that is gone; a live one's (another publish) is left alone."""
    match = re.fullmatch(r"\..*\.(\d+)(?:-[0-9a-f]+)?\.(?:staged|tmp(?:\..*)?)", name)
    if match is None or os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _read_dir_entries(directory: Path, arch: str, *, exclude: str) -> list[PretrainedWeights]:
    found = []
    for path in sorted(directory.glob(f"{arch}.*.json")):
        meta = PretrainedWeights.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if meta.arch == arch and meta.name != exclude:
            found.append(meta)
    return found


def metadata_text(meta: PretrainedWeights) -> str:
    """``meta`` as the JSON text of its ``.json`` file (indented, keys in field order)."""
    return json.dumps(meta.to_dict(), indent=1, ensure_ascii=False) + "\n"
