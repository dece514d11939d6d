"""Compression plans end to end: transform, fine-tune, convert, verify, measure.

A `Plan` names one variant (``prune=0.8, cluster=16, quantize="qat"``); `compress` applies it to a
float Keras model in the documented order (low rank → prune → cluster → QAT, each fine-tuned with the
shared loop and stripped), and `export_variant` converts the result to TFLite, checks it against the
float source on labelled images (`export.tflite.check_parity`, failing past the tolerance) and measures
file size, gzip'd size, latency at batch 1 and throughput at batch 64. ``zoo export`` and
``benchmarks/compression.py`` are thin layers over these.

    >>> result = export_variant(model, Plan("int8", quantize="int8"), data=data, out_dir="out")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

from export import tflite
from export._choices import CALIBRATION_IMAGES, LR_SCHEDULES, QUANTIZE, STAGES
from export._finetune import finetune_wrapped, functional
from zoo._checks import as_int
from zoo._keras import copy_model
from zoo._files import write_bytes, write_json

__all__ = ["REPORT_FILE", "ExportData", "ExportReport", "Plan", "STANDARD_PLANS", "VariantResult", "compress",
           "deep_compression_plan", "export_variant", "finetune_recipe", "float32_weight_bytes", "load_export_data",
           "named_plan", "parameter_names"]


class _FrozenDict(dict):
    """A read-only dict (a `Plan`'s ``epochs``): hashable plans, and still a dict to ``asdict``, pickle and copy."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("a Plan is immutable: use dataclasses.replace(plan, epochs={...})")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self):
        return type(self), (dict(self),)


# How a `Plan`'s errors name its parameters and itself (`parameter_names`); unset, by their own names.
_NAMES: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("plan_parameter_names", default={})


@contextlib.contextmanager
def parameter_names(names: Mapping[str, str]) -> Iterator[None]:
    """Plans built in the block name their parameters in errors as ``names`` says, e.g. by a command
    line's flags: ``{"prune_layers": "--prune-layer", ...}``. ``"epochs_of"`` names a stage's epochs (a
    format with ``{stage}``; by default ``epochs['prune']``) and ``"plan"`` the plan being built (by default
    ``plan 'NAME'``).

    Example:
        >>> with parameter_names({"cluster": "--cluster"}):  # doctest: +SKIP
        ...     Plan("c", cluster=1)
        ValueError: --cluster must be an int >= 2; received 1
    """
    token = _NAMES.set(dict(names))
    try:
        yield
    finally:
        _NAMES.reset(token)


def _percent(fraction: float) -> str:
    """0.8 -> '80%', 0.985 -> '98.5%' (a sparsity as precise as it was given, to 0.1 pt)."""
    return f"{round(100 * fraction, 1):g}%"


@dataclasses.dataclass(frozen=True)
class Plan:
    """One compressed variant.

    Attributes:
        name: the variant's name (file ``<name>.tflite``).
        prune: final sparsity of magnitude pruning (polynomial decay), or None.
        m_by_n: structured sparsity instead, e.g. ``(2, 4)``.
        cluster: clusters per kernel (weight sharing), or None.
        low_rank: SVD energy to keep in the Dense layers, or None.
        quantize: ``"none"`` (float32), ``"fp16"``, ``"dynamic"``, ``"int8"`` (post-training,
            full integer) or ``"qat"`` (quantization-aware training, then int8).
        prune_layers: per-layer sparsities overriding ``prune``: ``(glob, sparsity)`` pairs matched
            against layer names, first match wins, each glob once (Deep Compression prunes the large
            dense layers harder than the convolutions). The first convolution and the classifier
            (`export.prune.edge_layers`) stay dense unless a pattern here names them.
        epochs: fine-tuning epochs of a stage the plan runs (``"low_rank"``, ``"prune"``, ``"cluster"``,
            ``"qat"``) when it differs from the recipe's, e.g. ``{"prune": 3}``: pruning ramps up over its
            stage. Stored as a read-only mapping (a plan is immutable and hashable).
        distill: fine-tune every stage on the float source's soft targets besides the labels
            (knowledge distillation, `training.distill.Distiller`).
        schedule: each stage's learning-rate schedule, ``"constant"`` or ``"cosine"`` (decaying to
            zero over the stage), replacing the recipe's; None keeps the recipe's. Only for plans that
            fine-tune.
        integer_io: an int8 or QAT plan's TFLite model takes ``uint8`` pixels and returns ``int8`` logits
            (integer-only accelerators; `export.tflite.convert`'s ``integer_io``) instead of float32.

    Example:
        >>> Plan("deep", prune=0.85, prune_layers=(("fc*", 0.97),), cluster=16, quantize="qat").describe()
        'prune 85% (fc*: 97%) + 16 clusters + QAT int8'
    """

    name: str
    prune: float | None = None
    m_by_n: tuple[int, int] | None = None
    cluster: int | None = None
    low_rank: float | None = None
    quantize: str = "none"
    prune_layers: tuple[tuple[str, float], ...] = ()
    epochs: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False)  # the other fields hash it
    distill: bool = False
    schedule: str | None = None
    integer_io: bool = False

    def __post_init__(self):
        names = _NAMES.get()  # how the errors name the parameters (`parameter_names`)
        n = lambda field: names.get(field, field)  # noqa: E731
        if self.quantize not in QUANTIZE:
            raise ValueError(f"unknown {n('quantize')} {self.quantize!r}; accepted: {', '.join(QUANTIZE)}")
        if self.prune is not None and not 0.0 < self.prune < 1.0:
            raise ValueError(f"{n('prune')} must be a sparsity in (0, 1); received {self.prune!r}")
        if self.m_by_n is not None and (len(self.m_by_n) != 2 or None in map(as_int, self.m_by_n)
                                        or not 0 < self.m_by_n[0] < self.m_by_n[1]):
            raise ValueError(f"{n('m_by_n')} must be (m, n) with 0 < m < n, e.g. (2, 4); received {self.m_by_n!r}")
        if self.m_by_n is not None:
            object.__setattr__(self, "m_by_n", tuple(int(v) for v in self.m_by_n))
        if self.prune is not None and self.m_by_n is not None:
            raise ValueError(f"give {n('prune')} (a sparsity) or {n('m_by_n')} (structured), not both")
        if self.cluster is not None and as_int(self.cluster, minimum=2) is None:
            raise ValueError(f"{n('cluster')} must be an int >= 2; received {self.cluster!r}")
        if self.cluster is not None:
            object.__setattr__(self, "cluster", int(self.cluster))  # numpy's ints too
        if self.low_rank is not None and not 0.0 < self.low_rank <= 1.0:
            raise ValueError(f"{n('low_rank')} must be an energy in (0, 1]; received {self.low_rank!r}")
        object.__setattr__(self, "prune_layers", tuple((str(g), float(v)) for g, v in self.prune_layers))
        if self.prune_layers and self.prune is None:
            given = ", ".join(f"{glob}={value:g}" for glob, value in self.prune_layers)
            raise ValueError(f"{n('prune_layers')} refines {n('prune')}; give {n('prune')} too (received "
                             f"{n('prune_layers')} {given} without it)")
        bad = [(g, v) for g, v in self.prune_layers if not 0.0 <= v < 1.0]
        if bad:
            raise ValueError(f"{n('prune_layers')} sparsities must be in [0, 1); received {bad!r}")
        globs = [g for g, _ in self.prune_layers]
        repeated = sorted({g for g in globs if globs.count(g) > 1})
        if repeated:
            raise ValueError(f"{n('prune_layers')} name each glob once (the first match wins, a repeat is never "
                             f"used); received {', '.join(repeated)} more than once in {self.prune_layers!r}")
        if self.schedule is not None and self.schedule not in LR_SCHEDULES:
            raise ValueError(f"{n('schedule')} must be one of {', '.join(LR_SCHEDULES)} or None (the recipe's); "
                             f"received {self.schedule!r}")
        if self.integer_io and self.tflite_quantization != "int8":
            raise ValueError(f"{n('integer_io')} needs {n('quantize')} int8 or qat (integer tensors); received "
                             f"{n('quantize')} {self.quantize!r}")
        plan = f"{names.get('plan', f'plan {self.name!r}')} ({self.describe()})"
        for option, given in (("distill", self.distill), ("schedule", self.schedule is not None)):
            if given and not self.stages:
                raise ValueError(f"{n(option)} applies to fine-tuning; {plan} has none")
        epochs = dict(self.epochs)
        for stage, count in epochs.items():
            if stage not in STAGES:
                raise ValueError(f"unknown fine-tuning stage {stage!r} in {n('epochs')}; accepted: {', '.join(STAGES)}")
            of = names.get("epochs_of", "epochs[{stage!r}]").format(stage=stage)
            if stage not in self.stages:
                raise ValueError(f"{of}: {plan} has no {stage} stage; its stages: {', '.join(self.stages) or 'none'}")
            if as_int(count, minimum=1) is None:
                raise ValueError(f"{of} must be an int >= 1; received {count!r}")
        object.__setattr__(self, "epochs", _FrozenDict({stage: int(count) for stage, count in epochs.items()}))

    @property
    def stages(self) -> tuple[str, ...]:
        """The fine-tuning stages the plan runs, in `STAGES` order (none for post-training conversion)."""
        on = {"low_rank": self.low_rank is not None, "prune": self.prune is not None or self.m_by_n is not None,
              "cluster": self.cluster is not None, "qat": self.quantize == "qat"}
        return tuple(stage for stage in STAGES if on[stage])

    @property
    def trains(self) -> bool:
        """Whether the plan fine-tunes (everything but post-training conversion does)."""
        return bool(self.stages)

    @property
    def tflite_quantization(self) -> str:
        return "int8" if self.quantize == "qat" else self.quantize

    def describe(self) -> str:
        parts = []
        if self.low_rank is not None:
            parts.append(f"low-rank Dense (energy {self.low_rank})")
        if self.prune is not None:
            layers = ", ".join(f"{g}: {_percent(v)}" for g, v in self.prune_layers)
            parts.append(f"prune {_percent(self.prune)}" + (f" ({layers})" if layers else ""))
        if self.m_by_n is not None:
            parts.append(f"{self.m_by_n[0]}:{self.m_by_n[1]} sparsity")
        if self.cluster is not None:
            parts.append(f"{self.cluster} clusters")
        parts.append({"none": "float32", "fp16": "FP16", "dynamic": "dynamic-range int8", "int8": "PTQ int8",
                      "qat": "QAT int8"}[self.quantize] + (" (uint8 in, int8 out)" if self.integer_io else ""))
        return " + ".join(parts) + (", distilled" if self.distill and self.trains else "")


