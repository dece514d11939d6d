"""Datasets as deterministic ``tf.data`` pipelines: `load_dataset` and its `DatasetInfo`.

Built in: ``fashion_mnist`` (real; read from IDX files, or TFDS), ``digits`` (scikit-learn's 8x8
digits, offline) and ``synthetic`` (generated, for tests). Any other name is loaded through
TensorFlow Datasets.

Resumable training needs every batch of an epoch to be a pure function of ``(seed, epoch)``: the
loop rebuilds epoch ``e``'s dataset and ``.skip(k)``\\ s the batches it already trained on. So the
split is held in memory, the epoch's order is a numpy permutation drawn from ``(seed, epoch)``, the
augmentation parameters are drawn per example from ``(seed, epoch)`` too (see `training.augment`),
and the pipeline only gathers batches by index. No ``tf.data`` shuffle buffer, no stateful random op.

Throughput: one vectorized map per batch with a fixed parallelism of 2, ``tf.data`` autotune off
(on a 2-core machine autotune sometimes starves the training step) and a prefetch of 2 batches.

    >>> ds, info = load_dataset("synthetic", "train", batch_size=32, num_examples=64)
    >>> info.num_examples, info.class_names[:2]
    (64, ('class_0', 'class_1'))
    >>> [x.shape for x, y in ds.take(1)]
    [TensorShape([32, 28, 28, 1])]
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import gzip
import inspect
import math
import os
import struct
from typing import Any, Callable

import zoo  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf

from training.augment import Augment, get_augment
from zoo._checks import check_int, check_sizes

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "DatasetInfo",
    "augmented_by",
    "from_arrays",
    "is_array_pair",
    "list_datasets",
    "load_epochs",
    "load_dataset",
    "read_idx",
]

# Where Debian's `dataset-fashion-mnist` package installs the four gzipped IDX files.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Computed once with numpy in float64 over all 60000 x 28 x 28 pixels of the train split, scaled to
# [0, 1], read from the Debian package's train-images-idx3-ubyte.gz: `x.mean()`, `x.std()` (ddof=0).
# tests/training/test_data.py recomputes them when those files are installed.
FASHION_MNIST_MEAN = (0.2860405969887955,)
FASHION_MNIST_STD = (0.35302424451492237,)

# Datasets from TFDS other than fashion_mnist: uint8 images scaled to [0, 1] are normalized with
# 0.5 / 0.5 per channel (to [-1, 1]) rather than measured statistics, so the train and test splits
# agree without loading the train split to evaluate.
_TFDS_DEFAULT_MEAN = 0.5
_TFDS_DEFAULT_STD = 0.5

_SPLITS = ("train", "test")
_DIGITS_TEST_SIZE = 360  # of 1797: 1437 train / 360 test, stratified, random_state=0
_SYNTHETIC_SIZES = {"train": 1024, "test": 256}

_PARALLEL_CALLS = 2
_PREFETCH = 2

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION_SUBDIRS = ("", "fashion_mnist", "fashion-mnist")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What `load_dataset` loaded.

    Attributes:
        name: the dataset name as given.
        split: the split as given.
        num_examples: examples in this split (after ``limit``).
        num_classes: number of classes.
        class_names: one name per class index.
        image_shape: ``(height, width, channels)`` of the images the dataset yields.
        mean: per-channel mean the images are normalized with (on the ``[0, 1]`` scale).
        std: per-channel standard deviation, likewise.
        source: where the data came from: a directory, ``"debian:<dir>"``, ``"tfds:<name>"``,
            ``"sklearn:digits"`` or ``"synthetic"``.
    """

    name: str
    split: str
    num_examples: int
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, for the tensor cache
class _Split:
    images: np.ndarray  # [N, H, W, C], uint8 (divide by 255) or float32 already in [0, 1]
    labels: np.ndarray  # [N] int32
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    @property
    def scale(self) -> float:
        return 255.0 if self.images.dtype == np.uint8 else 1.0


def list_datasets() -> tuple[str, ...]:
    """The built-in dataset names; any other name is looked up in TFDS.

    Example:
        >>> list_datasets()
        ('digits', 'fashion_mnist', 'synthetic')
    """
    return tuple(sorted(_BUILDERS))


