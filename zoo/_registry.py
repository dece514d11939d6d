"""The model registry: families, their registered variants, and the typed `create_model` front door.

A *family* is one paper's architecture with one builder function whose keyword-only, typed
arguments are its architecture options. A *variant* (``resnet50``) is a name plus the values of
some of those options. Everything a later model family needs (detectors, GANs, agents) is on the
family record: its task and the names of its inputs and outputs.

Nothing here imports TensorFlow at module import time: `zoo` stays cheap to import and the
families are loaded on first use of the registry.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
import os
import numbers
import re
import types
import typing
from functools import lru_cache
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

from zoo._checks import as_int, check_sizes, described

__all__ = [
    "Family",
    "ModelInfo",
    "ModelSpec",
    "Published",
    "create_model",
    "get_spec",
    "list_families",
    "list_models",
    "model_info",
    "register_family",
    "strip_training_outputs",
]

Task = Literal["classification", "detection", "segmentation", "generation", "captioning", "policy"]
TASKS: tuple[str, ...] = typing.get_args(Task)

# Arguments every builder takes; everything else keyword-only in its signature is an
# architecture option of the family.
COMMON_ARGS = ("name", "input_shape", "num_classes", "include_top", "pooling", "classifier_activation")
POOLINGS = (None, "avg", "max")


@dataclasses.dataclass(frozen=True)
class Published:
    """A published parameter count to test against.

    Attributes:
        params: the number as published.
        source: where it is published (library and symbol, or paper and table).
        decimals: ``None`` if the count is exact; otherwise the paper gives millions to this many
            decimals (``2`` for "0.27M") and tests compare at that precision.
        truncated: the paper truncates rather than rounds to ``decimals``.
    """

    params: int
    source: str
    decimals: int | None = None
    truncated: bool = False

    def matches(self, params: int) -> bool:
        if self.decimals is None:
            return params == self.params
        scale = 10**self.decimals / 1e6
        shown = int(params * scale) if self.truncated else round(params * scale)
        return shown == round(self.params * scale)


@dataclasses.dataclass(frozen=True)
class Family:
    """One architecture family: its paper, its builder and what its models take and return.

    The last three fields are what loading weights by layer name needs to know (`zoo._weights`):

    Attributes:
        classifier_layers: the layers with weights whose size is ``num_classes``. Pretrained weights
            loaded with another number of classes leave them freshly initialized.
        head_layers: every layer with weights that only ``include_top=True`` builds, the classifier
            layers included (VGG's fc layers, GoogLeNet's auxiliary heads). A file may hold them when
            the model does not; any other layer of the file must be in the model.
        weight_free_options: architecture options that change no layer's weights (dropout rates,
            stochastic depth, whether training-only heads are built), so pretrained weights load
            whatever their value.
        pretrained_options: weight-free options a model built with pretrained weights takes unless the
            caller sets them: GoogLeNet's ``aux_logits=False``, so that a pretrained model returns its
            prediction alone, as torchvision's pretrained GoogLeNet does.
    """

    name: str
    builder: Callable[..., Any]
    paper: str
    year: int
    url: str
    task: str = "classification"
    inputs: tuple[str, ...] = ("image",)
    outputs: tuple[str, ...] = ("logits",)
    classifier_layers: tuple[str, ...] = ("predictions",)
    head_layers: tuple[str, ...] = ("predictions",)
    weight_free_options: tuple[str, ...] = ()
    pretrained_options: tuple[tuple[str, Any], ...] = ()  # given as a dict: stored as pairs, hashable

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} for family {self.name!r}. Accepted: {', '.join(TASKS)}")
        if not set(self.classifier_layers) <= set(self.head_layers):
            raise ValueError(f"classifier_layers of family {self.name!r} must be among its head_layers; received "
                             f"{self.classifier_layers!r} and {self.head_layers!r}")
        unknown = sorted(set(self.weight_free_options) - set(self.option_names()))
        if unknown:
            raise ValueError(f"weight_free_options of family {self.name!r} are not options of its builder: "
                             f"{', '.join(unknown)}. Accepted: {', '.join(self.option_names())}")
        pretrained = dict(self.pretrained_options)
        if not set(pretrained) <= set(self.weight_free_options):
            raise ValueError(f"pretrained_options of family {self.name!r} must be among its weight_free_options "
                             f"({', '.join(self.weight_free_options) or 'none'}); received {pretrained!r}")
        object.__setattr__(self, "pretrained_options", tuple(sorted(pretrained.items())))

    def register(
        self,
        name: str,
        *,
        default_input_shape: tuple[int, int, int] = (224, 224, 3),
        default_num_classes: int = 1000,
        published: Published | None = None,
        **options: Any,
    ) -> "ModelSpec":
        """Registers a variant: a name plus values for some of the family's options."""
        spec = ModelSpec(
            name=name,
            family=self,
            options=types.MappingProxyType(dict(options)),
            default_input_shape=tuple(default_input_shape),
            default_num_classes=default_num_classes,
            published=published,
        )
        _check_options(spec, options)  # a typo in a registration fails at import, not at use
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered (family {_MODELS[name].family.name!r})")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"model names are lower_snake_case; received {name!r}")
        _MODELS[name] = spec
        return spec

    def option_names(self) -> tuple[str, ...]:
        return tuple(_architecture_params(self.builder))


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A registered variant."""

    name: str
    family: Family
    options: Mapping[str, Any]
    default_input_shape: tuple[int, int, int]
    default_num_classes: int
    published: Published | None


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What `model_info` reports about one model at one input shape.

    ``flops`` counts a multiply-accumulate as two operations (``flops == 2 * macs``) over the
    convolution and dense layers; normalization, activation and pooling are not counted, as in
    torchvision's and timm's tables (their "GFLOPS" column is our ``macs``).
    """

    name: str
    family: str
    task: str
    paper: str
    year: int
    url: str
    input_shape: tuple[int, int, int]
    default_input_shape: tuple[int, int, int]
    num_classes: int
    params: int
    trainable_params: int
    macs: int
    flops: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]
    published_params: int | None
    params_source: str | None
    pretrained: tuple[str, ...] = ()