def named_plan(**parameters) -> Plan:
    """A `Plan` named by its parameters (how ``zoo export`` names a custom plan), so that plans that differ
    have different files and fine-tuning runs. In order: ``lowrank90``; ``pruned80`` and each per-layer
    sparsity (``fcx-97`` for ``fc*``: 97%; a glob with other characters than letters, digits, ``_`` and
    a final ``*`` also gets a hash of itself, ``conv12hee1a6c-50`` for ``conv[12]``) or ``pruned2of4``;
    ``clustered16``; the quantization (and ``uint8io``); stage epochs (``prune3ep``); ``distilled``; the
    schedule.
    ``float32`` when there is nothing.

    Example:
        >>> named_plan(prune=0.8, prune_layers=(("fc*", 0.97),), cluster=16, quantize="qat").name
        'pruned80_fcx-97_clustered16_qat'
    """

    def slug(glob: str) -> str:
        plain = "".join(c for c in glob.replace("*", "x") if c.isalnum() or c == "_")
        if glob.rstrip("*").replace("_", "").isalnum() and glob.count("*") <= 1:
            return plain
        return f"{plain}h{hashlib.sha256(glob.encode()).hexdigest()[:6]}"

    def percent(fraction: float) -> str:
        return f"{100 * fraction:g}"  # six significant digits: 12.34 and 12.3 stay apart

    with parameter_names({"plan": "the plan", **_NAMES.get()}):  # not yet named: not "plan 'float32'"
        plan = Plan("float32", **parameters)  # validates the parameters
    parts = [f"lowrank{percent(plan.low_rank)}" if plan.low_rank is not None else "",
             f"pruned{percent(plan.prune)}" if plan.prune is not None else "",
             *(f"{slug(glob)}-{percent(value)}" for glob, value in plan.prune_layers),
             f"pruned{plan.m_by_n[0]}of{plan.m_by_n[1]}" if plan.m_by_n is not None else "",
             f"clustered{plan.cluster}" if plan.cluster is not None else "",
             plan.quantize if plan.quantize != "none" else "", "uint8io" if plan.integer_io else "",
             *(f"{stage}{plan.epochs[stage]}ep" for stage in STAGES if stage in plan.epochs),
             "distilled" if plan.distill else "", plan.schedule or ""]
    return dataclasses.replace(plan, name="_".join(p for p in parts if p) or "float32")


