"""Weight penalties, DropConnect and label smoothing: against numpy, in fit, and through saving."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from training.optimizers import SeedSGD
from training.regularizers import (
    DropConnect,
    SmoothedSparseCategoricalCrossentropy,
    apply_weight_penalty,
    label_smoothing_loss,
    weight_penalty,
)


def tiny_model(seed=0):
    """Every kind of kernel: Conv2D, DepthwiseConv2D, SeparableConv2D (two), Dense, DropConnect."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = keras.layers.SeparableConv2D(5, 3, name="separable")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, activation="relu", name="dense")(x)
    outputs = DropConnect(3, drop_rate=0.3, name="predictions")(x)
    model = keras.Model(inputs, outputs)
    for weight in model.weights:  # non-zero biases and BN parameters: a penalty on them would show
        if "kernel" not in weight.name:
            weight.assign(tf.fill(weight.shape, 0.5))
    return model


def kernels(model):
    names = ("kernel", "depthwise_kernel", "pointwise_kernel")
    return [getattr(l, n).numpy() for l in model.layers for n in names if isinstance(getattr(l, n, None), tf.Variable)]


def numpy_penalty(model, l1, l2):
    return sum(l1 * np.abs(k).sum() + l2 * np.square(k).sum() for k in kernels(model))


# -- weight penalties -------------------------------------------------------------------------------


@pytest.mark.parametrize("l1, l2", [(1e-3, 0.0), (0.0, 1e-2), (1e-3, 1e-2)])
def test_penalty_sums_to_the_numpy_penalty_of_every_kernel(l1, l2):
    model = apply_weight_penalty(tiny_model(), l1=l1, l2=l2)
    assert len(kernels(model)) == 6 and len(model.losses) == 6
    np.testing.assert_allclose(float(tf.add_n(model.losses)), numpy_penalty(model, l1, l2), rtol=1e-5)


def test_penalty_reaches_layers_of_nested_models():
    backbone = tiny_model()
    inputs = keras.Input((8, 8, 3))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(backbone(inputs)))
    apply_weight_penalty(outer, l2=1e-2)
    assert len(outer.losses) == 7
    expected = numpy_penalty(backbone, 0, 1e-2) + 1e-2 * np.square(outer.get_layer("head").kernel.numpy()).sum()
    np.testing.assert_allclose(float(tf.add_n(outer.losses)), expected, rtol=1e-5)


def test_penalty_survives_saving_and_cloning_and_reapplying_is_a_no_op(tmp_path):
    model = apply_weight_penalty(tiny_model(), l1=1e-3, l2=1e-2)
    expected = float(tf.add_n(model.losses))
    assert apply_weight_penalty(model, l1=1e-3, l2=1e-2) is model and len(model.losses) == 6
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert len(loaded.losses) == 6 and isinstance(loaded.get_layer("predictions"), DropConnect)
    np.testing.assert_allclose(float(tf.add_n(loaded.losses)), expected, rtol=1e-6)
    apply_weight_penalty(loaded, l1=1e-3, l2=1e-2)  # a loaded model already has it
    assert len(loaded.losses) == 6
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(float(tf.add_n(clone.losses)), expected, rtol=1e-6)


def test_a_different_penalty_on_a_penalized_model_raises_and_changes_nothing():
    model = tiny_model()
    model.get_layer("dense").kernel_regularizer = keras.regularizers.L1L2(l2=0.5)
    with pytest.raises(ValueError, match=r"layer 'dense' already has kernel_regularizer=.*received l1=0.0, l2=0.01"):
        apply_weight_penalty(model, l2=1e-2)
    assert model.losses == [] and model.get_layer("conv").kernel_regularizer is None


def regularizers(model):
    names = ("kernel_regularizer", "depthwise_regularizer", "pointwise_regularizer")
    return [getattr(l, n) for l in model.layers for n in names if getattr(l, n, None) is not None]


def test_weight_penalty_is_on_in_its_block_only():
    model = tiny_model()
    with weight_penalty(model, l1=1e-3, l2=1e-2) as same:
        assert same is model and len(model.losses) == 6 and len(regularizers(model)) == 6
        np.testing.assert_allclose(float(tf.add_n(model.losses)), numpy_penalty(model, 1e-3, 1e-2), rtol=1e-5)
    assert model.losses == [] and regularizers(model) == []
    with weight_penalty(model, l2=0.5):  # another penalty now: the first one left nothing behind
        np.testing.assert_allclose(float(tf.add_n(model.losses)), numpy_penalty(model, 0, 0.5), rtol=1e-5)
    assert model.losses == []


