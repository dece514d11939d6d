"""FractalNet from Larsson, Maire and Shakhnarovich, "FractalNet: Ultra-Deep Neural Networks without
Residuals", ICLR 2017.

A fractal block with ``C`` columns is the expansion ``f_1(z) = conv(z)``,
``f_{C+1}(z) = join(f_C(f_C(z)), conv(z))``, where ``conv`` is 3x3 conv-BN-ReLU and ``join`` is the
element-wise mean. Column ``c`` (1 = shallowest) is a chain of ``2**(c - 1)`` convs; as in the paper's
figure and the authors' Caffe code, the joins that meet at the same depth are one join of all their
inputs (a block ends in a single join of all ``C`` columns). ``B`` blocks, each followed by a 2x2
max pool, then the classifier. There are no residual connections.

Drop-path (section 3.1) is implemented exactly as in the paper, with two custom layers:
- `FractalJoin`: *local* drop-path. In training each join drops each of its inputs independently
  with probability ``local_drop_rate`` (paper 15%), always keeping at least one, and averages the
  survivors. At inference it is the exact mean.
- `GlobalDropPathSampler`: *global* drop-path. Once per forward pass (per mini-batch) it decides
  whether this batch uses global drop-path (probability ``global_drop_ratio``, paper 50%) and if so
  picks a single column for the whole network. Its output is passed to every join, which then keeps
  only that column's input, so the network collapses to one plain column (a join that the column does
  not reach outputs zeros, which only feeds layers whose outputs are dropped later). Otherwise the
  joins draw local drop-path masks. At inference it outputs "no global column" and nothing is dropped.
Masks are drawn per mini-batch (all examples of a batch share them), as the authors' Caffe
``FractalJoin`` and ``GlobalDropTrigger`` layers do.

Variants (CIFAR layout: ``B = 5`` blocks of 64, 128, 256, 512, 512 channels, 32x32 input, pooling
after every block down to 1x1, then a fully connected classifier):
- ``fractalnet20``: ``C = 3``, 4 convs deep per block, 20 layers; 33,724,618 trainable parameters.
- ``fractalnet40``: ``C = 4``, 8 convs deep per block, 40 layers; 76,106,634 trainable parameters.
Table 1 of the paper lists "20 layers, 38.6M params" and "40 layers, 22.9M params". Neither matches
the architecture the paper (and the authors' Caffe generator, github.com/gustavla/fractalnet)
describes: 20 layers with these channels have 33.7M parameters whichever way the conv biases and
batch-norm affines are counted, and 40 layers (C = 4) have more than twice as many, not fewer. The
paper does not give the configurations behind its two numbers, so no published count is claimed.
- ``fractalnet34``: the paper's ImageNet network, "FractalNet-34": ResNet-34's first and last layers
  (7x7/2 conv 64-BN-ReLU and 3x3/2 max pool; global average pool and fc) around ``B = 4`` blocks of
  ``C = 4`` columns, 8 convs deep each, so 1 + 4 * 8 + 1 = 34 layers. The channels are our choice,
  ResNet-34's 64, 128, 256, 512, and blocks are separated by the 2x2 pool (56 -> 28 -> 14 -> 7), the
  last block feeding the global average pool. 41,359,784 trainable parameters; the paper gives no
  count for it.

Other details and differences:
- Convs have no bias (batch norm follows); the authors' Caffe convs have a bias and their batch norm
  no scale/shift.
- ``dropout_rates``: the paper's per-block dropout, ``(0.0, 0.1, 0.2, 0.3, 0.4)`` on CIFAR, is off by
  default (``()``); when set it goes where the authors' code puts it, conv -> dropout -> BN -> ReLU.
  Drop-path is on by default (``local_drop_rate=0.15, global_drop_ratio=0.5``).
- The authors' code max-pools each column before the block's last join; we join, then pool, as the
  paper's Figure 1 draws it. Same parameters.

Small inputs (``stem="small"``, automatic under 64 px, e.g. 28x28x1 and 32x32x3) use the CIFAR
layout: no stem, the first block sees the image, every block is followed by the 2x2 pool (``same``
padding, so 28 -> 14 -> 7 -> 4 -> 2 -> 1). ``stem="imagenet"`` uses FractalNet-34's stem and pools
only between blocks, for every variant.
"""