STANDARD_PLANS = (
    Plan("float32"),
    Plan("fp16", quantize="fp16"),
    Plan("dynamic", quantize="dynamic"),
    Plan("int8", quantize="int8"),
    Plan("qat_int8", quantize="qat"),
    Plan("pruned", prune=0.8),
    Plan("clustered", cluster=16),
    Plan("pruned_int8", prune=0.8, quantize="int8"),
    Plan("pruned_clustered_qat_int8", prune=0.8, cluster=16, quantize="qat"),
)


# Per-layer sparsities from each layer's pruning sensitivity (`export.prune.sensitivity`, measured by
# benchmarks/prune_sensitivity.py on the pretrained weights: one layer pruned, no fine-tuning). The first
# convolution and the classifier lose points at 50-90% and hold few weights: they stay dense or light; the
# large, robust layers take the cut (AlexNet's fc6/fc7 lose < 0.5 pt at 98%).
_DEEP_SPARSITY = {
    "alexnet": (0.84, (("conv1", 0.0), ("conv2", 0.7), ("fc6", 0.985), ("fc7", 0.98), ("predictions", 0.6))),
    "vgg": (0.88, (("block1_conv1", 0.0), ("block2_conv1", 0.6), ("block3_conv1", 0.75), ("block3_conv2", 0.8),
                   ("block4_conv2", 0.95), ("block5_conv1", 0.95), ("block5_conv2", 0.98), ("fc1", 0.97),
                   ("predictions", 0.5))),
}

# AlexNet, pruned to 95% in five epochs, was still recovering when they ended (train top-1 89.1% -> 90.0%
# over the last one; test -1.48 pt). At 93.8% (convolutions 85%, fc6 99%), Adam at a constant 1e-4:
# 8 epochs -0.95 pt, 12 epochs -0.65 pt (39.5x); 12 epochs with the rate decaying as a cosine over each
# stage -1.46 pt (the rate is low before the sparsity stops ramping). At about 93% (convolutions 84%,
# fc6 98.5%, the sparsities above), 16 epochs: -0.61 pt at 37.7x, the pruned model at -0.53 pt; 20 epochs:
# -0.39 pt at 37.7x (pruned -0.34 pt), the 35x-within-0.5-pt target.
_DEEP_PRUNE_EPOCHS = {"alexnet": 20}


def deep_compression_plan(family: str) -> Plan:
    """A family's "deep compression" plan (Han et al. 2016: prune, share weights, quantize).

    The paper prunes each layer as hard as its sensitivity allows. AlexNet and VGG, the paper's
    models, get per-layer sparsities from their measured sensitivity (`_DEEP_SPARSITY`: 93-94% of
    the weights, the first convolution dense); every other family, small and convolutional, 80%
    throughout. Then 16 shared values per kernel and QAT int8. Pruning takes five epochs of
    fine-tuning (twenty for AlexNet; the sparsity ramps up over the first 70%), clustering and QAT
    one each, every stage distilled from the float model.

    Example:
        >>> deep_compression_plan("resnet").describe()
        'prune 80% + 16 clusters + QAT int8, distilled'
    """
    sparsity, layers = _DEEP_SPARSITY.get(family, (0.8, ()))
    return Plan("deep_compression", prune=sparsity, prune_layers=layers, cluster=16, quantize="qat",
                epochs={"prune": _DEEP_PRUNE_EPOCHS.get(family, 5)}, distill=True)


@dataclasses.dataclass(frozen=True)
class ExportData:
    """What export needs besides the model.

    Attributes:
        train: fine-tuning data: a dataset name (normalized batches by the recipe) or an
            ``epoch -> tf.data.Dataset`` function.
        representative: raw-pixel training images for int8 calibration (a few hundred).
        test_images, test_labels: raw-pixel labelled images for the parity check and accuracy.
        mean, std, scale: the model's input normalization, ``(x * scale - mean) / std``.
        class_names: the dataset's class names, one per label (empty when unknown).
    """

    train: Any
    representative: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float = 1 / 255
    class_names: tuple[str, ...] = ()