_MODELS: dict[str, ModelSpec] = {}
_FAMILIES: dict[str, Family] = {}
_LOADED = False


def register_family(name: str, builder: Callable[..., Any], *, paper: str, year: int, url: str, **kwargs) -> Family:
    """Registers a family; its variants are then added with ``family.register(...)``.

    Raises:
        ValueError: if the family is already registered or its builder lacks a common argument.
    """
    if name in _FAMILIES:
        raise ValueError(f"family {name!r} is already registered")
    params = inspect.signature(builder).parameters
    missing = [a for a in COMMON_ARGS if a not in params]
    if missing:
        raise ValueError(f"builder of family {name!r} must accept {', '.join(missing)}")
    family = Family(name=name, builder=builder, paper=paper, year=year, url=url, **kwargs)
    _FAMILIES[name] = family
    return family


def _load_families() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True  # set first: a family module that fails to import must not loop
        importlib.import_module("zoo.models")


def _natural_key(name: str):
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def _as_patterns(patterns: str | Iterable[str], argument: str) -> tuple[str, ...]:
    found = (patterns,) if isinstance(patterns, str) else tuple(patterns) if hasattr(patterns, "__iter__") else None
    if found is None or not all(isinstance(p, str) for p in found):
        raise TypeError(f"{argument} must be a glob pattern or a list of them (str); received {patterns!r}")
    return found


def list_models(
    include: str | Sequence[str] = "*", exclude: str | Sequence[str] = (), pretrained: bool = False
) -> list[str]:
    """Lists registered model names, naturally sorted (``resnet20`` before ``resnet110``).

    Args:
        include: glob pattern(s) a name must match (any of them).
        exclude: glob pattern(s) that remove a name.
        pretrained: only models that ship pretrained weights.

    Example:
        >>> list_models("vgg1[16]*", exclude="*_bn")
        ['vgg11', 'vgg16']
    """
    _load_families()
    inc, exc = _as_patterns(include, "include"), _as_patterns(exclude, "exclude")
    names = [
        n
        for n in _MODELS
        if any(fnmatch.fnmatchcase(n, p) for p in inc) and not any(fnmatch.fnmatchcase(n, p) for p in exc)
    ]
    if pretrained:
        names = [n for n in names if _pretrained_tags(n)]
    return sorted(names, key=_natural_key)


def list_families() -> list[Family]:
    """The registered families, in registration order."""
    _load_families()
    return list(_FAMILIES.values())


