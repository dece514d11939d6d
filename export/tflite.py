"""TFLite conversion, the LiteRT interpreter, and numerical checks against the float source.

Order of operations (`export.pipeline` follows it): a float Keras model (optionally pruned, clustered
or quantization-aware, its wrappers stripped) → `with_preprocessing` (raw pixels in) → `convert`
(float32, ``fp16``, ``dynamic`` range or full-integer ``int8``) → `TFLiteModel` → `check_parity`.

Every converted model takes raw pixels (``[N, H, W, C]`` float32 in ``[0, 255]``, or ``uint8`` for
``int8`` with ``integer_io=True``) and returns logits; normalization is inside the graph.

    >>> model = with_preprocessing(keras_model, mean=(0.286,), std=(0.353,))  # doctest: +SKIP
    >>> flat = convert(model, quantize="int8", representative_images=train_images[:256])  # doctest: +SKIP
    >>> report = check_parity(TFLiteModel(flat), model, test_images, test_labels)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import math
import numbers
import re
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from export._choices import QUANTIZE
from zoo._quiet import notices_dropped

__all__ = [
    "QUANTIZATIONS",
    "ParityError",
    "ParityReport",
    "TFLiteModel",
    "check_parity",
    "convert",
    "gzip_size",
    "image_input_shape",
    "normalization",
    "op_counts",
    "predictions",
    "select_ops",
    "with_preprocessing",
]

QUANTIZATIONS = tuple(q for q in QUANTIZE if q != "qat")  # a plan's "qat" converts as int8


class ParityError(AssertionError):
    """A converted model disagrees with its float source past the tolerance."""


def with_preprocessing(model: keras.Model, *, mean: Sequence[float], std: Sequence[float],
                       scale: float = 1 / 255, name: str | None = None) -> keras.Model:
    """``model`` behind a layer that maps raw pixels to its input: ``(x * scale - mean) / std``.

    The result is functional, so TFMOT and the TFLite converter see one graph; the normalization is
    one multiply-add (a ``Rescaling`` layer), which int8 conversion quantizes with the rest.

    Example:
        >>> m = with_preprocessing(zoo.create_model("resnet20", input_shape=(28, 28, 1)), mean=(0.5,), std=(0.25,))  # doctest: +SKIP
    """
    shape = image_input_shape(model, what="with_preprocessing")
    mean, std = normalization(mean, std, channels=shape[-1], scale=scale)
    inputs = keras.Input(shape, name="pixels")
    x = keras.layers.Rescaling(scale / std, offset=-mean / std, name="normalize")(inputs)
    return keras.Model(inputs, model(x), name=name or f"{model.name}_pixels")


def image_input_shape(model: keras.Model, *, what: str) -> tuple:
    """``model``'s input shape without the batch: a functional or Sequential model's input, or the shape a
    subclassed model was built or first called with.

    Raises:
        ValueError: a subclassed model neither built nor called (``what`` names the caller).
    """
    try:
        return tuple(model.input_shape[1:])
    except AttributeError:  # subclassed: no input layer, only the shape it was built with, if any
        built = getattr(model, "_build_input_shape", None)
        if built is not None and not isinstance(built, (list, dict)):
            return tuple(tf.TensorShape(built).as_list()[1:])
    raise ValueError(f"{what} needs a model with a known input shape (functional, Sequential with an Input, or a "
                     f"subclassed model built or called once); received an unbuilt {type(model).__name__}")


def normalization(mean, std, *, channels: int, scale: float = 1 / 255) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``std`` as float32 arrays of one value per input channel, checked (std > 0), and the
    pixels' ``scale`` checked (a finite number > 0). One value for several channels is used for each (the
    grayscale weights' statistics for a model built for RGB, `zoo.create_model`).

    Raises:
        ValueError: a scalar, a wrong number of values, a std <= 0 or a bad scale; the message gives what
            was received.

    Example:
        >>> normalization((0.5,), (0.25,), channels=1)
        (array([0.5], dtype=float32), array([0.25], dtype=float32))
    """
    mean_array, std_array = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if mean_array.shape == std_array.shape == (1,):
        mean_array, std_array = np.repeat(mean_array, channels), np.repeat(std_array, channels)
    if mean_array.shape != (channels,) or std_array.shape != (channels,) or np.any(std_array <= 0):
        raise ValueError(f"mean and std need one value per input channel ({channels}) or one for all, std > 0; "
                         f"received mean={mean!r}, std={std!r}")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
        raise ValueError(f"scale maps pixels to the model's range (1/255 for [0, 1]); it must be a finite number "
                         f"> 0; received scale={scale!r}")
    return mean_array, std_array