def load_export_data(dataset: str, *, representative: int = CALIBRATION_IMAGES, test_limit: int | None = None,
                     input_shape: tuple[int, int] | None = None, channels: int | None = None,
                     **dataset_options) -> ExportData:
    """`ExportData` from a `training.load_dataset` name (the test split for parity, the train split's
    first ``representative`` images for calibration), resized to ``input_shape`` (height, width).

    Raises:
        ValueError: ``channels`` (the model's) differ from the dataset images' (it failed in int8 calibration,
            after fine-tuning), or what `training.load_dataset` refuses.
    """
    from training import load_dataset

    def raw(split: str, limit: int | None):
        data, info = load_dataset(dataset, split, batch_size=1024, normalize=False, shuffle=False, limit=limit,
                                  image_size=input_shape, **dataset_options)
        images, labels = zip(*((x.numpy(), y.numpy()) for x, y in data))
        # load_dataset yields [0, 1] values; the exported models take raw [0, 255] pixels
        return np.round(np.concatenate(images) * 255.0), np.concatenate(labels), info

    rep, _, info = raw("train", representative)
    if channels is not None and info.image_shape[2] != channels:
        raise ValueError(f"the model takes {channels} channel(s) but {dataset!r} images have {info.image_shape[2]}; "
                         "the height and width may differ (images are resized), the channels may not. Accepted: a "
                         "dataset with images of the model's channels")
    test_images, test_labels, _ = raw("test", test_limit)
    return ExportData(train=dataset, representative=rep.astype(np.float32), test_images=test_images.astype(np.float32),
                      test_labels=test_labels, mean=tuple(info.mean), std=tuple(info.std),
                      class_names=tuple(info.class_names))


# QAT begins from calibrated ranges at about the float model's accuracy (`quantize.calibrate_ranges`), so it
# fine-tunes at a tenth of the recipe's learning rate. 50 steps of Adam, QAT int8 against float top-1:
# VGG-11 at 1e-4 -0.75 pt, 3e-5 -0.16, 1e-5 +0.01; AlexNet at 1e-4 -0.40, 1e-5 -0.23 (10,000 test images).
QAT_LEARNING_RATE_SCALE = 0.1


def finetune_recipe(**changes):
    """The default fine-tuning recipe of compressed models: Adam at 1e-4, one epoch, flips (of a dataset name:
    data given as a ``tf.data.Dataset`` or a function is fine-tuned on as it is)."""
    from training import Recipe

    defaults = dict(optimizer="adam", learning_rate=1e-4, epochs=1, batch_size=128, augment="flip",
                    checkpoint_every=100)
    return Recipe(**{**defaults, **changes})


def _limited(train, recipe, steps: int | None, model: keras.Model):
    """``train`` as `training.fit` reads it for ``model``, each epoch cut to ``steps`` batches (None: as is)."""
    if steps is None:
        return train
    from training import augmented_by, epoch_data

    epochs = epoch_data(train, recipe, model=model)
    return augmented_by(lambda epoch: epochs(epoch).take(steps), getattr(epochs, "augment", None))


FINGERPRINT_FILE = "fingerprint.json"


def _sha256(arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _fingerprint(model: keras.Model, plan: Plan, recipe, train, finetune_steps: int | None) -> dict[str, Any]:
    """What a plan's fine-tuning runs are made from, JSON-ready: the plan, the recipe, the data (its name, or
    for a function or ``tf.data.Dataset`` a hash of the first batch `training.fit` reads from it) and the
    source model (its architecture and weights, hashed)."""
    from training import first_batch

    architecture = json.dumps(model.get_config(), sort_keys=True, default=repr).encode()
    plan = dataclasses.replace(plan, name="", integer_io=False)  # its name and conversion types: the same runs
    plan_fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan)}
    data = train if isinstance(train, str) else {
        "first_batch_sha256": _sha256(t.numpy() for t in tf.nest.flatten(first_batch(train, recipe, model=model)))}
    return json.loads(json.dumps({
        "plan": {**plan_fields, "epochs": dict(plan.epochs)}, "description": plan.describe(),
        "recipe": recipe.to_dict(), "train": data,
        "finetune_steps": finetune_steps,
        "source": {"architecture_sha256": hashlib.sha256(architecture).hexdigest(),
                   "weights_sha256": _sha256(w.numpy() for w in model.weights)},
    }))