def test_weight_penalty_leaves_a_penalty_the_model_had():
    model = apply_weight_penalty(tiny_model(), l2=1e-2)
    with weight_penalty(model, l2=1e-2):  # the same values: nothing added
        assert len(model.losses) == 6
    assert len(model.losses) == 6 and len(regularizers(model)) == 6
    with pytest.raises(ValueError, match="already has kernel_regularizer"), weight_penalty(model, l2=0.5):
        pass
    assert len(model.losses) == 6


def test_validation():
    model = tiny_model()
    assert apply_weight_penalty(model) is model and model.losses == []
    with pytest.raises(ValueError, match="l2 must be a non-negative float; received -0.1"):
        apply_weight_penalty(model, l2=-0.1)
    with pytest.raises(ValueError, match="is not built"):
        apply_weight_penalty(keras.Sequential([keras.layers.Dense(2)]), l2=0.1)


def test_fitting_with_l2_shrinks_the_weights():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    norms = {}
    for l2 in (0.0, 0.1):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Dense(16, activation="tanh", input_shape=(10,)), keras.layers.Dense(1)])
        apply_weight_penalty(model, l2=l2)
        model.compile(optimizer=SeedSGD(0.05), loss="mse")
        model.fit(x, y, batch_size=16, epochs=10, verbose=0, shuffle=False)
        norms[l2] = np.sqrt(sum(np.square(k).sum() for k in kernels(model)))
    assert norms[0.1] < 0.8 * norms[0.0], norms


# -- DropConnect --------------------------------------------------------------------------------------


def dropconnect(drop_rate=0.5, units=5, inputs=4, seed=None):
    keras.utils.set_random_seed(0)  # a fixed kernel: a weight near 0 next to its bias defeats recover_mask
    layer = DropConnect(units, drop_rate=drop_rate, seed=seed)
    layer.build((None, inputs))
    layer.bias.assign(np.linspace(-1, 1, units).astype("float32"))
    return layer


def recover_mask(layer, x, out):
    """From the first rows of ``x`` (the identity), the 0/1 mask the call used; checks the rows fit it."""
    n = layer.kernel.shape[0]
    kernel, bias, keep = layer.kernel.numpy(), layer.bias.numpy(), 1 - layer.drop_rate
    scaled = (out[:n] - bias) * keep / kernel  # row i of the identity selects row i of the masked kernel
    mask = np.round(scaled)
    np.testing.assert_allclose(scaled, mask, atol=1e-3)  # a tiny weight next to a bias loses digits
    assert set(np.unique(mask)) <= {0.0, 1.0}
    return mask


def test_training_output_is_a_masked_kernel_drawn_per_call():
    layer = dropconnect()
    rng = np.random.default_rng(0)
    x = np.concatenate([np.eye(4), rng.normal(size=(6, 4))]).astype("float32")
    masks = []
    for _ in range(3):
        out = layer(x, training=True).numpy()
        mask = recover_mask(layer, x, out)
        # the whole batch, not only the identity rows, used that one mask
        expected = x @ (mask * layer.kernel.numpy()) / 0.5 + layer.bias.numpy()
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
        masks.append(mask)
    assert not (np.array_equal(masks[0], masks[1]) and np.array_equal(masks[1], masks[2]))


def test_keeps_a_fraction_keep_prob_of_the_weights():
    layer = dropconnect(drop_rate=0.3, units=64, inputs=64)
    mask = recover_mask(layer, np.eye(64, dtype="float32"), layer(np.eye(64, dtype="float32"), training=True).numpy())
    assert 0.66 < mask.mean() < 0.74


def test_inference_is_the_plain_dense_layer():
    layer = dropconnect(drop_rate=0.6)
    dense = keras.layers.Dense(5)
    dense.build((None, 4))
    dense.set_weights(layer.get_weights())
    x = np.random.default_rng(1).normal(size=(7, 4)).astype("float32")
    for out in (layer(x), layer(x, training=False)):
        np.testing.assert_array_equal(out.numpy(), dense(x).numpy())
    x3 = np.random.default_rng(2).normal(size=(2, 3, 4)).astype("float32")  # rank-3 inputs, like Dense
    assert layer(x3, training=True).shape == (2, 3, 5)
    np.testing.assert_allclose(layer(x3).numpy(), dense(x3).numpy(), rtol=1e-6)