def get_spec(name: str) -> ModelSpec:
    """The registered variant called ``name``.

    Raises:
        ValueError: naming close matches when ``name`` is not registered.
    """
    _load_families()
    if not isinstance(name, str) or name not in _MODELS:
        close = difflib.get_close_matches(str(name), list(_MODELS), n=5, cutoff=0.6)
        hint = f"Close matches: {', '.join(close)}." if close else "See zoo.list_models() (or zoo list)."
        raise ValueError(f"unknown model {name!r}. Received name={name!r}. {hint}")
    return _MODELS[name]


def _pretrained_tags(name: str) -> tuple[str, ...]:
    """The tags of the pretrained weights ``name`` ships, the default first (`zoo._weights`)."""
    from zoo import _weights

    return _weights.tags(name)


# -- option validation ----------------------------------------------------------------------------


def _architecture_params(builder) -> dict[str, inspect.Parameter]:
    return {
        n: p
        for n, p in inspect.signature(builder).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in COMMON_ARGS
    }


@lru_cache(maxsize=None)
def _type_hints(builder) -> dict[str, Any]:
    return typing.get_type_hints(builder)


def _conforms(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # NumPy's numbers too; `_as_python` converts them
        return as_int(value) is not None
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return len(args) == len(value) and all(_conforms(v, a) for v, a in zip(value, args))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _check_options(spec: ModelSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    accepted = _architecture_params(spec.family.builder)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for model {spec.name!r} (family {spec.family.name}). "
            f"Accepted: {', '.join(accepted) or 'none'}; and the common arguments: "
            f"weights, {', '.join(COMMON_ARGS[1:])}."
        )
    hints = _type_hints(spec.family.builder)
    out = {}
    for key, value in options.items():
        hint = hints.get(key, Any)
        if not _conforms(value, hint):
            raise TypeError(
                f"option {key!r} of model {spec.name!r} must be {_hint_name(hint)}; received {described(value)}"
            )
        out[key] = _as_python(value)
    return out


def _as_python(value: Any) -> Any:
    """An option as Python data: lists as tuples, NumPy's numbers as ``int``/``float`` (options go to
    configs and the weights' JSON metadata)."""
    if isinstance(value, (tuple, list)):
        return tuple(_as_python(v) for v in value)
    if as_int(value) is not None:
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, float)):
        return float(value)
    return value


def _check_input_shape(name: str, input_shape: Any) -> tuple[int, int, int]:
    return check_sizes(f"input_shape for {name!r}", input_shape, ("height", "width", "channels"),
                       note=", channels last")


# -- the front door ---------------------------------------------------------------------------------