def load_dataset(
    name: str,
    split: str,
    *,
    batch_size: int = 128,
    augment: str | Augment | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    epoch: int = 0,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    drop_remainder: bool = False,
    normalize: bool = True,
    image_size: tuple[int, int] | None = None,
    **dataset_options: Any,
) -> tuple[tf.data.Dataset, DatasetInfo]:
    """Loads one epoch of a split as a batched, prefetched ``tf.data.Dataset``.

    Yields ``(images, labels)``: float32 ``[B, H, W, C]`` normalized as ``(x - mean) / std`` with
    ``x`` in ``[0, 1]`` (or just ``x`` with ``normalize=False``), and int32 ``[B]``. The epoch is a
    pure function of ``(seed, epoch)``: to resume mid-epoch, rebuild it and ``.skip(k)`` batches.

    Fashion-MNIST sources, tried in order: ``data_dir``, ``$ZOO_DATA_DIR``, Debian's
    ``dataset-fashion-mnist`` (`DEBIAN_FASHION_MNIST_DIR`), then TFDS (which downloads). A directory
    holds the four IDX files under their usual names (``train-images-idx3-ubyte``, ...), raw or
    ``.gz``, directly or in a ``fashion_mnist/`` or ``fashion-mnist/`` subfolder.

    Args:
        name: ``fashion_mnist``, ``digits``, ``synthetic`` or a TFDS dataset name.
        split: ``train`` or ``test`` for the built-ins; any TFDS split (``"train[:10%]"``) otherwise.
        batch_size: examples per batch.
        augment: ``None``, a name from `training.augment.AUGMENTATIONS` or an `Augment`. Applied
            whenever given, whatever the split: pass it for training only.
        shuffle: shuffle the order; ``None`` shuffles splits whose name starts with ``train``.
        seed: non-negative int; with ``epoch`` it fixes the order and the augmentation.
        epoch: non-negative int; each epoch has its own order and augmentation.
        data_dir: a directory with the Fashion-MNIST IDX files; for a TFDS name, TFDS's data_dir.
        limit: keep only the first ``limit`` examples of the split (before shuffling).
        drop_remainder: drop the last batch if it is smaller than ``batch_size``.
        normalize: standardize with the dataset's mean/std; otherwise yield ``[0, 1]`` values.
        image_size: ``(height, width)`` to resize to (bilinear), e.g. digits to ``(32, 32)``.
            Mean/std stay those of the original images.
        **dataset_options: options of the dataset's builder; only ``synthetic`` has any:
            ``image_shape=(28, 28, 1)``, ``num_classes=10``, ``num_examples`` (1024 train / 256
            test), ``noise=0.3`` and ``data_seed=0`` (the data; ``seed`` is only the order).

    Returns:
        ``(dataset, info)``.

    Raises:
        ValueError: an unknown split, option or argument value (the error lists what is accepted).
        FileNotFoundError: no Fashion-MNIST source is available (the error lists those tried).
        ImportError: ``digits`` without scikit-learn, or a TFDS name without tensorflow-datasets.

    Example:
        >>> ds, info = load_dataset("digits", "test", batch_size=60, image_size=(28, 28))
        >>> info.num_examples, info.image_shape, len(ds)
        (360, (28, 28, 1), 6)
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a dataset name (a str): one of {', '.join(list_datasets())} or a TFDS "
                         f"dataset; received {name!r}")
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("epoch", epoch, minimum=0)
    if limit is not None:
        check_int("limit", limit, minimum=1)
    if shuffle is not None and not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be None, True or False; received {shuffle!r}")
    if image_size is not None:
        image_size = check_sizes("image_size", image_size, ("height", "width"))
    aug = get_augment(augment)
    if not isinstance(split, str):
        raise ValueError(f"split must be a str (train or test for the built-in datasets, any TFDS split "
                         f"otherwise); received {split!r}")

    data = _load_split(name, split, data_dir=data_dir, options=dataset_options)

    n = len(data.labels) if limit is None else min(limit, len(data.labels))
    height, width, channels = data.images.shape[1:]
    out_size = image_size or (height, width)
    if shuffle is None:
        shuffle = split.startswith("train")
    # Stream 0 of (seed, epoch) is the order; stream 1 is the augmentation (training.augment).
    order = np.random.default_rng([seed, epoch, 0]).permutation(n) if shuffle else np.arange(n)
    params = {} if aug.is_identity else aug.draw(n, out_size, seed=seed, epoch=epoch)

    images_t, labels_t = _as_tensors(data)
    mean = tf.constant(data.mean, tf.float32)
    std = tf.constant(data.std, tf.float32)
    scale = data.scale
    resize = out_size != (height, width)

    def prepare(x, augment_batch):
        x = tf.cast(x, tf.float32)
        if scale != 1.0:
            x = x / scale
        if resize:
            x = tf.image.resize(x, out_size, method="bilinear", antialias=True)
        x = augment_batch(x, mean)
        return (x - mean) / std if normalize else x

    ds = _batches(images_t, labels_t, order, aug, params, prepare, batch_size=batch_size,
                  drop_remainder=drop_remainder)

    info = DatasetInfo(
        name=name,
        split=split,
        num_examples=n,
        num_classes=len(data.class_names),
        class_names=data.class_names,
        image_shape=(*out_size, int(channels)),
        mean=data.mean,
        std=data.std,
        source=data.source,
    )
    return ds, info


def load_epochs(
    name: str,
    split: str,
    *,
    batch_size: int = 128,
    augment: str | None = None,
    seed: int = 0,
    shuffle: bool | None = None,
    limit: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> Callable[[int], tf.data.Dataset]:
    """The function ``epoch -> dataset`` that loads a split epoch by epoch (`load_dataset` with these arguments):
    deterministic in ``epoch``, as `training.fit` reads its data, and marked as applying ``augment``
    (`augmented_by`).

    Example:
        >>> epochs = load_epochs("digits", "train", batch_size=64, augment="flip")
        >>> epochs.augment, len(epochs(0))
        ('flip', 23)
    """
    get_augment(augment)  # an unknown name fails here, not at the first epoch

    def load(epoch: int) -> tf.data.Dataset:
        return load_dataset(name, split, batch_size=batch_size, augment=augment, seed=seed, epoch=epoch,
                            shuffle=shuffle, limit=limit, image_size=image_size)[0]

    return augmented_by(load, augment)


def augmented_by(epochs: Callable[[int], tf.data.Dataset], augment: str | None) -> Callable[[int], tf.data.Dataset]:
    """Marks a function ``epoch -> dataset`` as applying the augmentation ``augment`` (a `Recipe.augment`
    name) itself, as a dataset name loaded by a recipe does: `fit` refuses ``recipe.augment`` for data that
    does not apply it (it would be ignored). Returns the function."""
    epochs.augment = augment
    return epochs


def from_arrays(
    images,
    labels,
    *,
    batch_size: int = 128,
    augment: str | Augment | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """One epoch of in-memory ``(images, labels)`` as a batched, prefetched ``tf.data.Dataset``.

    The arrays are batched as `load_dataset` batches a split, with the same determinism: the order and
    the augmentation are pure functions of ``(seed, epoch)``. The images are yielded as given (no
    scaling or normalization: give them as the model takes them). `training.fit` and
    `training.evaluate` read ``(images, labels)`` arrays through this function.

    Args:
        images: ``[N, H, W, C]`` numpy array or tensor (or any model inputs ``[N, ...]``).
        labels: ``[N]`` class ids, or ``[N, num_classes]`` one-hot rows.
        batch_size: examples per batch.
        augment: ``None``, a name from `training.augment.AUGMENTATIONS` or an `Augment`; images ``[N, H, W, C]``
            or ``[N, H, W]`` only. Crops pad with zeros and erasing fills with the images' mean per channel (both
            are the mean for normalized images).
        shuffle: shuffle the order.
        seed: non-negative int; with ``epoch`` it fixes the order and the augmentation.
        epoch: non-negative int; each epoch has its own order and augmentation.
        drop_remainder: drop the last batch if it is smaller than ``batch_size``.

    Returns:
        The dataset of ``(images, labels)`` batches.

    Raises:
        ValueError: arrays of other ranks, of different lengths or empty, labels that are no numbers or
            fractional class ids, or an unknown augmentation.

    Example:
        >>> x, y = np.zeros([10, 8, 8, 1], np.float32), np.arange(10) % 2
        >>> [tuple(b.shape) for b, _ in from_arrays(x, y, batch_size=4)]
        [(4, 8, 8, 1), (4, 8, 8, 1), (2, 8, 8, 1)]
    """
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("epoch", epoch, minimum=0)
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be True or False; received {shuffle!r}")
    aug = get_augment(augment)
    with tf.device("/cpu:0"):
        images_t, labels_t = tf.convert_to_tensor(images), tf.convert_to_tensor(labels)
    if images_t.shape.rank < 2 or labels_t.shape.rank not in (1, 2):
        raise ValueError("from_arrays takes images [N, H, W, C] (or any inputs [N, ...]) and labels [N] (class ids) "
                         f"or [N, num_classes] (one-hot); received images of shape {tuple(images_t.shape)} and "
                         f"labels of shape {tuple(labels_t.shape)}")
    if not (labels_t.dtype.is_integer or labels_t.dtype.is_floating):
        raise ValueError(f"labels must be class ids or one-hot rows (numbers); received dtype {labels_t.dtype.name}")
    if labels_t.dtype.is_floating and (labels_t.shape.rank == 1 or labels_t.shape[-1] == 1):  # ids, not one-hot
        fractional = labels_t[tf.math.not_equal(labels_t, tf.round(labels_t))]
        if tf.size(fractional) > 0:
            raise ValueError(f"labels [N] (or [N, 1]) are class ids; received non-integer values such as "
                             f"{float(fractional[0]):g}. Accepted: integers 0 to num_classes - 1, or one-hot rows "
                             "[N, num_classes]")
    n = int(images_t.shape[0])
    if n != int(labels_t.shape[0]) or n == 0:
        raise ValueError(f"images and labels must have the same, non-zero length; received {n} images and "
                         f"{int(labels_t.shape[0])} labels")
    if not aug.is_identity and images_t.shape.rank not in (3, 4):
        raise ValueError(f"augment={augment!r} needs images [N, H, W, C] or [N, H, W]; received shape "
                         f"{tuple(images_t.shape)}")
    order = np.random.default_rng([seed, epoch, 0]).permutation(n) if shuffle else np.arange(n)
    params = {} if aug.is_identity else aug.draw(n, tuple(images_t.shape[1:3]), seed=seed, epoch=epoch)
    # The images' mean per channel: what load_dataset's erasing fills with, in any pixel scale.
    fill = (tf.reduce_mean(tf.cast(images_t, tf.float32), axis=(0, 1, 2)) if aug.random_erasing else 0.0)
    gray = images_t.shape.rank == 3  # [N, H, W]: augmented with a channel axis, yielded without

    def prepare(x, augment_batch):
        return augment_batch(x[..., None], fill)[..., 0] if gray else augment_batch(x, fill)

    return _batches(images_t, labels_t, order, aug, params, prepare, batch_size=batch_size,
                    drop_remainder=drop_remainder)


def is_array_pair(data) -> bool:
    """Whether ``data`` is ``(images, labels)`` arrays, a tuple or list of two, as `training.fit` and
    `training.evaluate` take them (not a list of batches)."""
    return isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list, dict))


def _batches(images: tf.Tensor, labels: tf.Tensor, order: np.ndarray, aug: Augment, params: dict[str, np.ndarray],
             prepare: Callable, *, batch_size: int, drop_remainder: bool) -> tf.data.Dataset:
    """Batches of ``images[order]`` and ``labels[order]``; ``prepare(x, augment_batch)`` turns a batch's images
    into the model's, calling ``augment_batch(x, fill)`` where the augmentation belongs."""
    params_t = {key: tf.constant(value) for key, value in params.items()}

    def make_batch(index):
        def augment_batch(x, fill):
            if not params_t:
                return x
            return aug.apply(x, {key: tf.gather(value, index) for key, value in params_t.items()},
                             fill=tf.cast(fill, x.dtype))

        return prepare(tf.gather(images, index), augment_batch), tf.gather(labels, index)

    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(make_batch, num_parallel_calls=_PARALLEL_CALLS, deterministic=True)
    return ds.prefetch(_PREFETCH).with_options(_pipeline_options())


