"""Data augmentation whose randomness is a pure function of ``(seed, epoch, example index)``.

Three transforms, applied in this order to images in ``[0, 1]`` (as torchvision's CIFAR recipe
orders them: ``RandomCrop(padding) -> RandomHorizontalFlip -> Normalize -> RandomErasing``):

* random crop with zero padding: pad ``P`` black pixels on every side, then crop back to the
  original size at a uniformly drawn offset (the "4 px" of He et al. 2016's CIFAR recipe);
* horizontal flip with probability 0.5;
* random erasing (Zhong et al. 2017, Algorithm 1): with probability ``p`` pick a rectangle of area
  ``U(0.02, 0.4) * H * W`` and aspect ratio ``U(0.3, 3.3)`` at a uniform top-left corner, retrying
  until it fits (at most 100 tries, after which the example is left as is), and fill it with the
  dataset mean, i.e. **0 in normalized space** (torchvision's ``RandomErasing(value=0)`` after
  ``Normalize``). The paper's default fills with random values; we do not, so the fill is cheap and
  does not depend on a per-pixel random draw.

How determinism is kept: `Augment.draw` draws every example's parameters for one epoch with numpy
from ``(seed, epoch)`` up front (a few small integer arrays), and `Augment.apply` only gathers them by
example index and applies them vectorized on a batch. So the augmentation of example ``i`` in epoch
``e`` is the same whatever the batch size, the shuffle or how many batches were skipped to resume,
and a batch costs a few gathers, not a per-example ``tf.data`` map (which on a 2-core machine takes
CPU away from the training step).

    >>> aug = get_augment("crop_flip")
    >>> params = aug.draw(4, (28, 28), seed=0, epoch=0)
    >>> aug.apply(tf.zeros([4, 28, 28, 1]), params).shape
    TensorShape([4, 28, 28, 1])
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Mapping

import numpy as np
import tensorflow as tf

from zoo._checks import as_int

__all__ = ["AUGMENTATIONS", "Augment", "get_augment"]

# Zhong et al. 2017 retry until the rectangle fits; we bound it (it fits within a few tries).
_ERASING_ATTEMPTS = 100


@dataclasses.dataclass(frozen=True)
class Augment:
    """Which augmentations to apply; the default is none.

    Attributes:
        random_crop_padding: pixels of zero padding on each side before cropping back to size;
            0 turns random cropping off.
        horizontal_flip: flip left-right with probability 0.5.
        random_erasing: probability of erasing one rectangle per image; 0 turns it off.
        erasing_scale: range of the erased area as a fraction of the image (the paper's ``s_l, s_h``).
        erasing_ratio: range of the erased rectangle's aspect ratio height/width (``r_1, r_2``).

    Example:
        >>> Augment(random_crop_padding=4, horizontal_flip=True).is_identity
        False
    """

    random_crop_padding: int = 0
    horizontal_flip: bool = False
    random_erasing: float = 0.0
    erasing_scale: tuple[float, float] = (0.02, 0.4)
    erasing_ratio: tuple[float, float] = (0.3, 3.3)

    def __post_init__(self):
        pad = self.random_crop_padding
        if as_int(pad, minimum=0) is None:
            raise ValueError(f"random_crop_padding must be a non-negative int; received {pad!r}")
        if not isinstance(self.horizontal_flip, (bool, np.bool_)):
            raise TypeError(f"horizontal_flip must be a bool; received {self.horizontal_flip!r}")
        p = self.random_erasing
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"random_erasing is a probability in [0, 1]; received {p!r}")
        ranges = (("erasing_scale", self.erasing_scale, 1.0), ("erasing_ratio", self.erasing_ratio, None))
        for field, bounds, upper in ranges:
            ok = (
                isinstance(bounds, (tuple, list))
                and len(bounds) == 2
                and all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds)
                and 0.0 < bounds[0] <= bounds[1]
                and (upper is None or bounds[1] <= upper)
            )
            if not ok:
                limit = " <= 1" if upper else ""
                raise ValueError(f"{field} must be (low, high) with 0 < low <= high{limit}; received {bounds!r}")
        object.__setattr__(self, "erasing_scale", tuple(float(b) for b in self.erasing_scale))
        object.__setattr__(self, "erasing_ratio", tuple(float(b) for b in self.erasing_ratio))

    @property
    def is_identity(self) -> bool:
        """True when no transform is on (then `training.data` skips augmentation entirely)."""
        return self.random_crop_padding == 0 and not self.horizontal_flip and self.random_erasing == 0.0

    def draw(self, num_examples: int, image_size: tuple[int, int], *, seed: int, epoch: int) -> dict[str, np.ndarray]:
        """Draws one epoch's parameters for examples ``0 .. num_examples-1``.

        A pure function of its arguments: the same ``(seed, epoch)`` gives the same arrays.

        Args:
            num_examples: examples in the split (row ``i`` belongs to example ``i``).
            image_size: ``(height, width)`` of the images the parameters will be applied to.
            seed: non-negative int.
            epoch: non-negative int.

        Returns:
            A dict with only the active transforms' arrays: ``"offset"`` int32 ``[N, 2]`` (crop
            top/left in the padded image), ``"flip"`` bool ``[N]``, ``"erase"`` int32 ``[N, 4]``
            (top, left, height, width; height 0 means not erased).

        Example:
            >>> Augment(horizontal_flip=True).draw(3, (8, 8), seed=0, epoch=0)["flip"].shape
            (3,)
        """
        height, width = image_size
        # Stream 1 of (seed, epoch); stream 0 is the shuffle in training.data.
        rng = np.random.default_rng([seed, epoch, 1])
        params: dict[str, np.ndarray] = {}
        if self.random_crop_padding:
            params["offset"] = rng.integers(0, 2 * self.random_crop_padding + 1, size=(num_examples, 2), dtype=np.int32)
        if self.horizontal_flip:
            params["flip"] = rng.random(num_examples) < 0.5
        if self.random_erasing:
            params["erase"] = _draw_erasing(rng, num_examples, height, width, self)
        return params

    def apply(self, images: tf.Tensor, params: Mapping[str, tf.Tensor], *, fill: tf.Tensor | float = 0.0) -> tf.Tensor:
        """Applies a batch's parameters (rows of `draw`'s arrays) to ``images`` ``[B, H, W, C]``.

        Args:
            images: float images in ``[0, 1]`` (before normalization).
            params: `draw`'s arrays gathered for the batch's examples.
            fill: value of erased pixels, a scalar or one per channel; pass the dataset mean so that
                erased pixels are 0 after normalization.

        Returns:
            The augmented images, same shape and dtype.

        Example:
            >>> aug = Augment(horizontal_flip=True)
            >>> x = tf.reshape(tf.range(4.0), [1, 1, 4, 1])
            >>> aug.apply(x, {"flip": tf.constant([True])})[0, 0, :, 0].numpy().tolist()
            [3.0, 2.0, 1.0, 0.0]
        """
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        x = images
        pad = self.random_crop_padding
        if pad or self.horizontal_flip:
            cols = tf.range(width)[None, :]
            if pad:
                offset = tf.cast(params["offset"], tf.int32)
                x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
                rows = offset[:, :1] + tf.range(height)[None, :]
                x = tf.gather(x, rows, axis=1, batch_dims=1)
                cols = offset[:, 1:] + cols
            else:
                cols = tf.tile(cols, [shape[0], 1])
            if self.horizontal_flip:
                cols = tf.where(params["flip"][:, None], tf.reverse(cols, axis=[1]), cols)
            x = tf.gather(x, cols, axis=2, batch_dims=1)
        if self.random_erasing:
            top, left, h, w = tf.unstack(tf.cast(params["erase"], tf.int32), axis=1)
            r = tf.range(height)[None, :]
            c = tf.range(width)[None, :]
            in_rows = (r >= top[:, None]) & (r < (top + h)[:, None])
            in_cols = (c >= left[:, None]) & (c < (left + w)[:, None])
            mask = in_rows[:, :, None, None] & in_cols[:, None, :, None]
            x = tf.where(mask, tf.cast(fill, x.dtype), x)
        return x


def _draw_erasing(rng: np.random.Generator, n: int, height: int, width: int, aug: Augment) -> np.ndarray:
    boxes = np.zeros((n, 4), np.int32)
    remaining = np.flatnonzero(rng.random(n) < aug.random_erasing)
    area = float(height * width)
    for _ in range(_ERASING_ATTEMPTS):
        if remaining.size == 0:
            break
        m = remaining.size
        target = rng.uniform(*aug.erasing_scale, size=m) * area
        ratio = rng.uniform(*aug.erasing_ratio, size=m)
        h = np.rint(np.sqrt(target * ratio)).astype(np.int64)
        w = np.rint(np.sqrt(target / ratio)).astype(np.int64)
        top = rng.integers(0, height, size=m)
        left = rng.integers(0, width, size=m)
        ok = (h > 0) & (w > 0) & (top + h <= height) & (left + w <= width)
        boxes[remaining[ok]] = np.stack([top, left, h, w], axis=1)[ok]
        remaining = remaining[~ok]
    return boxes


AUGMENTATIONS: Mapping[str, Augment] = {
    "none": Augment(),
    "flip": Augment(horizontal_flip=True),
    "crop": Augment(random_crop_padding=4),
    "crop_flip": Augment(random_crop_padding=4, horizontal_flip=True),
    # p = 0.5 is Zhong et al.'s setting for their CIFAR and Fashion-MNIST results.
    "crop_flip_erase": Augment(random_crop_padding=4, horizontal_flip=True, random_erasing=0.5),
}


def get_augment(spec: str | Augment | None) -> Augment:
    """Returns the `Augment` for a name, an `Augment` as is, or no augmentation for ``None``.

    Args:
        spec: ``None``, one of `AUGMENTATIONS` (``none``, ``flip``, ``crop``, ``crop_flip``,
            ``crop_flip_erase``) or an `Augment`.

    Returns:
        An `Augment`.

    Raises:
        ValueError: unknown name (the error lists the valid ones).
        TypeError: ``spec`` is of another type.

    Example:
        >>> get_augment("crop_flip") == Augment(random_crop_padding=4, horizontal_flip=True)
        True
    """
    if spec is None:
        return AUGMENTATIONS["none"]
    if isinstance(spec, Augment):
        return spec
    if isinstance(spec, str):
        if spec in AUGMENTATIONS:
            return AUGMENTATIONS[spec]
        close = difflib.get_close_matches(spec, list(AUGMENTATIONS), n=3)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown augmentation {spec!r}. Received spec={spec!r}. Valid names: {', '.join(AUGMENTATIONS)}.{hint}"
        )
    raise TypeError(f"augment must be None, a name ({', '.join(AUGMENTATIONS)}) or an Augment; received {spec!r}")
