"""The seed's optimizers against a numpy transcription of its pseudo-code, in Keras and through the factory."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from training.optimizers import (
    SEED_OPTIMIZERS,
    SeedAdam,
    SeedMomentum,
    SeedNesterov,
    SeedSGD,
    get_optimizer,
    list_optimizers,
)

# An ill-conditioned least-squares problem, f(x) = 0.5 * |A x - b|^2 on x in R^5 (condition number ~ 20).
_rng = np.random.default_rng(0)
A = _rng.normal(size=(8, 5)) * np.array([3.0, 1.5, 1.0, 0.5, 0.3])
B = _rng.normal(size=8)
X0 = _rng.normal(size=5)
STEPS = 100

# Per-optimizer learning rates that make progress without diverging on this problem.
LEARNING_RATES = {"sgd": 0.02, "momentum": 0.005, "nesterov": 0.005, "adagrad": 0.3, "rmsprop": 0.01, "adam": 0.05}


def numpy_gradient(x):
    return A.T @ (A @ x - B)


def seed_numpy(name, x, learning_rates, *, rho=0.9, decay_rate=0.99, beta1=0.9, beta2=0.999):
    """The seed's loops, line by line, with its slips fixed (marked FIX). Returns x after every step."""
    x = x.copy()
    path = []
    vx = v = grad_squared = first_moment = second_moment = 0
    for t, learning_rate in enumerate(learning_rates, start=1):  # FIX: Adam's t starts at 1, not 0
        dx = numpy_gradient(x)
        if name == "sgd":
            x -= learning_rate * dx  # FIX: the seed's code adds
        elif name == "momentum":
            vx = rho * vx + dx
            x -= learning_rate * vx  # FIX: the seed's code adds
        elif name == "nesterov":
            old_v = v
            v = rho * v - learning_rate * dx
            x += -rho * old_v + (1 + rho) * v
        elif name == "adagrad":
            grad_squared += dx * dx
            x -= learning_rate * dx / (np.sqrt(grad_squared) + 1e-7)
        elif name == "rmsprop":
            grad_squared = decay_rate * grad_squared + (1 - decay_rate) * dx * dx
            x -= learning_rate * dx / (np.sqrt(grad_squared) + 1e-7)
        elif name == "adam":
            first_moment = beta1 * first_moment + (1 - beta1) * dx
            second_moment = beta2 * second_moment + (1 - beta2) * dx * dx
            first_unbias = first_moment / (1 - beta1**t)
            second_unbias = second_moment / (1 - beta2**t)
            x -= learning_rate * first_unbias / (np.sqrt(second_unbias) + 1e-7)
        path.append(x.copy())
    return np.array(path)


def keras_path(optimizer, steps=STEPS):
    a, b = tf.constant(A), tf.constant(B)
    x = tf.Variable(X0, dtype=tf.float64)
    path = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(tf.square(tf.linalg.matvec(a, x) - b))
        optimizer.apply_gradients([(tape.gradient(loss, x), x)])
        path.append(x.numpy())
    return np.array(path)


def f32(value):
    # Keras keeps the learning rate in a float32 variable; the reference uses the same rounded value.
    return float(np.float32(value))


@pytest.mark.parametrize("name", list(SEED_OPTIMIZERS))
def test_matches_the_seed_pseudo_code_for_100_steps(name):
    lr = LEARNING_RATES[name]
    got = keras_path(get_optimizer(name, learning_rate=lr))
    expected = seed_numpy(name, X0, [f32(lr)] * STEPS)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # and it optimizes: the loss fell (a sign error, as in the seed's SGD code, would climb)
    loss = lambda x: 0.5 * np.sum((A @ x - B) ** 2)  # noqa: E731
    assert loss(got[-1]) < 0.5 * loss(X0)


@pytest.mark.parametrize("name", list(SEED_OPTIMIZERS))
def test_follows_a_learning_rate_schedule(name):
    lr = LEARNING_RATES[name]
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([30, 60], [lr, lr / 2, lr / 8])
    got = keras_path(get_optimizer(name, learning_rate=schedule))
    # the optimizer evaluates the schedule at its iteration count, 0 on the first step
    lrs = [f32(lr if i <= 30 else lr / 2 if i <= 60 else lr / 8) for i in range(STEPS)]
    np.testing.assert_allclose(got, seed_numpy(name, X0, lrs), rtol=1e-6, atol=1e-6)


def test_seed_momentum_and_nesterov_match_keras_sgd_at_a_constant_learning_rate():
    # Values exact in float32: Keras casts its Python-float momentum through float32.
    lr, rho = 2.0**-8, 0.875
    np.testing.assert_allclose(
        keras_path(SeedMomentum(lr, rho=rho)),
        keras_path(keras.optimizers.SGD(lr, momentum=rho)),
        rtol=1e-9,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        keras_path(SeedNesterov(lr, rho=rho)),
        keras_path(keras.optimizers.SGD(lr, momentum=rho, nesterov=True)),
        rtol=1e-9,
        atol=1e-9,
    )