def _fingerprint_of(work: Path) -> dict[str, Any] | None:
    try:
        return json.loads((work / FINGERPRINT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _resume_or_start(work: Path, fingerprint: dict[str, Any]) -> None:
    """Keeps the stage runs in ``work`` when ``FINGERPRINT_FILE`` there matches (an interrupted export resumes
    them), else removes them: `training.fit` resumes any checkpoint it finds, so a run of another plan or
    source model would otherwise come back finished."""
    if _fingerprint_of(work) != fingerprint:
        for stage in STAGES:
            shutil.rmtree(work / stage, ignore_errors=True)
        write_json(work / FINGERPRINT_FILE, fingerprint)


def _frozen_copy(model: keras.Model) -> keras.Model:
    """The distillation teacher: a copy of ``model`` (the `Distiller` freezes its teacher; the caller's model
    must stay trainable)."""
    teacher = copy_model(model)
    teacher.trainable = False
    return teacher


def _pruning_schedule(steps: int) -> dict[str, int]:
    """The polynomial schedule of a pruning stage of ``steps`` optimizer steps: masks updated about 20 times,
    the sparsity ramping up over the first 70% and reaching its target at a step the stage takes, however
    short (TFMOT's pruning step counts from 1 and updates at its multiples of ``frequency``)."""
    frequency = max(1, steps // 20)
    return {"end_step": max(frequency, int(0.7 * steps) // frequency * frequency), "frequency": frequency}


def _m_by_n_blocks(kernel: np.ndarray, n: int) -> np.ndarray:
    """A kernel's weights in TFMOT's m-by-n blocks, ``[blocks, n]``: rows along the input channels (a convolution's
    ``[out x height x width, in]``, a Dense layer's ``[out, in]``), each padded with zeros to whole blocks."""
    rows = kernel.T if kernel.ndim == 2 else np.transpose(kernel, (3, 0, 1, 2)).reshape(-1, kernel.shape[2])
    return np.pad(rows, ((0, 0), (0, -rows.shape[1] % n))).reshape(-1, n)


def _check_sparsity(model: keras.Model, targets: Mapping[str, float], plan: Plan) -> None:
    """Raises unless each pruned kernel of the stripped ``model`` holds its target's zeros: to one weight, or
    0.5%, for a sparsity; in every block of n for ``plan.m_by_n`` (a row's last, partial block included)."""
    from export import prune

    short = []
    if plan.m_by_n is not None:
        zeros, n = plan.m_by_n
        for name in targets:
            for kernel in prune.kernel_weights(model.get_layer(name)):
                blocks = _m_by_n_blocks(kernel.numpy(), n)
                dense = int(np.sum(np.count_nonzero(blocks, axis=1) > n - zeros))
                if dense:
                    short.append(f"{name} {dense} of {len(blocks)} blocks of {n} with fewer than {zeros} zeros")
    else:
        achieved = prune.sparsity(model)
        for name, target in targets.items():
            if name not in achieved:  # no kernel `sparsity` counts
                continue
            size = sum(int(np.prod(k.shape)) for k in prune.kernel_weights(model.get_layer(name)))
            if achieved[name] < target - max(1 / size, 0.005):
                short.append(f"{name} {achieved[name]:.3f} < {target:.3f}")
    if short:
        raise ValueError(f"plan {plan.name!r} ({plan.describe()}) did not reach its sparsity after fine-tuning: "
                         f"{'; '.join(short)}")


def compress(model: keras.Model, plan: Plan, *, train=None, recipe=None, finetune_steps: int | None = None,
             work_dir: str | os.PathLike | None = None, share_runs: bool = False,
             on_stage: Callable[[str, keras.Model], None] | None = None, verbose=0) -> keras.Model:
    """Applies ``plan``'s transforms to a float functional model, fine-tuning after each.

    ``on_stage(stage, model)`` is called with each stage's stripped result (e.g. to measure what
    each stage costs). Every stage fine-tunes with ``recipe`` (default `finetune_recipe`), the QAT
    stage at `QAT_LEARNING_RATE_SCALE` times its learning rate; a distilled plan's teacher is a frozen
    copy of ``model``. Returns the stripped Keras model (quantization-aware for ``quantize="qat"``);
    the input is not changed.

    ``work_dir`` holds one fine-tuning run per stage and ``fingerprint.json``: the plan, recipe, data
    (its name, or a hash of its first batch), ``finetune_steps`` and a hash of the model's architecture
    and weights. A ``tf.data.Dataset`` that reshuffles unseeded gives another first batch each time it is
    read, so its runs start over: to resume, pass a function ``epoch -> dataset`` (or shuffle with a seed).
    With the same fingerprint the runs resume (an interrupted export continues); with another they are
    removed and fine-tuning starts over. Two processes fine-tuning into one ``work_dir`` take turns (the
    second resumes the first's finished runs). With ``share_runs``, a sibling of ``work_dir`` that holds
    the same fine-tuning (a plan that differs in its name or ``integer_io`` alone) is used instead, so
    ``zoo export --quantize qat`` and then ``--integer-io`` train QAT once.

    Raises:
        ValueError: no ``train`` for a plan that fine-tunes, a model that is not functional, a stage with
            nothing to act on (no Dense layer to factor or none that gets smaller, no layer to prune or
            cluster), or a kernel short of its target sparsity after pruning (``prune``, ``prune_layers``; with
            ``m_by_n``, a block of n with fewer than m zeros).
    """
    from export import prune

    if not plan.trains:
        return model
    if train is None:
        raise ValueError(f"plan {plan.name!r} ({plan.describe()}) fine-tunes: pass train data")
    model = functional(model, what=f"plan {plan.name!r} ({plan.describe()})")
    # Its flips apply to a dataset name: `training.fit` reads a tf.data.Dataset as it is, and refuses augment
    recipe = recipe or finetune_recipe(**({} if isinstance(train, str) else {"augment": None}))

    # What can be checked without training, before anything is written: a --prune-layer pattern that
    # matches nothing or nothing to prune (on the model pruning will see: low rank adds layers), a low-rank
    # plan for a model without Dense layers.
    # What `prune` prunes, and how much (`prune.layer_targets`); under m_by_n the sparsity is unused, 0.5 only
    # fills the argument.
    prune_args = dict(sparsity=plan.prune or 0.5, per_layer=dict(plan.prune_layers) or None, m_by_n=plan.m_by_n,
                      dense_edges=True)
    if "prune" in plan.stages and "low_rank" not in plan.stages:
        prune.layer_targets(model, **prune_args)
    dense = tuple(l.name for l in model.layers if type(l) is keras.layers.Dense)
    if "low_rank" in plan.stages and not dense:
        kinds = sorted({type(l).__name__ for l in model.layers})
        raise ValueError(f"plan {plan.name!r} ({plan.describe()}) factors Dense layers; {model.name!r} has none "
                         f"(its layer types: {', '.join(kinds)})")
    work = Path(work_dir) if work_dir else None
    if work is None:
        return _run_stages(model, plan, train=train, recipe=recipe, finetune_steps=finetune_steps, work=None,
                           dense=dense, prune_args=prune_args, on_stage=on_stage, verbose=verbose)
    from zoo._files import locked

    fingerprint = _fingerprint(model, plan, recipe, train, finetune_steps)
    if share_runs:
        work = next((d for d in [work, *sorted(work.parent.glob("*"))] if _fingerprint_of(d) == fingerprint), work)
    work.mkdir(parents=True, exist_ok=True)
    with locked(work):  # another process fine-tuning here finishes first; its finished runs then resume
        _resume_or_start(work, fingerprint)
        return _run_stages(model, plan, train=train, recipe=recipe, finetune_steps=finetune_steps, work=work,
                           dense=dense, prune_args=prune_args, on_stage=on_stage, verbose=verbose)


def _run_stages(model, plan: Plan, *, train, recipe, finetune_steps, work: Path | None, dense, prune_args, on_stage,
                verbose) -> keras.Model:
    """`compress`'s stages, each fine-tuned in ``work / stage`` (None: no run directories)."""
    from export import cluster, low_rank, prune, quantize
    from training import steps_per_epoch

    data = _limited(train, recipe, finetune_steps, model)
    if plan.schedule is not None:
        from training.recipes import Schedule

        recipe = dataclasses.replace(recipe, schedule=Schedule(kind=plan.schedule))
    recipes = {stage: dataclasses.replace(recipe, epochs=plan.epochs[stage]) if stage in plan.epochs else recipe
               for stage in STAGES}
    recipes["qat"] = dataclasses.replace(recipes["qat"],
                                         learning_rate=recipes["qat"].learning_rate * QAT_LEARNING_RATE_SCALE)
    teacher = _frozen_copy(model) if plan.distill else None

    def run_dir(stage: str):
        return None if work is None else work / stage

    def done(stage: str, result: keras.Model) -> keras.Model:
        if on_stage is not None:
            on_stage(stage, result)
        return result

    m = model
    if "low_rank" in plan.stages:
        m, factored = low_rank.low_rank(m, energy=plan.low_rank, layers=dense)
        if not factored:
            raise ValueError(f"plan {plan.name!r} ({plan.describe()}): no Dense layer of {m.name!r} gets smaller "
                             f"factored at energy {plan.low_rank} (eligible: {', '.join(dense)}); lower the energy")
        m = done("low_rank", finetune_wrapped(m, data, recipe=recipes["low_rank"], out_dir=run_dir("low_rank"),
                                              teacher=teacher, verbose=verbose))
    if "prune" in plan.stages:
        steps = steps_per_epoch(data, recipes["prune"]) * recipes["prune"].epochs
        wrapped = prune.prune(m, **prune_args, schedule="polynomial", **_pruning_schedule(steps), lower_dropout=True)
        pruned = prune.strip(prune.finetune_pruned(wrapped, data, recipe=recipes["prune"], out_dir=run_dir("prune"),
                                                   teacher=teacher, verbose=verbose))
        _check_sparsity(pruned, prune.layer_targets(m, **prune_args), plan)
        m = done("prune", pruned)
    if "cluster" in plan.stages:
        wrapped = cluster.cluster(m, clusters=plan.cluster, preserve_sparsity="prune" in plan.stages)
        m = done("cluster", cluster.strip(cluster.finetune_clustered(wrapped, data, recipe=recipes["cluster"],
                                                                     out_dir=run_dir("cluster"), teacher=teacher,
                                                                     verbose=verbose)))
    if "qat" in plan.stages:
        sparse, shared = "prune" in plan.stages, "cluster" in plan.stages
        preserve = {(True, True): "sparsity_clusters", (True, False): "sparsity", (False, True): "clusters"}.get(
            (sparse, shared), "none")
        m = done("qat", quantize.finetune_quantized(quantize.quantize_aware(m, preserve=preserve), data,
                                                    recipe=recipes["qat"], out_dir=run_dir("qat"), teacher=teacher,
                                                    verbose=verbose))
    return m


@dataclasses.dataclass(frozen=True)
class VariantResult:
    """One exported variant, measured."""

    name: str
    description: str
    file: str
    size_bytes: int
    gzip_bytes: int
    float32_weight_bytes: int
    conversion: tflite.ParityReport  # the TFLite model against the Keras model it was converted from
    parity: tflite.ParityReport  # the TFLite model against the original float model
    latency_ms_batch1: float
    images_per_s_batch64: float
    stage_accuracy: Mapping[str, float] = dataclasses.field(default_factory=dict)  # Keras, after each stage
    calibration_images: int = 0  # training images given to an int8 conversion for calibration
    input_dtype: str = "float32"  # the .tflite's input (raw pixels) and output (logits) types
    output_dtype: str = "float32"

    @property
    def compression(self) -> float:
        """float32 weights over the gzip'd ``.tflite``."""
        return self.float32_weight_bytes / self.gzip_bytes

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["compression"] = self.compression
        out["accuracy_change_pt"] = self.parity.accuracy_change
        return out


def float32_weight_bytes(model: keras.Model) -> int:
    """Bytes of the model's weights as float32 (what a float32 SavedModel's variables hold)."""
    return int(sum(4 * int(np.prod(w.shape)) for w in model.weights))


def export_variant(
    model: keras.Model,
    plan: Plan,
    *,
    data: ExportData,
    out_dir: str | os.PathLike,
    recipe=None,
    finetune_steps: int | None = None,
    max_accuracy_drop: float | None = 0.5,
    min_conversion_agreement: float = 0.98,
    latency_runs: int = 50,
    verbose=0,
) -> VariantResult:
    """Compresses ``model`` by ``plan``, converts it, verifies it and writes ``<out_dir>/<name>.tflite``.

    Args:
        model: the float source (normalized input, logits out; auxiliary outputs are dropped).
        plan: the variant.
        data: fine-tuning, calibration and test data (`ExportData`).
        out_dir: where the ``.tflite`` (written atomically) and fine-tuning runs go.
        recipe: the fine-tuning recipe (default `finetune_recipe`).
        finetune_steps: limit each fine-tuning stage to this many steps per epoch.
        max_accuracy_drop: fail when test accuracy falls by more than this many points against the
            float source (None: report only).
        min_conversion_agreement: fail when the TFLite model agrees with the Keras model it was
            converted from on fewer test images than this fraction.
        latency_runs: interpreter runs per latency median.

    Raises:
        export.tflite.ParityError: a tolerance is exceeded (nothing is written).
    """
    from zoo import strip_training_outputs

    model = strip_training_outputs(model)
    if plan.cluster:  # before any stage trains
        from export.cluster import check_clusters

        check_clusters(functional(model, what="clustering"), plan.cluster)
    out = Path(out_dir)
    norm = dict(mean=data.mean, std=data.std, scale=data.scale)
    reference = tflite.with_preprocessing(model, **norm)
    stage_accuracy = {}

    def accuracy(outputs: np.ndarray) -> float:
        return float(np.mean(np.argmax(outputs, axis=-1) == data.test_labels))

    def measure(stage: str, stage_model: keras.Model) -> None:
        if stage != plan.stages[-1]:  # the last stage's model is the converter's source, measured below
            stage_accuracy[stage] = accuracy(tflite.predictions(tflite.with_preprocessing(stage_model, **norm),
                                                                data.test_images))

    compressed = compress(model, plan, train=data.train, recipe=recipe, finetune_steps=finetune_steps,
                          work_dir=out / "runs" / plan.name, share_runs=True, on_stage=measure, verbose=verbose)
    pixels = tflite.with_preprocessing(compressed, **norm) if compressed is not model else reference
    calibration = data.representative if plan.tflite_quantization == "int8" else None
    flat = tflite.convert(pixels, quantize=plan.tflite_quantization, representative_images=calibration,
                          integer_io=plan.integer_io)
    converted = tflite.TFLiteModel(flat)
    # Each model runs over the test images once: the TFLite outputs serve both checks, and after a
    # post-training conversion the source and the float reference are the same model.
    outputs = tflite.predictions(converted, data.test_images)
    source = tflite.predictions(pixels, data.test_images)
    if plan.trains:
        stage_accuracy[plan.stages[-1]] = accuracy(source)
    path = out / f"{plan.name}.tflite"
    expected = source if pixels is reference else tflite.predictions(reference, data.test_images)
    try:
        conversion, parity = _check_variant(outputs, source, expected, data, after=(
            None if pixels is reference else plan.stages[-1]), max_accuracy_drop=max_accuracy_drop,
            min_conversion_agreement=min_conversion_agreement)
    except tflite.ParityError:
        path.unlink(missing_ok=True)  # an earlier export's file: out_dir holds no variant that failed its checks
        raise
    latency, throughput = _speed(converted, data.test_images, runs=latency_runs)
    write_bytes(path, flat)
    return VariantResult(
        name=plan.name, description=plan.describe(), file=str(path), size_bytes=len(flat),
        gzip_bytes=tflite.gzip_size(flat), float32_weight_bytes=float32_weight_bytes(model),
        conversion=conversion, parity=parity, latency_ms_batch1=1000 * latency, images_per_s_batch64=throughput,
        stage_accuracy=stage_accuracy, calibration_images=0 if calibration is None else len(calibration),
        input_dtype=converted.input_dtype.name, output_dtype=converted.output_dtype.name)


def _check_variant(outputs: np.ndarray, source: np.ndarray, expected: np.ndarray, data: ExportData, *,
                   after: str | None, max_accuracy_drop: float | None, min_conversion_agreement: float):
    """The two checks of a converted variant's test ``outputs``: against the Keras model it was converted from
    (``source``, the compressed model after stage ``after``, or the float model when None), then against the float
    model's ``expected`` outputs. Returns the two `tflite.ParityReport`s.

    Raises:
        export.tflite.ParityError: a check fails; the conversion's says the float model's accuracy too.
    """
    accuracy = float(np.mean(np.argmax(expected, axis=-1) == data.test_labels))
    try:
        conversion = tflite.check_parity(outputs, source, data.test_images, data.test_labels, max_accuracy_drop=None,
                                         min_top1_agreement=min_conversion_agreement,
                                         reference_name="float" if after is None else f"Keras after {after}")
    except tflite.ParityError as error:
        if after is None:
            raise
        raise tflite.ParityError(f"{error}; the float model before compression: {100 * accuracy:.2f}%") from None
    parity = tflite.check_parity(outputs, expected, data.test_images, data.test_labels,
                                 max_accuracy_drop=max_accuracy_drop)
    return conversion, parity


def _speed(converted: tflite.TFLiteModel, images: np.ndarray, *, runs: int) -> tuple[float, float]:
    """The converted model's median seconds for one image and its images per second in batches of 64."""
    batch = np.resize(images, (64, *images.shape[1:]))
    latency = converted.latency(images[:1], runs=runs)
    return latency, 64 / converted.latency(batch, runs=max(5, runs // 5), warmup=2)


REPORT_FILE = "export.json"
# What makes two exports the same source: variants of one model, weights (a hash of their values: shipped
# weights and the file they came from are one source), dataset and input share a report.
_SOURCE_IDENTITY = ("model", "model_weights_sha256", "dataset", "input")


class ExportReport:
    """``<out_dir>/export.json``: the float source, the input every variant takes, and each variant exported
    into ``out_dir``, measured (`VariantResult.to_dict`), or why it failed its checks.

    The file is written atomically after each variant (not before the first), so an interrupted export
    keeps the record of those that finished. Each variant's ``file`` is its name in ``out_dir``, so the
    directory can be moved or shipped as a whole. Exporting again into the same directory from the same source (the model, a
    hash of its weights, the dataset and the input) adds variants and replaces those of the same name;
    a directory holding another source's export is refused when the report is created, before any
    variant, rather than mixing their variants. Each change re-reads the file under a lock on
    ``out_dir`` (`zoo._files.locked`), so exports of one source into one directory at once keep each
    other's variants.

    Args:
        out_dir: the export directory.
        model: the float source (its weights are hashed).
        name: its registry name.
        weights: what its weights are called (a shipped weights' name, a file).
        data: the `ExportData` the variants are checked on (its normalization and class names).
        dataset: the data's dataset name.

    Raises:
        ValueError: ``out_dir``'s ``export.json`` is another source's, an older zoo's, or unreadable.

    Example:
        >>> report = ExportReport("out", model, name="resnet20", weights="resnet20.fashion_mnist", data=data,
        ...                       dataset="fashion_mnist")  # doctest: +SKIP
        >>> report.add(export_variant(model, Plan("int8", quantize="int8"), data=data, out_dir="out"))  # doctest: +SKIP
    """

    def __init__(self, out_dir: str | os.PathLike, model: keras.Model, *, name: str, weights: str,
                 data: ExportData, dataset: str):
        from zoo._keras import outputs_logits

        self.path = Path(out_dir) / REPORT_FILE
        shape = tflite.image_input_shape(model, what="export")
        self.source = {
            "model": name, "weights": weights, "model_weights_sha256": _sha256(w.numpy() for w in model.weights),
            "dataset": dataset,
            # every variant takes raw pixels (input_dtype: float32, or uint8 for integer I/O) and
            # normalizes inside its graph; a dimension the model leaves open is null
            "input": {"shape": [None if d is None else int(d) for d in shape], "pixels": "raw, 0 to 255",
                      "normalization": "(x * scale - mean) / std, inside the graph",
                      "mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std],
                      "scale": float(data.scale)},
            "output": "logits" if outputs_logits(model) else "probabilities (the model ends in a softmax)",
            "class_names": list(data.class_names)}
        from zoo._files import locked

        if self.path.parent.is_dir():
            with locked(self.path.parent):
                self._read()  # refused now, before any variant, if it is another source's

    def _update(self, change: Callable[[dict], None]) -> None:
        """Reads the file (checking its source), applies ``change`` and writes it, under the directory's lock."""
        from zoo._files import locked

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path.parent):
            earlier = self._read()
            content = {**self.source, "variants": [], "failures": {}, **(earlier or {}), **self.source}
            change(content)
            write_json(self.path, content, sort_keys=False)

    def _read(self) -> dict | None:
        try:
            content = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read {self.path} ({error}); remove it or choose another --out (out_dir)") \
                from None
        if isinstance(content, dict) and "model_weights_sha256" not in content and "variants" in content:
            raise ValueError(f"{self.path} was written by an older zoo export, which recorded no hash of the "
                             "source's weights: its variants cannot be told to be this source's. Accepted: another "
                             "--out (out_dir), or remove the directory's export")
        variants = content.get("variants") if isinstance(content, dict) else None
        if not isinstance(variants, list) or not all(isinstance(v, dict) and isinstance(v.get("name"), str)
                                                      for v in variants) \
                or not isinstance(content.get("failures", {}), dict):
            raise ValueError(f"{self.path} is not an export report (expected 'variants', a list of objects with a "
                             "'name', and 'failures', an object); remove it or choose another --out (out_dir)")
        differ = [key for key in _SOURCE_IDENTITY if content.get(key) != self.source[key]]
        if differ:
            source = self.source
            raise ValueError(
                f"{self.path} records an export of {content.get('model')!r} (weights {content.get('weights')!r}, "
                f"dataset {content.get('dataset')!r}); this export's {', '.join(differ)} differ "
                f"({source['model']!r}, weights {source['weights']!r}, dataset {source['dataset']!r}). Accepted: "
                "the same source, to add variants to it, or another --out (out_dir)")
        return content

    def add(self, result: VariantResult) -> None:
        """Records ``result`` (replacing an earlier variant of its name) and writes the file."""
        record = json.loads(json.dumps(result.to_dict()))
        record["file"] = os.path.relpath(result.file, self.path.parent)  # relative to the report
        def change(content: dict) -> None:
            names = [v.get("name") for v in content["variants"]]
            if result.name in names:
                content["variants"][names.index(result.name)] = record
            else:
                content["variants"].append(record)
            content["failures"].pop(result.name, None)

        self._update(change)

    def fail(self, name: str, error: BaseException | str) -> None:
        """Records that variant ``name`` failed (its file is gone: `export_variant` removes it) and writes."""

        def change(content: dict) -> None:
            content["variants"] = [v for v in content["variants"] if v.get("name") != name]
            content["failures"][name] = str(error)

        self._update(change)

    def set(self, key: str, value: Any) -> None:
        """Records another artifact of the export, e.g. ``"saved_model"``, and writes the file."""
        self._update(lambda content: content.__setitem__(key, value))