from __future__ import annotations

from typing import Literal, Sequence

import tensorflow as tf
import tf_keras as keras

from zoo.layers import BaseRandomLayer

from zoo._registry import register_family
from zoo.models._common import bn, conv, conv_bn_act, head, image_input, resolve_stem

layers = keras.layers

__all__ = ["FractalJoin", "GlobalDropPathSampler"]


def _in_training(training):
    if training is None:
        training = keras.backend.learning_phase()
    if isinstance(training, (bool, int)):
        return bool(training)
    return tf.cast(training, tf.bool)


def _cond(pred, true_fn, false_fn):
    if isinstance(pred, bool):
        return true_fn() if pred else false_fn()
    return tf.cond(pred, true_fn, false_fn)


@keras.saving.register_keras_serializable(package="zoo")
class GlobalDropPathSampler(BaseRandomLayer):
    """Draws FractalNet's global drop-path choice once per forward pass, for every `FractalJoin`.

    Called on any batched tensor (the model input). Returns a ``(batch, num_columns)`` float mask, the
    same in every row: in training, with probability ``global_drop_ratio`` a one-hot vector of the
    single column kept in the whole network, otherwise zeros (the joins then use local drop-path). At
    inference it is always zeros.

    Args:
        num_columns: columns ``C`` of the fractal blocks.
        global_drop_ratio: fraction of mini-batches trained with global drop-path (paper 0.5).
        seed: optional seed of the random draws.

    Example:
        >>> sampler = GlobalDropPathSampler(3, global_drop_ratio=1.0)
        >>> mask = sampler(tf.zeros([2, 8, 8, 3]), training=True).numpy()
        >>> mask.sum(axis=1).tolist(), bool((mask[0] == mask[1]).all())
        ([1.0, 1.0], True)
    """

    def __init__(self, num_columns: int, global_drop_ratio: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not isinstance(num_columns, int) or num_columns < 1:
            raise ValueError(f"num_columns must be a positive int; received {num_columns!r}")
        if not 0.0 <= global_drop_ratio <= 1.0:
            raise ValueError(f"global_drop_ratio must be in [0, 1]; received {global_drop_ratio!r}")
        self.num_columns = num_columns
        self.global_drop_ratio = float(global_drop_ratio)
        self.seed = seed

    def call(self, inputs, training=None):
        columns = self.num_columns

        def draw():
            rng = self._random_generator
            is_global = rng.random_uniform([]) < self.global_drop_ratio
            column = rng.random_uniform([], minval=0, maxval=columns, dtype=tf.int32)
            return tf.one_hot(column, columns) * tf.cast(is_global, tf.float32)

        def no_drop():
            return tf.zeros([columns])

        mask = _cond(_in_training(training), draw, no_drop)
        return tf.tile(mask[tf.newaxis], tf.stack([tf.shape(inputs)[0], 1]))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([tf.TensorShape(input_shape)[0], self.num_columns])

    def get_config(self):
        return {
            **super().get_config(),
            "num_columns": self.num_columns,
            "global_drop_ratio": self.global_drop_ratio,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="zoo")
class FractalJoin(BaseRandomLayer):
    """FractalNet's join: the element-wise mean of the active inputs, with drop-path in training.

    Called on ``[x_1, ..., x_n]`` or ``[x_1, ..., x_n, global_mask]``, where input ``i`` comes from
    column ``columns[i]`` and ``global_mask`` is a `GlobalDropPathSampler` output. At inference the
    result is the exact mean of all inputs. In training, if the mask selects a column (global
    drop-path), only that column's input is kept (zeros if this join does not receive it); otherwise
    each input is dropped with probability ``drop_rate`` (local drop-path), and if all were dropped a
    uniformly chosen one is kept. Kept inputs are averaged; a dropped input gets no gradient. Masks are
    drawn per call, i.e. per mini-batch, as in the paper.

    Args:
        columns: the column index (0-based, into the sampler's mask) of each input.
        drop_rate: local drop-path probability (paper 0.15).
        seed: optional seed of the random draws.

    Example:
        >>> join = FractalJoin(columns=(1, 2))
        >>> join([tf.fill([1, 2], 1.0), tf.fill([1, 2], 3.0)], training=False).numpy().tolist()
        [[2.0, 2.0]]
    """

    def __init__(self, columns: Sequence[int], drop_rate: float = 0.15, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        columns = tuple(int(c) for c in columns)
        if len(columns) < 2 or min(columns) < 0 or len(set(columns)) != len(columns):
            raise ValueError(f"columns must be at least two distinct non-negative ints; received {columns!r}")
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"drop_rate must be in [0, 1]; received {drop_rate!r}")
        self.columns = columns
        self.drop_rate = float(drop_rate)
        self.seed = seed

    def _split(self, inputs):
        inputs = list(inputs)
        n = len(self.columns)
        if len(inputs) == n:
            return inputs, None
        if len(inputs) == n + 1:
            return inputs[:n], inputs[n]
        raise ValueError(
            f"{self.name} joins {n} columns {self.columns}: expected {n} inputs, or {n + 1} with the global "
            f"drop-path mask last; received {len(inputs)}"
        )

    def call(self, inputs, training=None):
        branches, global_mask = self._split(inputs)
        n = len(branches)

        def mean():
            # Pairwise adds and a multiply, not add_n and a divide: TFLite has no int8 ADD_N, and a
            # quantization-aware model converted it to a float ADD_N whose sum was requantized to the
            # mean's range, clipping it (FractalNet's QAT int8 agreed with its Keras model on 95%).
            total = branches[0]
            for branch in branches[1:]:
                total = total + branch
            return total * (1.0 / n)

        def dropped():
            rng = self._random_generator
            local = rng.random_uniform([n]) >= self.drop_rate
            fallback = tf.one_hot(rng.random_uniform([], minval=0, maxval=n, dtype=tf.int32), n) > 0
            keep = tf.where(tf.reduce_any(local), local, fallback)
            if global_mask is not None:
                chosen = tf.reduce_max(global_mask, axis=0)  # rows are identical: one draw per batch
                keep = tf.where(tf.reduce_any(chosen > 0), tf.gather(chosen, self.columns) > 0, keep)
            weights = tf.cast(keep, branches[0].dtype)
            weights = weights / tf.maximum(tf.reduce_sum(weights), 1.0)
            return tf.add_n([weights[i] * b for i, b in enumerate(branches)])

        if self.drop_rate == 0.0 and global_mask is None:
            return mean()
        return _cond(_in_training(training), dropped, mean)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "columns": self.columns, "drop_rate": self.drop_rate, "seed": self.seed}


