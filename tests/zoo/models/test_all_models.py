"""Registry-driven checks over every registered model, on small inputs.

For each model: it builds at 28x28x1 and 32x32x3 (and the small-input networks at 224x224x3, the
ImageNet ones at their default 224 in the card test), one training-mode gradient step reaches every
trainable weight (auxiliary heads included), the config round-trips, and layer names are
deterministic. Saving (h5 weights and SavedModel) is checked on the smallest variant of each
family: the families' variants share their layers, and a SavedModel of every large variant would
cost minutes each.
"""

import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import zoo
from zoo import _registry as registry

MODELS = zoo.list_models()

# Stochastic regularizers off for the gradient check, so that no weight misses its gradient by
# chance; their dropping is tested with their layers (tests/zoo/test_layers.py, the family tests).
DETERMINISTIC_OPTIONS = {
    "stochastic_depth": {"min_survival_probability": 1.0},
    "fractalnet": {"local_drop_rate": 0.0, "global_drop_ratio": 0.0},
}


def _options(name):
    return DETERMINISTIC_OPTIONS.get(registry.get_spec(name).family.name, {})


def _as_list(outputs):
    return outputs if isinstance(outputs, (list, tuple)) else [outputs]


def _auto_name(layer) -> bool:
    """True when Keras named the layer (``conv2d_3``), i.e. the builder forgot to."""
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
    return re.fullmatch(rf"{prefix}(_\d+)?", layer.name) is not None


@pytest.mark.parametrize("name", MODELS)
def test_gradient_step_reaches_every_weight(name):
    model = zoo.create_model(name, input_shape=(28, 28, 1), num_classes=10, **_options(name))
    assert model.output_shape == (None, 10) or model.output_shape[0] == (None, 10)
    assert not [layer.name for layer in model.layers if _auto_name(layer)]
    x = tf.random.stateless_normal((4, 28, 28, 1), seed=(1, 2))
    y = tf.constant([0, 3, 5, 9])
    with tf.GradientTape() as tape:
        outputs = _as_list(model(x, training=True))
        loss = tf.add_n([keras.losses.sparse_categorical_crossentropy(y, o, from_logits=True) for o in outputs])
        loss = tf.reduce_mean(loss)
    assert np.isfinite(loss.numpy())
    grads = tape.gradient(loss, model.trainable_weights)
    dead = [w.name for w, g in zip(model.trainable_weights, grads) if g is None or not np.any(g.numpy())]
    assert not dead, f"{name}: weights without gradient: {dead[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip_at_32x32x3(name):
    model = zoo.create_model(name, input_shape=(32, 32, 3), num_classes=7)
    for output in model.outputs:
        assert tuple(output.shape) == (None, 7)
    clone = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    assert clone.count_params() == model.count_params()
    if name in SMALLEST:  # deterministic names (every model's are explicit: test_gradient_step_...), per family
        again = zoo.create_model(name, input_shape=(32, 32, 3), num_classes=7)
        assert [layer.name for layer in again.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", [n for n in MODELS if registry.get_spec(n).default_input_shape[0] < 64])
def test_small_input_networks_build_at_224(name):
    model = zoo.create_model(name, input_shape=(224, 224, 3), num_classes=5)
    assert model.output_shape == (None, 5) or model.output_shape[0] == (None, 5)


@pytest.mark.parametrize("name", ["resnet18", "resnet20"])
def test_include_top_false_and_pooling(name):
    features = zoo.create_model(name, input_shape=(32, 32, 3), include_top=False)
    assert len(features.output_shape) == 4
    pooled = zoo.create_model(name, input_shape=(32, 32, 3), include_top=False, pooling="avg")
    assert pooled.output_shape == (None, features.output_shape[-1])
    assert not any(layer.name == "predictions" for layer in pooled.layers)
    probs = zoo.create_model(name, input_shape=(32, 32, 3), num_classes=4, classifier_activation="softmax")
    out = probs(tf.random.stateless_normal((2, 32, 32, 3), seed=(0, 1)), training=False)
    np.testing.assert_allclose(tf.reduce_sum(out, axis=-1).numpy(), 1.0, rtol=1e-5)


def _smallest_per_family(cards):
    best = {}
    for name in MODELS:
        family = registry.get_spec(name).family.name
        if family not in best or cards[name]["params"] < cards[best[family]]["params"]:
            best[family] = name
    return sorted(best.values())


SMALLEST = _smallest_per_family(registry._cards() or {n: {"params": 0} for n in MODELS})

# Fewer blocks of the same kinds for the deep ones: saving a SavedModel traces every layer, which took
# 20-55 s each at full depth.
_SHALLOW = {"stochastic_depth_resnet110": dict(stage_depths=(2, 2, 2)),
            "densenet_bc100_k12": dict(block_config=(2, 2, 2)),
            "resnext50_32x4d": dict(stage_depths=(1, 1, 1, 1)),
            "fractalnet20": dict(columns=2)}


@pytest.mark.parametrize("name", SMALLEST)
def test_h5_weights_and_saved_model_round_trip(name, tmp_path):
    options = dict(input_shape=(28, 28, 1), num_classes=10, **_SHALLOW.get(name, {}))
    model = zoo.create_model(name, **options)
    x = tf.random.stateless_normal((3, 28, 28, 1), seed=(5, 6))
    # Move BN statistics off their initial values so that reloading them is actually checked.
    for w in model.non_trainable_weights:
        w.assign(tf.random.stateless_uniform(w.shape, seed=(7, 8), minval=0.5, maxval=1.5))
    expected = [o.numpy() for o in _as_list(model(x, training=False))]

    model.save_weights(tmp_path / "w.h5")
    fresh = zoo.create_model(name, weights=str(tmp_path / "w.h5"), **options)
    for a, b in zip(expected, _as_list(fresh(x, training=False))):
        np.testing.assert_array_equal(a, b.numpy())

    model.save(tmp_path / "saved_model", save_format="tf")
    loaded = keras.models.load_model(tmp_path / "saved_model")
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for a, b in zip(expected, _as_list(loaded(x, training=False))):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
    raw = tf.saved_model.load(str(tmp_path / "saved_model"))
    served = raw.signatures["serving_default"](image=x)
    np.testing.assert_allclose(expected[0], served[model.output_names[0]].numpy(), rtol=1e-5, atol=1e-6)


def test_strip_training_outputs_keeps_the_prediction():
    net = zoo.create_model("googlenet", input_shape=(32, 32, 3), num_classes=10)
    assert len(net.outputs) == 3
    deploy = zoo.strip_training_outputs(net)
    assert len(deploy.outputs) == 1 and deploy.count_params() < net.count_params()
    x = tf.random.stateless_normal((2, 32, 32, 3), seed=(3, 4))
    np.testing.assert_allclose(deploy(x, training=False).numpy(), net(x, training=False)[0].numpy(), rtol=1e-6)
    single = zoo.create_model("resnet20", input_shape=(32, 32, 3))
    assert zoo.strip_training_outputs(single) is single