def create_model(
    name: str,
    *,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    include_top: bool = True,
    pooling: str | None = None,
    classifier_activation: str | None = None,
    **architecture_options: Any,
):
    """Builds a registered model as a functional ``tf_keras.Model``.

    Args:
        name: a registered name, see `list_models`.
        weights: ``None`` for random initialization; pretrained weights that ship with the zoo
            (`zoo.list_pretrained`): ``"DEFAULT"`` (the model's default tag), a tag such as
            ``"fashion_mnist"``, or ``"resnet20.fashion_mnist"``; or a path to a weights file saved
            from the same architecture: an ``.h5`` file or a TF checkpoint prefix (a ``save_weights``
            one, a `training.fit` run's ``checkpoints/ckpt-N``, or a SavedModel directory's
            variables), matched by layer name; every layer of the model must be filled. Pretrained
            weights are checked (size, sha256) before loading, and bring the architecture options
            they were trained with, their stem included; ``input_shape`` and ``num_classes`` then
            default to theirs, and options that change no weights (the family's
            ``weight_free_options``, e.g. ``dropout``) may differ. A pretrained GoogLeNet is built without
            its training-only auxiliary heads unless ``aux_logits=True`` (torchvision's default).
        input_shape: ``(height, width, channels)``; defaults to the variant's default (with pretrained
            weights, to theirs). Families adapt their stem to small inputs (under 64 pixels) as their
            docstrings describe; pretrained weights keep the stem they were trained with at any size
            (AlexNet's and VGG's flattening classifiers fit only the trained size; ``include_top=False``
            loads at any). Weights of another number of channels (e.g. the grayscale pretrained weights
            for RGB images) are loaded with the first convolution adapted as timm's ``in_chans`` does:
            its kernel repeated over the channels and scaled by ``weights' / model's`` channels (summed
            for one channel), so a grayscale image repeated over RGB gets the pretrained response;
            normalize each channel with the weights' mean and std.
        num_classes: size of the classifier; defaults to the variant's default (1000 for ImageNet), or
            the pretrained weights' classes. With pretrained weights and another number of classes,
            the backbone is loaded and the classifier layers (the family's ``classifier_layers``,
            e.g. ``predictions``) are freshly initialized.
        include_top: build the classifier; if False the model returns features (with pretrained
            weights, the backbone is loaded).
        pooling: with ``include_top=False``: ``None`` (the last feature map), ``"avg"`` or ``"max"``.
        classifier_activation: activation of the classifier output; ``None`` returns logits.
        **architecture_options: the family's typed options (see ``zoo info NAME``); unknown ones raise.

    Returns:
        A functional ``tf_keras.Model`` with deterministic layer names. Its first output is the
        prediction; any further outputs (a GoogLeNet's auxiliary heads, built without pretrained weights
        or with ``aux_logits=True``) are for training only and `strip_training_outputs` removes them.

    Raises:
        ValueError: unknown name or option, an invalid argument value, or weights that cannot be
            loaded: an unknown tag (the error lists the model's tags), a pretrained file whose size or
            sha256 differs from its metadata, options that conflict with the pretrained weights', a
            file or checkpoint that leaves a layer of the model unfilled (another architecture).
        TypeError: an option of the wrong type.

    Example:
        >>> model = create_model("resnet20", input_shape=(28, 28, 1), num_classes=10)
        >>> model.output_shape
        (None, 10)
        >>> backbone = create_model("resnet20", weights="fashion_mnist", include_top=False, pooling="avg")
        >>> backbone.output_shape
        (None, 64)
    """
    spec = get_spec(name)
    user_options = _check_options(spec, architecture_options)
    pretrained = None
    if weights is not None:
        from zoo import _weights

        pretrained = _weights.resolve(spec.name, weights)
    if pretrained is not None:
        defaults = dict(spec.family.pretrained_options)  # e.g. no training-only heads
        user_options = _weights.check_options(pretrained, spec, {**defaults, **user_options})
        input_shape = pretrained.input.shape if input_shape is None else input_shape
        num_classes = pretrained.head.num_classes if num_classes is None else num_classes
    options = {**spec.options, **user_options}
    input_shape = _check_input_shape(name, spec.default_input_shape if input_shape is None else input_shape)
    num_classes = spec.default_num_classes if num_classes is None else num_classes
    if as_int(num_classes, minimum=1) is None:
        raise ValueError(f"num_classes must be a positive int; received {described(num_classes)}")
    num_classes = int(num_classes)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; received {pooling!r}")
    if not isinstance(include_top, bool):
        raise TypeError(f"include_top must be a bool; received {include_top!r}")
    if classifier_activation is not None:
        _check_activation(classifier_activation)

    try:
        model = spec.family.builder(
            name=spec.name,
            input_shape=input_shape,
            num_classes=num_classes,
            include_top=include_top,
            pooling=pooling,
            classifier_activation=classifier_activation,
            **options,
        )
    except ValueError as err:  # Keras refused a layer argument, or the input shrank to nothing
        given = ", ".join(f"{key}={value!r}" for key, value in user_options.items())
        what = f"{spec.name!r} at input_shape={input_shape!r}" + (f" with {given}" if given else "")
        shrunk = re.search(r'calling layer "([^"]+)".*Negative dimension size', str(err), re.S)
        if shrunk:
            raise ValueError(f"cannot build {what}: the input shrinks to nothing by layer {shrunk.group(1)!r}. "
                             "Accepted: a larger input_shape") from None
        raise ValueError(f"cannot build {what}: {str(err).splitlines()[0]}") from err
    if pretrained is not None:
        _weights.load_pretrained(model, pretrained)
    elif weights is not None:
        _load_weights(model, spec, weights)
    return model


def _check_activation(activation: str) -> None:
    import tf_keras

    try:
        tf_keras.activations.get(activation)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"classifier_activation must be None (logits) or a Keras activation name such as 'softmax'; "
            f"received {activation!r}"
        ) from err