def _pipeline_options() -> tf.data.Options:
    options = tf.data.Options()
    options.autotune.enabled = False
    options.deterministic = True
    # Keep the fixed parallelism we chose: no rewrite may add AUTOTUNE'd parallel maps.
    options.experimental_optimization.map_parallelization = False
    return options


@functools.lru_cache(maxsize=8)
def _as_tensors(data: _Split) -> tuple[tf.Tensor, tf.Tensor]:
    # Converted once per loaded split: the loop rebuilds the dataset every epoch.
    with tf.device("/cpu:0"):
        return tf.constant(data.images), tf.constant(data.labels)


def _load_split(name: str, split: str, *, data_dir, options: dict[str, Any]) -> _Split:
    builder = _BUILDERS.get(name)
    if builder is None:
        if options:
            raise ValueError(
                f"unknown option(s) {', '.join(sorted(options))} for TFDS dataset {name!r}; TFDS datasets "
                f"accept none. Built-in datasets: {', '.join(list_datasets())}"
            )
        return _load_tfds_any(name, split, data_dir)
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r} for dataset {name!r}. Accepted splits: {', '.join(_SPLITS)}")
    accepted = [p for p in inspect.signature(builder).parameters if p not in ("split", "data_dir")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for dataset {name!r}. Accepted: {', '.join(accepted) or 'none'}"
        )
    if name == "fashion_mnist":
        return builder(split, data_dir=data_dir)
    if data_dir is not None:
        raise ValueError(f"dataset {name!r} does not read files; received data_dir={data_dir!r}")
    return builder(split, **options)


