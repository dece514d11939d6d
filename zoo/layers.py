"""Custom layers the families share; each has ``get_config`` and is registered as ``zoo>Name``.

    >>> import tf_keras as keras
    >>> keras.saving.get_registered_object("zoo>StochasticDepth") is StochasticDepth
    True
"""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

# The base of Keras' Dropout: its random draws come from a per-layer generator that the training
# loop can make stateful and checkpoint, so that a resumed run draws what an uninterrupted one would.
from tf_keras.src.engine.base_layer import BaseRandomLayer

__all__ = ["AdaptiveAveragePooling2D", "GroupedConv2D", "LocalResponseNormalization", "StochasticDepth"]


@keras.saving.register_keras_serializable(package="zoo")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalization across channels (Krizhevsky et al. 2012, section 3.3).

    ``b = a / (k + alpha/n * sum_{j in window(n)} a_j^2) ** beta`` with the paper's ``n=5, k=2,
    alpha=1e-4, beta=0.75``. The paper's alpha multiplies the plain sum; Caffe and PyTorch divide it
    by ``n`` first. We follow PyTorch/Caffe (``alpha`` is divided by ``size``), the form the
    reference implementations train with.

    Example:
        >>> LocalResponseNormalization()(tf.ones([1, 4, 4, 8])).shape
        TensorShape([1, 4, 4, 8])
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        if size < 1 or size % 2 == 0:
            raise ValueError(f"LRN size must be a positive odd int; received {size!r}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def call(self, inputs):
        return tf.nn.local_response_normalization(
            inputs, depth_radius=self.size // 2, bias=self.k, alpha=self.alpha / self.size, beta=self.beta
        )

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}


@keras.saving.register_keras_serializable(package="zoo")
class StochasticDepth(BaseRandomLayer):
    """Adds a residual branch that survives with probability ``survival_probability`` (Huang et al. 2016).

    Called on ``[shortcut, residual]``. In training each example keeps its residual branch with
    probability ``p`` (a Bernoulli draw per example, so a dropped branch gets no gradient from that
    example); at inference the branch is scaled by ``p``, its expected value, as in the paper's
    equation (5). ``p = 1`` is a plain residual addition.

    Example:
        >>> layer = StochasticDepth(0.5)
        >>> x, r = tf.zeros([4, 2]), tf.ones([4, 2])
        >>> layer([x, r], training=False).numpy()[0].tolist()
        [0.5, 0.5]
    """

    def __init__(self, survival_probability: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 < survival_probability <= 1.0:
            raise ValueError(f"survival_probability must be in (0, 1]; received {survival_probability!r}")
        self.survival_probability = float(survival_probability)
        self.seed = seed

    def call(self, inputs, training=None):
        shortcut, residual = inputs
        p = self.survival_probability
        if p == 1.0:
            return shortcut + residual
        if training is None:
            training = keras.backend.learning_phase()

        def dropped():
            shape = tf.concat([tf.shape(residual)[:1], tf.ones([tf.rank(residual) - 1], tf.int32)], axis=0)
            keep = tf.cast(self._random_generator.random_uniform(shape) < p, residual.dtype)
            return shortcut + keep * residual

        def scaled():
            return shortcut + tf.cast(p, residual.dtype) * residual

        if isinstance(training, bool):
            return dropped() if training else scaled()
        return tf.cond(tf.cast(training, tf.bool), dropped, scaled)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "survival_probability": self.survival_probability, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class AdaptiveAveragePooling2D(keras.layers.Layer):
    """Average pooling to a fixed output size, with PyTorch's ``adaptive_avg_pool2d`` bins.

    Output cell ``i`` of ``out`` averages input rows ``floor(i * H / out)`` to ``ceil((i + 1) * H / out)``
    (exclusive), so bins may overlap and differ in size by one, exactly as in PyTorch. When the input
    is smaller than the output, pixels are repeated. Needs static spatial dimensions; implemented as
    two small matrix products, so it runs in graph mode and on any device.

    Args:
        output_size: ``(height, width)`` of the output, or one int for both.

    Example:
        >>> x = tf.reshape(tf.range(16.0), [1, 4, 4, 1])
        >>> AdaptiveAveragePooling2D(2)(x)[0, :, :, 0].numpy().tolist()
        [[2.5, 4.5], [10.5, 12.5]]
    """

    def __init__(self, output_size: int | tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"output_size must be a positive int or (height, width); received {output_size!r}")
        self.output_size = size
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @staticmethod
    def _bins(n_in: int, n_out: int):
        rows = []
        for i in range(n_out):
            start, end = (i * n_in) // n_out, math.ceil((i + 1) * n_in / n_out)
            rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(n_in)])
        return rows

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        if height is None or width is None:
            raise ValueError(f"{self.__class__.__name__} needs static height and width; received {inputs.shape}")
        rows = tf.constant(self._bins(int(height), self.output_size[0]), dtype=inputs.dtype)
        cols = tf.constant(self._bins(int(width), self.output_size[1]), dtype=inputs.dtype)
        return tf.einsum("ih,bhwc,jw->bijc", rows, inputs, cols)

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        return tf.TensorShape([input_shape[0], *self.output_size, input_shape[3]])

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size}