def load_weights(model, name: str, weights: str | os.PathLike[str]) -> None:
    """Fills ``model``, a model of the registered ``name`` (its head may have been replaced, as by
    `training.finetune`), from a weights file as `create_model` does: an ``.h5`` file or a TF checkpoint
    by layer name (`zoo._weights.load_by_name`), every layer of ``model`` filled.

    Raises:
        ValueError: no such file, or weights that do not fit ``model`` (the message says what would).
    """
    _load_weights(model, get_spec(name), weights)


def _load_weights(model, spec: ModelSpec, weights: str) -> None:
    from zoo import _weights

    _weights.load_file(model, spec.name, spec.family, weights)


def strip_training_outputs(model):
    """Returns a model with only the primary (first) output, sharing weights with ``model``.

    GoogLeNet's auxiliary classifiers are extra outputs used only for the training loss. A subclassed
    model, whose outputs are not a graph, is returned as it is.

    Example:
        >>> net = create_model("googlenet", input_shape=(32, 32, 3), num_classes=10)
        >>> len(net.outputs), len(strip_training_outputs(net).outputs)
        (3, 1)
    """
    if model.outputs is None or len(model.outputs) == 1:  # None: subclassed
        return model
    import tf_keras

    return tf_keras.Model(model.inputs, model.outputs[0], name=model.name)


# -- model cards ------------------------------------------------------------------------------------


def model_info(name: str, input_shape: tuple[int, int, int] | None = None, **architecture_options) -> ModelInfo:
    """Describes a model: family, paper, parameters and FLOPs at ``input_shape``.

    Cards at the default input shape and options come from the card table generated with the docs
    (``make docs``; a test keeps it current), so listing the zoo does not build every model; any
    other input shape or option builds the model once (cached per process).

    Example:
        >>> model_info("resnet18").params
        11699112
    """
    spec = get_spec(name)
    shape = _check_input_shape(name, spec.default_input_shape if input_shape is None else input_shape)
    options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in architecture_options.items()))
    return _model_info(name, shape, options)


@lru_cache(maxsize=256)
def _model_info(name: str, input_shape: tuple[int, int, int], options: tuple) -> ModelInfo:
    spec = _MODELS[name]
    card = _cards().get(name) if not options and input_shape == spec.default_input_shape else None
    measured = card if card is not None else _measure(name, input_shape, options)
    params, trainable, macs = measured["params"], measured["trainable_params"], measured["macs"]
    merged = {**spec.options, **dict(options)}
    return ModelInfo(
        name=name,
        family=spec.family.name,
        task=spec.family.task,
        paper=spec.family.paper,
        year=spec.family.year,
        url=spec.family.url,
        input_shape=input_shape,
        default_input_shape=spec.default_input_shape,
        num_classes=spec.default_num_classes,
        params=params,
        trainable_params=trainable,
        macs=macs,
        flops=2 * macs,
        inputs=spec.family.inputs,
        outputs=spec.family.outputs,
        options=tuple(sorted(merged.items())),
        published_params=spec.published.params if spec.published else None,
        params_source=spec.published.source if spec.published else None,
        pretrained=_pretrained_tags(name),
    )


CARDS_PATH = "_cards.json"


@lru_cache(maxsize=1)
def _cards() -> dict[str, dict[str, int]]:
    """Measured params and MACs at each variant's defaults, generated by `compute_cards`."""
    import json
    from importlib import resources

    path = resources.files("zoo") / CARDS_PATH
    return json.loads(path.read_text()) if path.is_file() else {}


def compute_cards(names: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """Builds every registered model (or those ``names``) at its defaults and measures it (the content of
    ``_cards.json``)."""
    cards = {}
    for name in list_models() if names is None else [get_spec(n).name for n in names]:
        cards[name] = _measure(name, get_spec(name).default_input_shape, ())
    return cards


def write_cards() -> str:
    """Regenerates the card table shipped in the package (``make docs`` runs this); returns its path."""
    from zoo._files import write_json

    path = os.path.join(os.path.dirname(__file__), CARDS_PATH)
    write_json(path, compute_cards())
    _cards.cache_clear()
    _model_info.cache_clear()
    return path


def _measure(name: str, input_shape: tuple[int, int, int], options: tuple) -> dict[str, int]:
    from zoo._flops import count_macs

    # Built eagerly: tf_keras builds functional models faster eagerly than in a scratch graph.
    model = create_model(name, input_shape=input_shape, **dict(options))
    return {
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(w.shape.num_elements()) for w in model.trainable_weights)),
        "macs": count_macs(model),
    }
