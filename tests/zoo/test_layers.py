"""The shared custom layers: behaviour in training and inference, and serialization."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from zoo.layers import LocalResponseNormalization, StochasticDepth
from zoo.models.resnet.resnet import survival_probabilities


def test_stochastic_depth_drops_whole_branches_per_example_in_training():
    layer = StochasticDepth(0.5, seed=3)
    shortcut, residual = tf.zeros([2000, 3, 3, 2]), tf.ones([2000, 3, 3, 2])
    out = layer([shortcut, residual], training=True).numpy()
    per_example = out.reshape(2000, -1)
    assert set(np.unique(per_example)) == {0.0, 1.0}
    assert (per_example.min(axis=1) == per_example.max(axis=1)).all()  # all or nothing per example
    assert 0.45 < per_example[:, 0].mean() < 0.55


def test_stochastic_depth_scales_by_survival_probability_at_inference():
    layer = StochasticDepth(0.8)
    out = layer([tf.fill([2, 4], 1.0), tf.fill([2, 4], 2.0)], training=False)
    np.testing.assert_allclose(out.numpy(), 1.0 + 0.8 * 2.0)
    assert StochasticDepth(1.0)([tf.ones([1, 2]), tf.ones([1, 2])], training=True).numpy().tolist() == [[2.0, 2.0]]


def test_stochastic_depth_validates_and_round_trips():
    with pytest.raises(ValueError, match=r"survival_probability must be in \(0, 1\]; received 0"):
        StochasticDepth(0.0)
    layer = StochasticDepth(0.7, seed=1, name="sd")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, StochasticDepth) and clone.survival_probability == 0.7 and clone.name == "sd"


def test_linear_decay_rule():
    assert survival_probabilities(4, 0.5) == [0.875, 0.75, 0.625, 0.5]
    assert survival_probabilities(3, 1.0) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="received 1.5"):
        survival_probabilities(3, 1.5)


def test_stochastic_depth_model_drops_in_training_and_is_deterministic_at_inference():
    import zoo

    model = zoo.create_model("stochastic_depth_resnet110", input_shape=(28, 28, 1), num_classes=10)
    drops = [layer for layer in model.layers if isinstance(layer, StochasticDepth)]
    assert len(drops) == 54 and drops[-1].survival_probability == pytest.approx(0.5)
    assert drops[0].survival_probability == pytest.approx(1 - 0.5 / 54)
    x = tf.random.stateless_normal((8, 28, 28, 1), seed=(1, 1))
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=False).numpy())
    a, b = model(x, training=True).numpy(), model(x, training=True).numpy()
    assert not np.allclose(a, b)


def test_local_response_normalization_matches_the_formula():
    x = tf.random.stateless_uniform([1, 2, 2, 7], seed=(0, 1)).numpy()
    out = LocalResponseNormalization(size=5, alpha=1e-1, beta=0.75, k=2.0)(x).numpy()
    expected = np.empty_like(x)
    for c in range(7):
        window = x[..., max(0, c - 2): c + 3]
        expected[..., c] = x[..., c] / (2.0 + 1e-1 / 5 * (window**2).sum(-1)) ** 0.75
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="positive odd int; received 4"):
        LocalResponseNormalization(size=4)


@pytest.mark.parametrize("options", [dict(padding="same"), dict(strides=2, padding="valid"),
                                     dict(strides=2, padding="same"), dict(dilation_rate=2, padding="same")])
def test_grouped_conv_matches_keras_conv2d_forward_and_backward(options):
    from zoo.layers import GroupedConv2D

    x = tf.random.stateless_normal((3, 9, 9, 16), seed=(4, 2))
    grouped = GroupedConv2D(32, 3, groups=4, **options)
    native = keras.layers.Conv2D(32, 3, groups=4, **options)
    grouped.build(x.shape)
    native.build(x.shape)
    native.set_weights(grouped.get_weights())  # the same kernel layout (3, 3, 16 / 4, 32)

    def outputs_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    for a, b in zip(outputs_and_grads(grouped), outputs_and_grads(native)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    assert keras.layers.deserialize(keras.layers.serialize(grouped)).get_config() == grouped.get_config()


def test_channel_pad_adds_zero_channels_and_converts_to_one_pad():
    from export import tflite
    from zoo.layers import ChannelPad

    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype(np.float32)
    layer = ChannelPad((2, 3))
    out = layer(x).numpy()
    np.testing.assert_array_equal(out[..., 2:6], x)
    assert out.shape == (2, 3, 3, 9) and not out[..., :2].any() and not out[..., 6:].any()
    assert ChannelPad.from_config(layer.get_config()).padding == (2, 3)
    with pytest.raises(ValueError, match=r"padding must be \(before, after\) non-negative ints; received \(-1, 2\)"):
        ChannelPad((-1, 2))
    inputs = keras.Input((3, 3, 4))
    model = keras.Model(inputs, ChannelPad((2, 3))(inputs))
    converted = tflite.TFLiteModel(tflite.convert(model))
    np.testing.assert_array_equal(converted.predict(x), out)
    # one op with static shapes: the 5-D reshape + ZeroPadding3D version added SHAPE/PACK/RESHAPE ops
    assert tflite.op_counts(converted) == {"PAD": 1}