def _conv_unit(x, filters: int, *, dropout: float, name: str, index: int):
    """3x3 conv -> (dropout, where the authors' code has it) -> BN -> ReLU."""
    x = conv(x, filters, 3, name=f"{name}_conv{index}")
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout{index}")(x)
    x = bn(x, f"{name}_bn{index}")
    return layers.Activation("relu", name=f"{name}_relu{index}")(x)


def _fractal_block(x, global_mask, *, columns: int, filters: int, dropout: float, local_drop_rate: float, name: str):
    """One fractal block, built depth step by depth step.

    Column ``c`` (1-based, 1 = shallowest) has a conv ending every ``2**(columns - c)`` steps of the
    ``2**(columns - 1)`` steps; where two or more columns end at the same step they meet in one join.
    """
    current = {c: x for c in range(1, columns + 1)}
    convs = dict.fromkeys(current, 0)
    for step in range(1, 2 ** (columns - 1) + 1):
        ending = [c for c in current if step % 2 ** (columns - c) == 0]
        for c in ending:
            convs[c] += 1
            current[c] = _conv_unit(current[c], filters, dropout=dropout, name=f"{name}_col{c}", index=convs[c])
        if len(ending) > 1:
            join = FractalJoin(columns=[c - 1 for c in ending], drop_rate=local_drop_rate, name=f"{name}_join{step}")
            joined = join([current[c] for c in ending] + [global_mask])
            current.update(dict.fromkeys(ending, joined))
    return current[columns]