@pytest.mark.parametrize("name", list(SEED_OPTIMIZERS))
def test_sparse_gradients_update_like_their_dense_equivalent(name):
    init = np.arange(12.0).reshape(4, 3) / 10
    sparse_var, dense_var = tf.Variable(init), tf.Variable(init)
    sparse_opt, dense_opt = get_optimizer(name, learning_rate=0.1), get_optimizer(name, learning_rate=0.1)
    for rows in ([0, 2, 2], [1], [3, 0]):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(sparse_var, rows) ** 2)
        grad = tape.gradient(loss, sparse_var)
        assert isinstance(grad, tf.IndexedSlices)
        sparse_opt.apply_gradients([(grad, sparse_var)])
        dense_opt.apply_gradients([(tf.convert_to_tensor(grad), dense_var)])
    np.testing.assert_allclose(sparse_var.numpy(), dense_var.numpy(), rtol=1e-12)


def test_every_seed_optimizer_trains_a_tiny_model_with_fit():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 1))).astype("float32")
    for name in SEED_OPTIMIZERS:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Dense(8, activation="relu", input_shape=(4,)), keras.layers.Dense(1)])
        model.compile(optimizer=get_optimizer(name, learning_rate=0.05), loss="mse")
        history = model.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=False).history["loss"]
        assert history[-1] < 0.7 * history[0], (name, history)


@pytest.mark.parametrize("name", list(SEED_OPTIMIZERS))
def test_config_round_trips_and_serializes(name):
    opt = get_optimizer(name, learning_rate=0.125, clipnorm=1.0)
    config = opt.get_config()
    assert config["learning_rate"] == 0.125 and config["clipnorm"] == 1.0
    assert type(opt).from_config(config).get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is type(opt) and restored.get_config() == config
    assert keras.optimizers.serialize(opt)["registered_name"] == f"zoo>{type(opt).__name__}"


def test_a_schedule_survives_serialization_and_the_factory_takes_configs():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    opt = SeedAdam(schedule, beta1=0.8)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(restored._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert restored._learning_rate.get_config() == schedule.get_config() and restored.beta1 == 0.8
    rebuilt = get_optimizer(keras.optimizers.serialize(opt), learning_rate=0.01, beta2=0.99)
    assert isinstance(rebuilt, SeedAdam) and (rebuilt.beta1, rebuilt.beta2) == (0.8, 0.99)
    assert rebuilt.get_config()["learning_rate"] == pytest.approx(0.01)


def test_slots_checkpoint_and_resume_to_the_same_trajectory(tmp_path):
    full = keras_path(SeedAdam(0.05), steps=20)
    a, b = tf.constant(A), tf.constant(B)

    def run(opt, x, steps):
        for _ in range(steps):
            with tf.GradientTape() as tape:
                loss = 0.5 * tf.reduce_sum(tf.square(tf.linalg.matvec(a, x) - b))
            opt.apply_gradients([(tape.gradient(loss, x), x)])

    x, opt = tf.Variable(X0), SeedAdam(0.05)
    run(opt, x, 10)
    prefix = tf.train.Checkpoint(x=x, optimizer=opt).save(str(tmp_path / "ckpt"))
    x2, opt2 = tf.Variable(np.zeros(5)), SeedAdam(0.05)
    opt2.build([x2])
    tf.train.Checkpoint(x=x2, optimizer=opt2).restore(prefix).assert_consumed()
    assert int(opt2.iterations) == 10
    run(opt2, x2, 10)
    np.testing.assert_allclose(x2.numpy(), full[-1], rtol=1e-12)


def test_factory_names():
    assert type(get_optimizer("sgd", learning_rate=0.1)) is SeedSGD
    assert type(get_optimizer(" Adam ", learning_rate=0.1)) is SeedAdam
    assert type(get_optimizer("keras:sgd", learning_rate=0.1, momentum=0.9)) is keras.optimizers.SGD
    assert type(get_optimizer("keras:adam", learning_rate=0.1)) is keras.optimizers.Adam
    assert type(get_optimizer("adamw", learning_rate=0.1, weight_decay=1e-4)) is keras.optimizers.AdamW
    assert type(get_optimizer("keras:AdamW", learning_rate=0.1)) is keras.optimizers.AdamW
    assert get_optimizer("momentum", learning_rate=0.1, rho=0.99).rho == 0.99
    assert get_optimizer("rmsprop").decay_rate == 0.99  # the seed's default, and Keras' learning rate
    opt = SeedSGD(0.1)
    assert get_optimizer(opt) is opt
    assert list_optimizers()[:6] == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]


def test_factory_errors_name_what_is_accepted():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamx'\..*Accepted: sgd, momentum, nesterov.*keras:sgd"):
        get_optimizer("adamx", learning_rate=0.1)
    with pytest.raises(ValueError, match="Close matches: adamax"):
        get_optimizer("adamx", learning_rate=0.1)
    with pytest.raises(ValueError, match=r"'momentum' \(SeedMomentum\) does not take beta1\. Accepted: learning_rate"):
        get_optimizer("momentum", learning_rate=0.1, beta1=0.9)
    with pytest.raises(ValueError, match="learning_rate must be a positive float.*received -1"):
        get_optimizer("sgd", learning_rate=-1)
    with pytest.raises(ValueError, match="an optimizer instance is used as is"):
        get_optimizer(SeedSGD(0.1), learning_rate=0.2)
    with pytest.raises(ValueError, match=r"'class_name' and 'config'; received keys \['name'\]"):
        get_optimizer({"name": "sgd"}, learning_rate=0.1)
    with pytest.raises(ValueError, match="name_or_config must be an optimizer name.*received 3"):
        get_optimizer(3, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"rho must be a float in \[0, 1\); received 1.5"):
        SeedMomentum(0.1, rho=1.5)