# -- IDX files ------------------------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (LeCun's MNIST format), raw or gzip-compressed, into a numpy array.

    Compression is detected from the file's first bytes, not its name.

    Args:
        path: the file.

    Returns:
        The array, with the file's shape and a native-endian dtype (uint8 for image and label files).

    Raises:
        ValueError: the file is not a well-formed IDX file (bad magic, unknown type, wrong size).

    Example:
        >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
        (10000,)
    """
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"{os.fspath(path)} is not an IDX file: magic {raw[:4].hex() or 'empty'}, expected 0000 then a type "
            f"byte in {', '.join(f'{t:#04x}' for t in _IDX_TYPES)} and the number of dimensions"
        )
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{os.fspath(path)}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{os.fspath(path)}: IDX header says shape {dims} ({expected} bytes), but the file has {len(raw)} bytes"
        )
    array = np.frombuffer(raw, dtype, count=math.prod(dims), offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False)


# -- fashion_mnist --------------------------------------------------------------------------------


def _find_idx_pair(directory: str, split: str) -> tuple[str, str] | None:
    for sub in _FASHION_SUBDIRS:
        base = os.path.join(directory, sub) if sub else directory
        found = []
        for stem in _FASHION_FILES[split]:
            options = (os.path.join(base, stem), os.path.join(base, stem + ".gz"))  # raw first: faster
            found.append(next((p for p in options if os.path.isfile(p)), None))
        if all(found):
            return found[0], found[1]
    return None


def _fashion_from_idx(images_path: str, labels_path: str, source: str) -> _Split:
    # The same _Split for unchanged files, so that `_as_tensors` converts it once, not every epoch.
    stats = [os.stat(p) for p in (images_path, labels_path)]
    return _fashion_from_idx_cached(images_path, labels_path, source, *((s.st_mtime_ns, s.st_size) for s in stats))


@functools.lru_cache(maxsize=4)
def _fashion_from_idx_cached(images_path: str, labels_path: str, source: str, *file_versions) -> _Split:
    del file_versions  # (mtime, size) of each file, part of the cache key only: a rewritten file is read again
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28); got {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),):
        raise ValueError(
            f"{labels_path}: expected {len(images)} labels to match {images_path}; got shape {labels.shape}"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{labels_path}: labels must be in 0..9; found {int(labels.max())}")
    return _Split(
        images=images[..., None],
        labels=labels.astype(np.int32),
        class_names=FASHION_MNIST_CLASSES,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        source=source,
    )


def _tfds_load(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Loads a whole TFDS split into memory: ``(images uint8 [N, H, W, C], labels, class names)``."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            f"loading {name!r} through TFDS needs tensorflow-datasets: pip install tensorflow-datasets"
        ) from e
    (images, labels), info = tfds.load(
        name, split=split, data_dir=data_dir, batch_size=-1, as_supervised=True, with_info=True
    )
    images, labels = tfds.as_numpy(images), tfds.as_numpy(labels)
    label = info.features[info.supervised_keys[1]] if info.supervised_keys else None
    num_classes = int(getattr(label, "num_classes", 0) or labels.max() + 1)
    names = getattr(label, "names", None) or [str(i) for i in range(num_classes)]
    return images, labels, tuple(names)


def _fashion_mnist(split: str, *, data_dir: str | os.PathLike | None = None) -> _Split:
    tried = []
    candidates = [
        ("data_dir", os.fspath(data_dir) if data_dir is not None else None),
        ("ZOO_DATA_DIR", os.environ.get("ZOO_DATA_DIR") or None),
        ("Debian dataset-fashion-mnist", DEBIAN_FASHION_MNIST_DIR),
    ]
    names = " and ".join(f"{stem}[.gz]" for stem in _FASHION_FILES[split])
    for label, directory in candidates:
        if directory is None:
            tried.append(f"{label}: not set")
            continue
        pair = _find_idx_pair(directory, split)
        if pair is None:
            where = ", ".join(os.path.join(directory, s) if s else directory for s in _FASHION_SUBDIRS)
            tried.append(f"{label}: no {names} in {where}")
            continue
        source = f"debian:{directory}" if label.startswith("Debian") else os.path.dirname(pair[0])
        return _fashion_from_idx(*pair, source=source)
    try:
        return _fashion_from_tfds(split)
    except Exception as e:  # noqa: BLE001  (any failure means this source is unavailable; it is reported)
        tried.append(f"TFDS fashion_mnist: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise FileNotFoundError(
        f"no Fashion-MNIST {split!r} split found. Tried, in order:\n  - "
        + "\n  - ".join(tried)
        + "\nTo get one: install the Debian package (apt-get install dataset-fashion-mnist), or set ZOO_DATA_DIR "
        "(or pass data_dir=) to a directory holding the four IDX files (raw or .gz), or allow network access "
        "so that TFDS can download fashion_mnist."
    )


@functools.lru_cache(maxsize=2)  # one _Split per split, converted to tensors once (see _fashion_from_idx)
def _fashion_from_tfds(split: str) -> _Split:
    images, labels, _ = _tfds_load("fashion_mnist", split, None)
    return _Split(
        images=np.asarray(images, np.uint8).reshape(-1, 28, 28, 1),
        labels=np.asarray(labels, np.int32),
        class_names=FASHION_MNIST_CLASSES,
        mean=FASHION_MNIST_MEAN,
        std=FASHION_MNIST_STD,
        source="tfds:fashion_mnist",
    )


# -- digits ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_splits() -> dict[str, _Split]:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError(
            "the 'digits' dataset is scikit-learn's: pip install scikit-learn (or keras-zoo[dev])"
        ) from e
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]  # pixel values are 0..16
    labels = digits.target.astype(np.int32)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=_DIGITS_TEST_SIZE, stratify=labels, random_state=0
    )
    train = images[train_idx].astype(np.float64)
    # Measured on the train split (cheap, so computed rather than stored), per channel.
    mean, std = (float(train.mean()),), (float(train.std()),)
    return {
        split: _Split(
            images=images[idx],
            labels=labels[idx],
            class_names=tuple(str(d) for d in range(10)),
            mean=mean,
            std=std,
            source="sklearn:digits",
        )
        for split, idx in (("train", train_idx), ("test", test_idx))
    }


def _digits(split: str) -> _Split:
    return _digits_splits()[split]


# -- synthetic ------------------------------------------------------------------------------------


def _synthetic(
    split: str,
    *,
    image_shape: tuple[int, int, int] = (28, 28, 1),
    num_classes: int = 10,
    num_examples: int | None = None,
    noise: float = 0.3,
    data_seed: int = 0,
) -> _Split:
    """Each class is a fixed random 4x4 block pattern, upsampled; examples add Gaussian noise.

    Learnable by a tiny CNN in a few steps; deterministic from ``data_seed`` (the train and test
    splits are different draws of the same classes). Mean/std are measured on the default-size
    train split of the same options.
    """
    check_sizes("image_shape", image_shape, ("height", "width", "channels"))
    check_int("num_classes", num_classes, minimum=2)
    if num_examples is not None:
        check_int("num_examples", num_examples, minimum=1)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"noise must be a float >= 0; received {noise!r}")
    check_int("data_seed", data_seed, minimum=0)
    shape = tuple(int(s) for s in image_shape)
    return _synthetic_cached(split, shape, int(num_classes), num_examples, float(noise), int(data_seed))


def _synthetic_arrays(split, image_shape, num_classes, num_examples, noise, data_seed):
    height, width, channels = image_shape
    coarse = np.random.default_rng([data_seed, 0]).random((num_classes, 4, 4, channels))
    rows = np.arange(height) * 4 // height
    cols = np.arange(width) * 4 // width
    templates = coarse[:, rows][:, :, cols]  # [K, H, W, C]
    n = num_examples or _SYNTHETIC_SIZES[split]
    rng = np.random.default_rng([data_seed, 1 + _SPLITS.index(split)])
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int32)  # balanced
    images = templates[labels] + rng.normal(0.0, noise, size=(n, *image_shape))
    return np.clip(images, 0.0, 1.0).astype(np.float32), labels


@functools.lru_cache(maxsize=8)
def _synthetic_cached(split, image_shape, num_classes, num_examples, noise, data_seed) -> _Split:
    images, labels = _synthetic_arrays(split, image_shape, num_classes, num_examples, noise, data_seed)
    reference = images if split == "train" and num_examples is None else None
    if reference is None:
        reference, _ = _synthetic_arrays("train", image_shape, num_classes, None, noise, data_seed)
    reference = reference.astype(np.float64)
    return _Split(
        images=images,
        labels=labels,
        class_names=tuple(f"class_{i}" for i in range(num_classes)),
        mean=tuple(float(m) for m in reference.mean(axis=(0, 1, 2))),
        std=tuple(float(s) for s in reference.std(axis=(0, 1, 2))),
        source="synthetic",
    )


# -- any TFDS dataset -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _load_tfds_any_cached(name: str, split: str, data_dir: str | None) -> _Split:
    images, labels, class_names = _tfds_load(name, split, data_dir)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"TFDS dataset {name!r}: expected uint8 images of one shape (N, H, W, C); got {images.dtype} "
            f"{images.shape}. Only fixed-size image classification datasets are supported."
        )
    channels = images.shape[-1]
    return _Split(
        images=images,
        labels=np.asarray(labels, np.int32),
        class_names=class_names,
        mean=(_TFDS_DEFAULT_MEAN,) * channels,
        std=(_TFDS_DEFAULT_STD,) * channels,
        source=f"tfds:{name}",
    )


def _check_tfds_name(name: str) -> None:
    """A short error for a name that is neither built in nor in TFDS's registry (TFDS's own error lists all
    400+ names). Only after TFDS failed: it also loads what its registry does not list (a dataset prepared in
    ``data_dir`` by another program, a community name such as ``huggingface:mnist``)."""
    import tensorflow_datasets as tfds

    builtin = list_datasets()
    if ":" not in name and name.split("/")[0] not in tfds.list_builders():
        close = difflib.get_close_matches(name, list(dict.fromkeys([*builtin, *tfds.list_builders()])), n=3)
        raise ValueError(f"unknown dataset {name!r}: neither built in ({', '.join(builtin)}) nor a TFDS dataset"
                         f"{'. Close matches: ' + ', '.join(close) if close else ''}. TFDS's catalog: "
                         "https://www.tensorflow.org/datasets/catalog") from None


def _load_tfds_any(name: str, split: str, data_dir) -> _Split:
    try:
        return _load_tfds_any_cached(name, split, os.fspath(data_dir) if data_dir is not None else None)
    except ImportError:
        raise
    except Exception as e:
        _check_tfds_name(name)
        close = difflib.get_close_matches(name, list(_BUILDERS), n=3)
        hint = f" Close matches among the built-ins: {', '.join(close)}." if close else ""
        raise ValueError(
            f"could not load dataset {name!r} split {split!r}: it is not built in "
            f"({', '.join(list_datasets())}) and TFDS failed with {type(e).__name__}: {e}.{hint}"
        ) from e


_BUILDERS: dict[str, Callable[..., _Split]] = {
    "digits": _digits,
    "fashion_mnist": _fashion_mnist,
    "synthetic": _synthetic,
}