def _converter(model: keras.Model) -> tf.lite.TFLiteConverter:
    # A concrete function at batch None keeps the batch dimension resizable in the interpreter.
    spec = tf.TensorSpec([None, *image_input_shape(model, what="TFLite conversion")], tf.float32)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn], model)


def select_ops(model: keras.Model) -> list[str]:
    """The TF ops of ``model`` that TFLite's builtins cannot run (they would need TF Select).

    Converts once with builtins only and reads the converter's error; an empty list means the
    model converts to builtins alone.
    """
    converter = _converter(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        converter.convert()
    except Exception as error:  # ConverterError; its text names the ops
        text = str(error)
        ops = sorted(set(re.findall(r"\btf\.([A-Z]\w*)", text)))  # TF op names are CamelCase
        return ops or [text.strip().splitlines()[0] if text.strip() else type(error).__name__]
    return []


def convert(
    model: keras.Model,
    *,
    quantize: str = "none",
    representative_images: np.ndarray | None = None,
    integer_io: bool = False,
    allow_select_ops: bool = False,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer.

    Args:
        model: the model to convert (functional or Sequential, or subclassed once built or called: see
            `image_input_shape`), taking the inputs the TFLite model should take (see
            `with_preprocessing`). A quantization-aware (QAT) model converts to int8 with
            ``quantize="int8"``; its representative data, if given, calibrates the tensors the
            QAT model holds no ranges for.
        quantize: ``"none"`` (float32), ``"fp16"`` (float16 weights), ``"dynamic"`` (int8 weights,
            float activations) or ``"int8"`` (full-integer: weights and activations).
        representative_images: inputs for calibrating int8 activation ranges (a few hundred
            training images of the model's input shape, ``(N, H, W, C)``, N >= 1); required for ``"int8"``
            unless the model is quantization-aware. A QAT
            model should get them too: a batch norm that follows no layer it folds into is a MUL and an
            ADD whose intermediate has no QAT range, and without calibration both stay float between
            DEQUANTIZE and QUANTIZE (DenseNet-BC had 21 such float islands, 7x slower than PTQ int8,
            before `export.quantize.quantize_aware` made its 4-D ones depthwise convolutions). With
            them the whole graph is integer.
        integer_io: with ``"int8"``, take ``uint8`` input (raw pixels) and return int8 logits
            instead of float32 at the boundary. The model must take raw ``[0, 255]`` pixels: an all-0
            and an all-255 image join the calibration images, so the input's scale is 1 and its zero
            point 0 (the uint8 input is the pixel), whatever range the calibration images span. A QAT
            model converted without ``representative_images`` keeps the input range its training saw.
        allow_select_ops: allow TF Select fallbacks; without it a model that needs them raises,
            naming the ops.

    Returns:
        The ``.tflite`` file's bytes.

    Raises:
        ValueError: an unknown ``quantize``, missing, empty or wrongly shaped representative data (or any
            for a quantization other than int8), ops TFLite cannot run, or a subclassed model neither built
            nor called.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; accepted: {', '.join(QUANTIZATIONS)}")
    qat = _is_quantization_aware(model)
    if quantize == "int8" and representative_images is None and not qat:
        raise ValueError("int8 conversion needs representative_images (a few hundred training inputs) to "
                         "calibrate activation ranges, unless the model is quantization-aware")
    if integer_io and quantize != "int8":
        raise ValueError(f"integer_io needs quantize='int8'; received quantize={quantize!r}")
    if representative_images is not None and quantize != "int8":
        raise ValueError(f"representative_images calibrate int8 activations; received quantize={quantize!r}, "
                         "which has none. Accepted: quantize='int8', or no representative_images")
    converter = _converter(model)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative_images is not None:
            images = np.asarray(representative_images, np.float32)
            shape = image_input_shape(model, what="TFLite conversion")
            fits = len(images.shape) == len(shape) + 1 and all(d is None or d == i for d, i in
                                                                zip(shape, images.shape[1:]))
            if not fits or not len(images):  # a dimension the model leaves open (None) takes any size
                raise ValueError(f"representative_images must be N >= 1 inputs of the model, shape (N, "
                                 f"{', '.join(map(str, shape))}); received shape {images.shape}")
            if integer_io:  # pin the input's range to the pixels' [0, 255]
                images = np.concatenate([np.zeros_like(images[:1]), np.full_like(images[:1], 255.0), images])

            def representative():
                for i in range(len(images)):
                    yield [images[i:i + 1]]

            converter.representative_dataset = representative
            ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # full integer: fail rather than keep float ops
        if integer_io:
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.int8
    if allow_select_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    converter.target_spec.supported_ops = ops
    try:
        # int8's quantizer prints "fully_quantize: 0, inference_type: 6, ..." (the other conversions are left
        # uncaptured: a converter that aborts the process would take its message with it)
        with notices_dropped() if quantize == "int8" else contextlib.nullcontext():
            return converter.convert()
    except Exception as error:
        missing = select_ops(model) if not allow_select_ops else []
        if missing:
            raise ValueError(f"model {model.name!r} uses ops TFLite's builtins cannot run: {', '.join(missing)}. "
                             "Accepted: builtin ops only, or allow_select_ops=True (TF Select)") from error
        raise


def _is_quantization_aware(model: keras.Model) -> bool:
    return any(type(layer).__name__.startswith("QuantizeWrapper") or type(layer).__name__ == "QuantizeLayer"
               for layer in _all_layers(model))


def _all_layers(model: keras.Model) -> Iterable[keras.layers.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


class TFLiteModel:
    """A ``.tflite`` model in the LiteRT interpreter (``ai_edge_litert``), called like a Keras model.

    Quantized inputs and outputs are converted at the boundary: ``predict`` takes float32 (or
    ``uint8``) images and returns float32 logits whatever the model's I/O types.

    Args:
        model: the flatbuffer's bytes or a path to a ``.tflite`` file.
        num_threads: interpreter threads.

    Example:
        >>> flat = TFLiteModel(convert(model))  # doctest: +SKIP
        >>> logits = flat.predict(images, batch_size=64)  # doctest: +SKIP
    """

    def __init__(self, model: bytes | str, *, num_threads: int = 2):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:  # pragma: no cover - a declared dependency
            raise ImportError("TFLite inference needs ai-edge-litert: pip install ai-edge-litert") from error
        self.content = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
        self._interpreter = Interpreter(model_content=bytes(self.content), num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self._output["dtype"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self._input["shape"][1:])

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [batch, *self.input_shape])
            with notices_dropped():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" on its first run
                self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self._batch = batch

    def _to_input(self, x: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if dtype == np.float32:
            return np.asarray(x, np.float32)
        if np.asarray(x).dtype == dtype:
            return np.asarray(x)
        scale, zero = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(np.asarray(x, np.float32) / scale + zero), info.min, info.max).astype(dtype)

    def _from_output(self, y: np.ndarray) -> np.ndarray:
        if y.dtype == np.float32:
            return y
        scale, zero = self._output["quantization"]
        return (y.astype(np.float32) - zero) * scale

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits for one batch ``x``."""
        x = self._to_input(x)
        self._resize(len(x))
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        return self._from_output(self._interpreter.get_tensor(self._output["index"]).copy())

    def predict(self, x: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Logits for ``x`` in batches of ``batch_size``."""
        if len(x) == 0:
            raise ValueError("predict received no images")
        return np.concatenate([self(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def latency(self, x: np.ndarray, *, runs: int = 50, warmup: int = 5) -> float:
        """Median seconds per call on the batch ``x`` (after ``warmup`` calls)."""
        x = self._to_input(x)
        self._resize(len(x))
        times = []
        for i in range(warmup + runs):
            self._interpreter.set_tensor(self._input["index"], x)
            start = time.perf_counter()
            self._interpreter.invoke()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return float(np.median(times))


@dataclasses.dataclass(frozen=True)
class ParityReport:
    """How a converted model compares with its float source on labelled images.

    Attributes:
        examples: images compared.
        top1_agreement: fraction of images where both predict the same class.
        float_accuracy: the float source's top-1.
        accuracy: the converted model's top-1.
        max_abs_diff: largest absolute difference between their logits.
    """

    examples: int
    top1_agreement: float
    float_accuracy: float
    accuracy: float
    max_abs_diff: float

    @property
    def accuracy_change(self) -> float:
        """Converted minus float accuracy, in points (negative is a loss), to 9 decimals: the difference of two
        fractions carries float error (0.93 - 0.935 is -0.5000000000000004 points), which would fail a drop
        of exactly the tolerance."""
        return round(100.0 * (self.accuracy - self.float_accuracy), 9)

    def summary(self, reference: str = "float") -> str:
        """One line; ``reference`` names the model compared against (``float_accuracy`` is its accuracy)."""
        return (f"top-1 agreement {100 * self.top1_agreement:.2f}%  accuracy {100 * self.accuracy:.2f}% "
                f"({reference} {100 * self.float_accuracy:.2f}%, {self.accuracy_change:+.2f} pt)  "
                f"max |logit diff| {self.max_abs_diff:.4g}  ({self.examples} images)")


def predictions(model, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """A model's main output on ``images``: a Keras model, a `TFLiteModel` (anything with ``predict``),
    or outputs already computed (an array, returned as is)."""
    if isinstance(model, np.ndarray):
        return model
    out = (model.predict(images, batch_size=batch_size, verbose=0) if isinstance(model, keras.Model)
           else model.predict(images, batch_size=batch_size))
    return np.asarray(out[0] if isinstance(out, list) else out)  # auxiliary outputs: the main one


def op_counts(model) -> dict[str, int]:
    """How many of each TFLite op a model holds (a `TFLiteModel`, or a ``.tflite``'s bytes or path), before
    any delegate takes them: e.g. to see that an int8 model has no float islands between QUANTIZE and
    DEQUANTIZE, or that no op with run-time shapes splits the XNNPACK delegate's graph."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    content = model.content if isinstance(model, TFLiteModel) else (
        model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes())
    interpreter = Interpreter(model_content=bytes(content),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    counts: dict[str, int] = {}
    for op in interpreter._get_ops_details():  # the one listing of the graph the interpreter offers
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def check_parity(
    converted,
    reference,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    max_accuracy_drop: float | None = 0.5,
    min_top1_agreement: float | None = None,
    max_abs_diff: float | None = None,
    batch_size: int = 256,
    reference_name: str = "float",
) -> ParityReport:
    """Compares ``converted`` (a `TFLiteModel` or anything with ``predict``) with ``reference`` (Keras).

    Args:
        converted: the converted model, or its outputs on ``images`` already computed (an array).
        reference: the float model it came from (same inputs), or its outputs on ``images``.
        images, labels: labelled inputs, e.g. the test set.
        max_accuracy_drop: fail when accuracy falls by more than this many points (None: no check).
        min_top1_agreement: fail when the two agree on fewer images than this fraction.
        max_abs_diff: fail when a logit differs by more than this.
        batch_size: batch for both models.
        reference_name: what the error message calls ``reference``.

    Returns:
        The `ParityReport`.

    Raises:
        ParityError: a tolerance is exceeded, or either model's outputs hold a NaN or an infinity
            (whatever the tolerances); the message holds the whole report.
    """
    labels = np.asarray(labels).reshape(-1)
    if len(images) != len(labels) or not len(labels):
        raise ValueError(f"images and labels must be non-empty and of equal length; received {len(images)} "
                         f"and {len(labels)}")
    ref = predictions(reference, images, batch_size=batch_size)
    out = predictions(converted, images, batch_size=batch_size)
    if ref.shape != out.shape or len(out) != len(labels):
        raise ValueError(f"outputs of shapes {ref.shape} (reference) and {out.shape} (converted) for "
                         f"{len(labels)} labels; expected one row of class scores per image in both")
    report = ParityReport(
        examples=len(labels),
        top1_agreement=float(np.mean(ref.argmax(-1) == out.argmax(-1))),
        float_accuracy=float(np.mean(ref.argmax(-1) == labels)),
        accuracy=float(np.mean(out.argmax(-1) == labels)),
        max_abs_diff=float(np.max(np.abs(ref - out))),
    )
    failures = [f"{name} outputs hold {int(np.sum(~np.isfinite(y)))} NaN or infinite values"
                for name, y in (("converted", out), ("reference", ref)) if not np.all(np.isfinite(y))]
    # written as `not (value within tolerance)`, so that a NaN fails too
    if max_accuracy_drop is not None and not -report.accuracy_change <= max_accuracy_drop:
        failures.append(f"accuracy fell {-report.accuracy_change:.2f} pt (allowed {max_accuracy_drop})")
    if min_top1_agreement is not None and not report.top1_agreement >= min_top1_agreement:
        failures.append(f"top-1 agreement {report.top1_agreement:.4f} < {min_top1_agreement}")
    if max_abs_diff is not None and not report.max_abs_diff <= max_abs_diff:
        failures.append(f"max |logit diff| {report.max_abs_diff:.4g} > {max_abs_diff}")
    if failures:
        raise ParityError(f"parity check failed: {'; '.join(failures)}. {report.summary(reference_name)}")
    return report


def gzip_size(data: bytes) -> int:
    """Bytes after ``gzip -9`` (how Deep Compression-style size is counted for a download)."""
    return len(gzip.compress(bytes(data), compresslevel=9, mtime=0))
