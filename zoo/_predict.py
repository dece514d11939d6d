"""Fast inference: raw images in, probabilities and class names out.

``model.predict`` rebuilds its data pipeline on every call (about 47 ms for one 28x28 image here); a
`Predictor` converts the model once and then runs it on the fast path:

- ``backend="tflite"`` (default): the float32 model with its normalization, converted to TFLite and
  run by the LiteRT interpreter (about 0.3 ms per image for ResNet-20), outputs equal to Keras'
  to float32 rounding;
- ``backend="function"``: a ``tf.function`` traced once for ``[None, H, W, C]`` inputs (about 2.4 ms).

    >>> predictor = Predictor.from_pretrained("resnet20.fashion_mnist")  # doctest: +SKIP
    >>> result = predictor(images)  # uint8 [N, 28, 28] or [N, 28, 28, 1]  # doctest: +SKIP
    >>> result.labels[:3]  # doctest: +SKIP
    ('Ankle boot', 'Pullover', 'Trouser')
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

__all__ = ["BACKENDS", "Prediction", "Predictor", "predict"]

BACKENDS = ("tflite", "function")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What a `Predictor` returns for a batch."""

    probabilities: np.ndarray  # float32 [N, classes]
    class_ids: np.ndarray  # int64 [N]
    labels: tuple[str, ...]  # the class names of class_ids