def test_gradient_reaches_only_the_kept_weights():
    layer = dropconnect()
    x = np.concatenate([np.eye(4), np.ones((2, 4))]).astype("float32")
    with tf.GradientTape() as tape:
        out = layer(x, training=True)
        loss = tf.reduce_sum(out)
    grad = tape.gradient(loss, layer.kernel).numpy()
    mask = recover_mask(layer, x, out.numpy())
    np.testing.assert_allclose(grad, x.sum(axis=0)[:, None] * mask / 0.5, rtol=1e-6)
    assert ((grad != 0) == (mask == 1)).all()


def test_dropconnect_config_round_trip_macs_and_fit():
    from zoo._flops import count_macs

    layer = DropConnect(3, drop_rate=0.25, seed=7, activation="relu", name="dc")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(clone, DropConnect) and (clone.drop_rate, clone.seed, clone.units) == (0.25, 7, 3)
    assert clone.get_config() == layer.get_config()
    assert keras.saving.get_registered_object("zoo>DropConnect") is DropConnect

    model = keras.Sequential([keras.Input((8,)), DropConnect(4, drop_rate=0.5)])
    assert count_macs(model) == 32
    x = np.ones((2, 8), "float32")
    assert not np.allclose(model(x, training=True), model(x, training=False))  # the model passes `training` on
    model.compile(optimizer=SeedSGD(0.05), loss="mse")
    history = model.fit(np.ones((16, 8)), np.zeros((16, 4)), epochs=3, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    with pytest.raises(ValueError, match=r"drop_rate must be a float in \[0, 1\); received 1.0"):
        DropConnect(3, drop_rate=1.0)


def test_a_resumed_run_draws_the_masks_the_uninterrupted_one_draws(tmp_path):
    # As tests/training/test_loop.py's resume tests: the masks' generator state is in the checkpoint.
    import _tiny
    import training

    def model():
        inputs = keras.Input(_tiny.SHAPE)
        x = keras.layers.Flatten()(inputs)
        x = DropConnect(16, drop_rate=0.5, activation="relu", name="dc")(x)
        return keras.Model(inputs, keras.layers.Dense(_tiny.CLASSES, name="predictions")(x))

    class Stop(keras.callbacks.Callback):  # at step 4, one step past the checkpoint at step 3
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 4:
                raise KeyboardInterrupt

    recipe = training.Recipe(optimizer="sgd", learning_rate=0.1, epochs=1, batch_size=_tiny.BATCH, checkpoint_every=3,
                             steps_per_execution=1, deterministic=True)
    straight = training.fit(model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "a", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        training.fit(model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "b", callbacks=[Stop()], verbose=0)
    resumed = training.fit(model, _tiny.epoch_data, recipe=recipe, out_dir=tmp_path / "b", verbose=0)
    assert resumed.resumed_from_step == 3 and resumed.steps == 6
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- label smoothing ------------------------------------------------------------------------------------


def numpy_smoothed_cross_entropy(labels, logits, smoothing):
    k = logits.shape[-1]
    targets = np.eye(k)[labels] * (1 - smoothing) + smoothing / k
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(np.mean(-(targets * log_softmax).sum(axis=-1)))


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_numpy(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype("float32") * 3
    labels = rng.integers(0, 5, size=6)
    expected = numpy_smoothed_cross_entropy(labels, logits.astype(np.float64), smoothing)
    loss = label_smoothing_loss(smoothing)
    np.testing.assert_allclose(float(loss(labels, logits)), expected, rtol=1e-5)
    np.testing.assert_allclose(float(loss(labels[:, None].astype("float32"), logits)), expected, rtol=1e-5)
    probabilities = tf.nn.softmax(logits)
    np.testing.assert_allclose(float(label_smoothing_loss(smoothing, from_logits=False)(labels, probabilities)),
                               expected, rtol=1e-4)
    if smoothing == 0.0:
        plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
        np.testing.assert_allclose(float(loss(labels, logits)), float(plain), rtol=1e-6)


def test_label_smoothing_serializes_and_trains():
    loss = label_smoothing_loss(0.1)
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(clone, SmoothedSparseCategoricalCrossentropy) and clone.label_smoothing == 0.1
    assert clone.from_logits is True
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=SeedSGD(0.1), loss=loss)
    history = model.fit(np.ones((8, 4)), np.arange(8) % 3, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    with pytest.raises(ValueError, match=r"label_smoothing must be a float in \[0, 1\); received 1.2"):
        label_smoothing_loss(1.2)
