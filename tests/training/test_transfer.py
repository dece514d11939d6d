"""finetune: head replacement across head structures, what trains per mode, frozen batch norm, digits."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from sklearn.datasets import load_digits

import zoo
from training.evaluation import evaluate
from training.transfer import finetune, trainable_layer_names

SHAPE = (16, 16, 1)  # digits' 8x8 upsampled 2x: ResNet-20's small stem ends at 4x4


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = np.kron((data.images / 16.0).astype("float32"), np.ones((2, 2), "float32"))[..., None]
    labels = data.target.astype("int64")
    return (images[:1200], labels[:1200]), (images[1200:], labels[1200:])


@pytest.fixture(scope="module")
def pretrained(digits):
    """ResNet-20 trained briefly on digits 0-4: its batch norm statistics are no longer the initial ones."""
    (x, y), _ = digits
    keras.utils.set_random_seed(0)
    model = zoo.create_model("resnet20", input_shape=SHAPE, num_classes=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[y < 5], y[y < 5], batch_size=64, epochs=1, verbose=0)
    return model


def _weights_by_name(model):
    return {w.name: w.numpy() for layer in model.layers for w in layer.weights}


def _compile(model, learning_rate=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def test_trainable_layers_per_mode(pretrained):
    weighted = [layer.name for layer in pretrained.layers if layer.weights][:-1]  # the body's, without the head
    assert trainable_layer_names(finetune(pretrained, 10, train_layers="head")) == ["predictions"]
    assert trainable_layer_names(finetune(pretrained, 10, train_layers="last:3")) == [*weighted[-3:], "predictions"]
    assert weighted[-2:] == ["stage3_block3_2_conv", "stage3_block3_2_bn"]  # batch norm layers count
    assert trainable_layer_names(finetune(pretrained, 10, train_layers="all")) == [*weighted, "predictions"]
    # the original model is left alone
    assert all(layer.trainable for layer in pretrained.layers)
    assert pretrained.output_shape == (None, 5)


@pytest.mark.parametrize("bad", ["last:0", "last", "last:-1", "first:2", "Head", "", 3])
def test_train_layers_error_lists_accepted_forms(pretrained, bad):
    with pytest.raises(ValueError, match=r"Accepted: \"head\", \"last:N\" \(N a positive int\), \"all\""):
        finetune(pretrained, 10, train_layers=bad)


def test_other_argument_errors(pretrained):
    with pytest.raises(ValueError, match=r"only \d+; use train_layers='all'"):
        finetune(pretrained, 10, train_layers="last:1000")
    with pytest.raises(ValueError, match="new_num_classes must be a positive int; received 0"):
        finetune(pretrained, 0)
    with pytest.raises(ValueError, match=r"head_dropout must be in \[0, 1\); received 1.0"):
        finetune(pretrained, 10, head_dropout=1.0)


def test_head_only_finetune_on_digits(pretrained, digits):
    (x, y), (x_test, y_test) = digits
    before = _weights_by_name(pretrained)
    model = finetune(pretrained, 10, train_layers="head")
    assert model.output_shape == (None, 10)
    assert model.get_layer("predictions").activation is keras.activations.linear

    frozen_bn = model.get_layer("stage1_block1_1_bn")
    assert not frozen_bn.trainable
    features = model.layers[-3].output  # the last block's output, before pooling
    probe = keras.Model(model.inputs, features)
    reference = probe(x_test[:64], training=False).numpy()
    # Frozen batch norm runs in inference mode even when called in training mode.
    np.testing.assert_allclose(probe(x_test[:64], training=True).numpy(), reference, atol=1e-5)
    np.testing.assert_allclose(model(x_test[:64], training=True), model(x_test[:64], training=False), atol=1e-5)

    _compile(model)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)

    after = _weights_by_name(model)
    head = {w.name for w in model.get_layer("predictions").weights}
    for name, value in after.items():
        if name not in head:
            np.testing.assert_array_equal(value, before[name], err_msg=f"frozen weight {name} changed")
    assert any("moving_mean" in n for n in after)  # the frozen batch norm statistics were compared too
    np.testing.assert_allclose(probe(x_test[:64], training=False).numpy(), reference, atol=1e-6)

    result = evaluate(model, tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(200))
    assert result.accuracy > 0.3, result.summary()  # chance is 0.1


def test_last_n_trains_only_its_layers_and_their_batch_norm(pretrained, digits):
    (x, y), _ = digits
    before = _weights_by_name(pretrained)
    model = finetune(pretrained, 10, train_layers="last:2")
    _compile(model, 1e-3)
    model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)

    after = _weights_by_name(model)
    trained = {w.name for n in ("stage3_block3_2_conv", "stage3_block3_2_bn") for w in model.get_layer(n).weights}
    for name in after:
        if name in trained:
            assert not np.array_equal(after[name], before[name]), f"{name} should have trained"
        elif not name.startswith("predictions/"):
            np.testing.assert_array_equal(after[name], before[name], err_msg=f"frozen weight {name} changed")


@pytest.mark.parametrize("name", ["squeezenet1_1", "nin"])
def test_class_map_convolution_heads(name):
    base = zoo.create_model(name, input_shape=(32, 32, 3), num_classes=7, classifier_activation="softmax")
    model = finetune(base, 3, head_dropout=0.5)
    names = [layer.name for layer in model.layers]
    assert "head_conv" not in names and "head_relu" not in names
    assert isinstance(model.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)
    assert model.layers[-2].rate == 0.5 and isinstance(model.layers[-1], keras.layers.Dense)
    assert model.output_shape == (None, 3) and model.get_layer("predictions").activation is keras.activations.linear
    assert trainable_layer_names(model) == ["predictions"]
    assert len(names) == len(set(names))  # SqueezeNet's own head_dropout stays; ours gets another name


def test_auxiliary_outputs_are_dropped():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    aux = keras.layers.Dense(5, name="aux1_predictions")(keras.layers.Flatten(name="aux1_flatten")(x))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    base = keras.Model(inputs, [keras.layers.Dense(5, name="predictions")(x), aux])
    model = finetune(base, 2, train_layers="all")
    assert len(model.outputs) == 1 and model.output_shape == (None, 2)
    assert "aux1_predictions" not in [layer.name for layer in model.layers]
    assert trainable_layer_names(model) == ["conv", "predictions"]


def test_unrecognized_heads_are_refused():
    headless = zoo.create_model("resnet20", input_shape=SHAPE, num_classes=10, include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="include_top=True"):
        finetune(headless, 3)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv3x3")(inputs)
    odd = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="predictions")(x))
    with pytest.raises(ValueError, match=r"unrecognized head.*'conv3x3' \(Conv2D\)"):
        finetune(odd, 3)