def _create_fractalnet(
    *,
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    include_top: bool,
    pooling: str | None,
    classifier_activation: str | None,
    columns: int = 4,
    channels: tuple[int, ...] = (64, 128, 256, 512, 512),
    local_drop_rate: float = 0.15,
    global_drop_ratio: float = 0.5,
    dropout_rates: tuple[float, ...] = (),
    stem: Literal["auto", "imagenet", "small"] = "auto",
):
    """Builds a FractalNet.

    Args:
        columns: columns ``C`` of each fractal block (depth ``2**(C - 1)`` convs per block).
        channels: channels of each block; its length is the number of blocks ``B``.
        local_drop_rate: probability that a join drops each input in training (paper 0.15).
        global_drop_ratio: fraction of mini-batches trained with global drop-path (paper 0.5).
        dropout_rates: ``()`` for no dropout, or one rate per block (paper: 0.0, 0.1, 0.2, 0.3, 0.4).
        stem: ``"small"`` (CIFAR: no stem, pool after every block), ``"imagenet"`` (FractalNet-34:
            7x7/2 conv and 3x3/2 max pool, pool between blocks) or ``"auto"`` (small under 64 px).

    Raises:
        ValueError: naming the option, when an option is out of range.
    """
    if columns < 1:
        raise ValueError(f"columns must be a positive int; received {columns!r}")
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"channels must be a non-empty tuple of positive ints; received {channels!r}")
    if not 0.0 <= local_drop_rate <= 1.0:
        raise ValueError(f"local_drop_rate must be in [0, 1]; received {local_drop_rate!r}")
    if not 0.0 <= global_drop_ratio <= 1.0:
        raise ValueError(f"global_drop_ratio must be in [0, 1]; received {global_drop_ratio!r}")
    if dropout_rates and (len(dropout_rates) != len(channels) or any(not 0.0 <= r < 1.0 for r in dropout_rates)):
        raise ValueError(
            f"dropout_rates must be () or one rate in [0, 1) per block ({len(channels)} blocks); "
            f"received {dropout_rates!r}"
        )
    stem = resolve_stem(stem, input_shape, family="fractalnet")

    inputs = image_input(input_shape)
    x = inputs
    if stem == "imagenet":
        x = conv_bn_act(x, channels[0], 7, strides=2, name="stem")
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)  # zeros act as -inf: x >= 0 after ReLU
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    global_mask = None
    if columns > 1:
        global_mask = GlobalDropPathSampler(columns, global_drop_ratio, name="global_drop_path")(inputs)

    for b, filters in enumerate(channels, start=1):
        x = _fractal_block(
            x,
            global_mask,
            columns=columns,
            filters=filters,
            dropout=dropout_rates[b - 1] if dropout_rates else 0.0,
            local_drop_rate=local_drop_rate,
            name=f"block{b}",
        )
        if stem == "small" or b < len(channels):
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{b}_pool")(x)

    outputs = head(x, include_top=include_top, num_classes=num_classes, pooling=pooling,
                   classifier_activation=classifier_activation)
    return keras.Model(inputs, outputs, name=name)


FAMILY = register_family(
    "fractalnet",
    _create_fractalnet,
    paper="FractalNet: Ultra-Deep Neural Networks without Residuals",
    year=2017,
    url="https://arxiv.org/abs/1605.07648",
    weight_free_options=("local_drop_rate", "global_drop_ratio", "dropout_rates"),
)

# Table 1's 38.6M / 22.9M do not match these architectures (see the module docstring): no Published.
_CIFAR = dict(default_input_shape=(32, 32, 3), default_num_classes=10)
FAMILY.register("fractalnet20", columns=3, **_CIFAR)
FAMILY.register("fractalnet40", columns=4, **_CIFAR)
FAMILY.register("fractalnet34", columns=4, channels=(64, 128, 256, 512))