@keras.saving.register_keras_serializable(package="zoo")
class ChannelPad(keras.layers.Layer):
    """Zero channels added before and after the input's: ResNet's "option A" shortcut widening.

    One ``PAD`` op when converted to TFLite, which the XNNPACK delegate runs in float and int8. (The
    stock-layer version, ``Reshape`` to 5-D, ``ZeroPadding3D``, ``Reshape`` back, converts to nine ops
    with run-time shapes that split ResNet-20's delegated graph into five parts.)

    Args:
        padding: ``(before, after)`` channels.

    Example:
        >>> ChannelPad((1, 2))(tf.ones([1, 1, 1, 2]))[0, 0, 0].numpy().tolist()
        [0.0, 1.0, 1.0, 0.0, 0.0]
    """

    def __init__(self, padding: tuple[int, int], **kwargs):
        super().__init__(**kwargs)
        padding = tuple(padding)
        if len(padding) != 2 or not all(isinstance(p, int) and p >= 0 for p in padding):
            raise ValueError(f"padding must be (before, after) non-negative ints; received {padding!r}")
        self.padding = padding
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def call(self, inputs):
        return tf.pad(inputs, [[0, 0], [0, 0], [0, 0], list(self.padding)])

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        channels = input_shape[3]
        return input_shape[:3].concatenate([None if channels is None else channels + sum(self.padding)])

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def _grouped_conv2d(x, kernel, *, groups: int, strides, padding: str, dilations):
    """``tf.nn.conv2d`` with a grouped kernel, whose gradient is computed one group at a time."""
    strides4, dilations4 = [1, *strides, 1], [1, *dilations, 1]

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            xs, ks, dys = tf.split(x, groups, -1), tf.split(kernel, groups, -1), tf.split(dy, groups, -1)
            dx = [tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(xg), filter=kg, out_backprop=dyg,
                                                 strides=strides4, padding=padding, dilations=dilations4)
                  for xg, kg, dyg in zip(xs, ks, dys)]
            dk = [tf.raw_ops.Conv2DBackpropFilter(input=xg, filter_sizes=tf.shape(kg), out_backprop=dyg,
                                                  strides=strides4, padding=padding, dilations=dilations4)
                  for xg, kg, dyg in zip(xs, ks, dys)]
            return tf.concat(dx, -1), tf.concat(dk, -1)

        return tf.nn.conv2d(x, kernel, strides4, padding, dilations=dilations4), grad

    return conv(x, kernel)


@keras.saving.register_keras_serializable(package="zoo")
class GroupedConv2D(keras.layers.Conv2D):
    """``Conv2D(groups=g)`` with a fast gradient on CPU.

    The forward op, the kernel layout ``(kh, kw, in / g, out)`` and the config are exactly
    ``Conv2D``'s, so weights move freely between the two and TFLite sees a plain grouped
    ``CONV_2D``. Only the backward pass differs: TF's CPU gradient kernels for grouped convolutions
    are two orders of magnitude slower than running the groups separately (measured here: 32 groups
    on a 32x14x14x256 batch, 7.5 s per forward+backward against 0.03 s), which made ResNeXt and the
    two-tower AlexNet untrainable on CPU.

    Example:
        >>> layer = GroupedConv2D(8, 3, groups=4, padding="same")
        >>> layer(tf.ones([1, 5, 5, 4])).shape
        TensorShape([1, 5, 5, 8])
    """

    def __init__(self, filters, kernel_size, groups: int = 2, **kwargs):
        super().__init__(filters, kernel_size, groups=groups, **kwargs)
        if self.padding not in ("same", "valid"):
            raise ValueError(f"GroupedConv2D padding must be 'same' or 'valid'; received {self.padding!r}")

    # TFMOT's pruning and clustering accept custom layers that name their prunable weights; its
    # registries only know the stock Conv2D class, not subclasses (`export.cluster` registers this
    # class as a ClusterableLayer).
    def get_prunable_weights(self):
        return [self.kernel]

    def get_clusterable_weights(self):
        return [("kernel", self.kernel)]

    def get_clusterable_algorithm(self, weight_name):
        return None  # TFMOT's default lookup, as for Conv2D

    def _jit_compiled_convolution_op(self, inputs, kernel):
        # tf_keras sends grouped convolutions through XLA (its b/213173659): a compilation per
        # shape, about a second each. TF 2.21's oneDNN CPU kernels run them natively.
        return self.convolution_op(inputs, kernel)

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        return _grouped_conv2d(inputs, kernel, groups=self.groups, strides=self.strides,
                               padding=self.padding.upper(), dilations=self.dilation_rate)
