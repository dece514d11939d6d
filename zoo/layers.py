"""Custom layers the families share; each has ``get_config`` and is registered as ``zoo>Name``.

    >>> import tf_keras as keras
    >>> keras.saving.get_registered_object("zoo>StochasticDepth") is StochasticDepth
    True
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

__all__ = ["LocalResponseNormalization", "StochasticDepth"]


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
class StochasticDepth(keras.layers.Layer):
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
        super().__init__(**kwargs)
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
            keep = tf.cast(tf.random.uniform(shape, seed=self.seed) < p, residual.dtype)
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