class Predictor:
    """A model ready for fast inference on raw images.

    Args:
        model: a ``tf_keras`` classifier with normalized input and logits out, or probabilities
            (``classifier_activation="softmax"``); auxiliary outputs are dropped.
        mean, std, scale: its input normalization, ``(x * scale - mean) / std``: with the default
            ``scale``, images are raw pixels (0-255, uint8 or float).
        class_names: one name per class (default the class indices as text).
        backend: ``"tflite"`` or ``"function"`` (see the module docstring).
        num_threads: interpreter threads for the TFLite backend.
        resize: take images of any size and of 1, 3 or 4 channels (grayscale, RGB, RGBA), one image, a
            batch or a list of images of different sizes: each is brought to the model's channels (RGB to
            gray by ITU-R 601 luma, alpha dropped, gray repeated) and stretched to its height and width
            (bilinear, antialiased; torchvision's transforms keep the aspect ratio and crop the center
            instead). An array of rank 3 whose last dimension is 1, 3 or 4 is one image, otherwise a batch
            of grayscale ones (a channels-first ``[3, H, W]`` image is read as three). By default images
            must have the model's input shape.

    Raises:
        TypeError: ``model`` is not a ``tf_keras`` model (a name: see `from_pretrained`).
        ValueError: an unknown backend, normalization that does not fit the model, or a model that is not
            a classifier (its output is not ``[N, classes]``, or a zoo model's pooled features). Calls
            raise it for images of the wrong shape or not pixels: floats in [0, 1] with the default
            scale, NaN, or values outside the pixels' range by more than 10% (with ``scale=1.0`` and a mean
            that is a fraction, as shipped weights' are, that range is [0, 1]: raw 0-255 pixels are refused).
    """

    def __init__(self, model, *, mean: Sequence[float], std: Sequence[float], scale: float = 1 / 255,
                 class_names: Sequence[str] | None = None, backend: str = "tflite", num_threads: int = 2,
                 resize: bool = False):
        import tensorflow as tf

        import tf_keras as keras

        from export import tflite
        from zoo._keras import outputs_logits
        from zoo._registry import list_models, strip_training_outputs

        if not isinstance(resize, bool):
            raise TypeError(f"resize must be a bool; received {resize!r}")
        self.resize = resize
        if not isinstance(model, keras.Model):
            hint = f"; for shipped weights: Predictor.from_pretrained({model!r})" if isinstance(model, str) else ""
            raise TypeError(f"model must be a tf_keras.Model; received {type(model).__name__}{hint}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
        model = strip_training_outputs(model)
        self._probabilities = not outputs_logits(model)  # softmax outputs are not softmaxed again
        self.scale = float(scale)
        # What ``x * scale`` should span: [0, 1] when the mean is a fraction (statistics of pixels / 255, as
        # every shipped weights' are), pixel units when it is above 1 (keras.applications' 127.5); a zero
        # mean says nothing.
        self._fraction_mean = 0 < max(float(m) for m in mean) <= 1
        pixels = tflite.with_preprocessing(model, mean=mean, std=std, scale=scale)  # functional, subclassed or not
        last = model.outputs[0]._keras_history.layer if model.outputs else None  # None: subclassed
        pooled = isinstance(last, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)) and \
            model.name in list_models()  # a zoo model's classifier ends in its "predictions" layer, never in pooling
        if len(pixels.output_shape) != 2 or pooled:  # include_top=False: feature maps, or pooled features
            raise ValueError(f"Predictor needs a classifier, whose output is [N, classes]; model {model.name!r} outputs "
                             f"{'its pooled features ' if pooled else ''}{tuple(pixels.output_shape)}. Accepted: a "
                             "model built with include_top=True (for features, call the model itself)")
        self.input_shape = tuple(int(d) for d in pixels.input_shape[1:])
        classes = int(pixels.output_shape[-1])
        self.class_names = tuple(str(i) for i in range(classes)) if class_names is None else tuple(class_names)
        if len(self.class_names) != classes:
            raise ValueError(f"class_names must have one entry per class ({classes}); received {len(self.class_names)}")
        self.backend = backend
        if backend == "tflite":
            self._run = tflite.TFLiteModel(tflite.convert(pixels), num_threads=num_threads)
        else:
            fn = tf.function(lambda x: pixels(x, training=False),
                             input_signature=[tf.TensorSpec([None, *self.input_shape], tf.float32)])
            self._run = lambda x: fn(x).numpy()

    @classmethod
    def from_pretrained(cls, name: str, *, backend: str = "tflite", scale: float | None = None,
                        **kwargs) -> "Predictor":
        """A predictor for shipped weights ``arch.tag`` (their normalization and class names applied).

        ``scale`` takes the images to the ``[0, 1]`` range the weights' mean and std are on: by default
        theirs, for raw pixels (0-255); ``1.0`` for images already in ``[0, 1]``."""
        from zoo._registry import create_model
        from zoo._weights import get_weights_info

        meta = get_weights_info(name)
        model = create_model(meta.arch, weights=meta.tag)
        return cls(model, mean=meta.input.mean, std=meta.input.std, scale=meta.input.scale if scale is None else scale,
                   class_names=meta.head.class_names, backend=backend, **kwargs)

    def _resized(self, images) -> np.ndarray:
        """``images`` (see ``resize``) as one float32 batch of the model's input shape, still in pixel values."""
        import tensorflow as tf

        h, w, c = self.input_shape
        if isinstance(images, (list, tuple)):
            groups = [np.asarray(image)[None] for image in images]  # one image each, sizes may differ
        else:
            x = np.asarray(images)
            one = x.ndim == 2 or (x.ndim == 3 and x.shape[-1] in (1, 3, 4))  # else [N, H, W] grayscale
            groups = [x[None] if one else x[..., None] if x.ndim == 3 else x]
        out = []
        for batch in groups:
            batch = batch[..., None] if batch.ndim == 3 else batch
            if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4) or 0 in batch.shape[1:]:
                raise ValueError(f"with resize=True, images must be [H, W], or [H, W, C] with C in 1, 3, 4 (one image, "
                                 f"a batch of them or a list); received an image of shape {batch.shape[1:]}")
            batch = batch[..., :3].astype(np.float32)  # RGBA: the alpha channel dropped
            if batch.shape[-1] == 3 and c == 1:
                batch = batch @ np.array([[0.299], [0.587], [0.114]], np.float32)
            elif batch.shape[-1] == 1 and c != 1:
                batch = np.repeat(batch, c, axis=-1)
            if batch.shape[-1] != c:
                raise ValueError(f"the model takes {c} channels; received images of {batch.shape[-1]}")
            out.append(tf.image.resize(batch, (h, w), antialias=True).numpy() if len(batch) else
                       np.zeros((0, h, w, c), np.float32))
        return np.concatenate(out) if out else np.zeros((0, h, w, c), np.float32)

    def _images(self, images) -> np.ndarray:
        """``images`` as the model's float32 batch of pixels, checked: one image or a batch (of any size and
        channels with ``resize``), integer pixels or floats in the range the scale expects."""
        integers, given = _pixel_dtypes(images)
        x = self._as_batch(self._resized(images) if self.resize else images)
        self._check_pixel_range(x, integers=integers, given=given)
        return x.astype(np.float32)

    def _as_batch(self, images) -> np.ndarray:
        """``images`` as ``[N, H, W, C]`` of the model's shape: one image gains the batch axis, ``[N, H, W]``
        the channel axis of a one-channel model."""
        x = np.asarray(images)
        h, w, c = self.input_shape
        if x.size == 0 and x.ndim == 1:  # an empty list
            x = x.reshape(0, h, w, c)
        if x.shape == (h, w, c) or (c == 1 and x.shape == (h, w)):  # one image
            x = x[None]
        if c == 1 and x.ndim == 3:  # [N, H, W] grayscale
            x = x[..., None]
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"images must be [N, {h}, {w}, {c}] raw pixels (or one image, or [N, {h}, {w}] for one "
                             f"channel); received shape {tuple(np.asarray(images).shape)}")
        return x

    def _check_pixel_range(self, x: np.ndarray, *, integers: bool, given: str) -> None:
        """Refuses pixels the scale would not map to the model's range: ``[0, 1]`` floats for raw pixels, raw
        pixels for ``scale=1.0``, normalized or non-finite values (``given``: the dtype received)."""
        # Images scaled to [0, 1] (as torchvision's ToTensor gives) would be read as near-black raw pixels.
        if not integers and x.size and self.scale < 1 and 0 <= x.min() and 0 < x.max() <= 1:
            raise ValueError(f"images must be raw pixels (0-255; times scale={self.scale:g} gives the model's "
                             f"range); received floats in [{x.min():g}, {x.max():g}]. Accepted: images * 255, "
                             "scale=1.0 for images in [0, 1] (Predictor, Predictor.from_pretrained and zoo.predict "
                             "take it), or uint8 pixels (never taken for [0, 1] floats, even all dark)")
        # Pixels are finite and not negative (normalized images are), and reach at most what the scale maps
        # to 1 (with a scale below 1, or a mean that is a fraction): 255 for raw pixels (uint16 or 0-1020
        # images were taken), 1 with scale=1.0 (raw pixels were, at chance accuracy). A resize's overshoot
        # (bicubic or antialiased: -6 or 262) is within the 10% allowed.
        top = 1 / self.scale if self.scale < 1 or self._fraction_mean else np.inf
        if x.size and not (np.all(np.isfinite(x)) and -0.1 * top <= x.min() and x.max() <= 1.1 * top):
            bad = "NaN or infinite values" if not np.all(np.isfinite(x)) else f"values in [{x.min():g}, {x.max():g}]"
            accepted = f"uint8 pixels or floats in [0, {top:g}]" if top >= 255 else \
                f"floats in [0, {top:g}] (raw 0-255 pixels take the default scale, 1/255)"
            raise ValueError(f"images must be pixels in [0, {top:g}] (scale={self.scale:g}); received {given} {bad}. "
                             f"Accepted: {accepted}, not normalized images")

    def _outputs(self, images, batch_size) -> np.ndarray:
        from zoo._checks import check_int

        check_int("batch_size", batch_size, minimum=1)
        x = self._images(images)
        if not len(x):
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate([self._run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def logits(self, images, *, batch_size: int = 64) -> np.ndarray:
        """Logits for raw images (for a model that outputs probabilities, their log)."""
        outputs = self._outputs(images, batch_size)
        return np.log(np.maximum(outputs, np.finfo(np.float32).tiny)) if self._probabilities else outputs

    def __call__(self, images, *, batch_size: int = 64) -> Prediction:
        if self._probabilities:
            probabilities = self._outputs(images, batch_size).astype(np.float32)
        else:
            logits = self._outputs(images, batch_size)
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probabilities = (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)
        ids = probabilities.argmax(-1).astype(np.int64)
        return Prediction(probabilities=probabilities, class_ids=ids, labels=tuple(self.class_names[i] for i in ids))


def _pixel_dtypes(images) -> tuple[bool, str]:
    """Whether ``images`` (an array or a list of them) are integers, and the dtype received ("mixed" for several),
    before a resize makes them floats: integer images are raw pixels whatever their values (a dark uint8
    photo's would look like [0, 1] floats).

    Raises:
        ValueError: images of another dtype than integers or floats (bool masks included).
    """
    dtypes = {np.asarray(i).dtype for i in (images if isinstance(images, (list, tuple)) else [images])}
    if any(d == bool or not (np.issubdtype(d, np.integer) or np.issubdtype(d, np.floating)) for d in dtypes):
        raise ValueError(f"images must be pixels, integers or floats; received {', '.join(sorted(map(str, dtypes)))}")
    return all(np.issubdtype(d, np.integer) for d in dtypes), (str(next(iter(dtypes))) if len(dtypes) == 1
                                                                 else "mixed")


def predict(name: str, images, *, backend: str = "tflite", scale: float | None = None,
            resize: bool = False) -> Prediction:
    """One-off prediction with shipped weights ``arch.tag`` (build a `Predictor` to reuse it); ``scale`` as
    in `Predictor.from_pretrained` (``1.0`` for images in ``[0, 1]``), ``resize`` as in `Predictor` (photos
    of any size, RGB).

    Example:
        >>> predict("resnet20.fashion_mnist", images).labels  # doctest: +SKIP
    """
    return Predictor.from_pretrained(name, backend=backend, scale=scale, resize=resize)(images)
