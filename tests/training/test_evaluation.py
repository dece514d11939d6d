"""evaluate: exact metrics on hand-built models whose predictions are known in advance."""

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from training.evaluation import EvalResult, evaluate, outputs_logits

CLASSES = 6


def _identity_model(activation="linear", *, aux=False):
    """Outputs its input features (through ``activation``): the prediction is their argmax."""
    inputs = keras.Input((CLASSES,), name="features")
    outputs = keras.layers.Activation(activation, name="predictions")(inputs)
    if aux:  # a training-only head that would get every example wrong
        aux_out = keras.layers.Lambda(lambda t: -t, name="aux1_predictions")(inputs)
        return keras.Model(inputs, [outputs, aux_out])
    return keras.Model(inputs, outputs)


def _data(seed=0, n=50):
    rng = np.random.default_rng(seed)
    features = rng.normal(0.0, 2.0, (n, CLASSES)).astype("float32")
    labels = rng.integers(0, CLASSES, n).astype("int64")
    labels[: n // 2] = features[: n // 2].argmax(axis=1)  # half right, the rest mostly wrong
    return features, labels


def _expected(features, labels):
    preds = features.argmax(axis=1)
    matrix = np.zeros((CLASSES, CLASSES), dtype=np.int64)
    for t, p in zip(labels, preds):
        matrix[t, p] += 1
    shifted = features - features.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_softmax[np.arange(len(labels)), labels].mean()
    top5 = np.mean([(features[i] > features[i, labels[i]]).sum() < 5 for i in range(len(labels))])
    return matrix, loss, top5


def _ds(features, labels, batch=16):
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch)  # 50 = 3*16 + a partial batch


def test_exact_accuracy_confusion_matrix_loss_and_top5():
    features, labels = _data()
    result = evaluate(_identity_model(), _ds(features, labels))
    matrix, loss, top5 = _expected(features, labels)
    np.testing.assert_array_equal(result.confusion_matrix, matrix)
    assert result.num_examples == 50
    assert result.accuracy == pytest.approx(np.trace(matrix) / 50)
    assert result.top5_accuracy == pytest.approx(top5)
    assert result.loss == pytest.approx(loss, rel=1e-5)
    recall = np.diag(matrix) / matrix.sum(axis=1)
    np.testing.assert_allclose(result.per_class_accuracy, recall)
    assert result.class_names == tuple(str(i) for i in range(CLASSES))
    assert result.num_classes == CLASSES


def test_probabilities_are_detected_and_from_logits_overrides():
    features, labels = _data(1)
    _, loss, _ = _expected(features, labels)
    logits_model, softmax_model = _identity_model(), _identity_model("softmax")
    assert outputs_logits(logits_model) and not outputs_logits(softmax_model)
    from_probs = evaluate(softmax_model, _ds(features, labels))
    assert from_probs.loss == pytest.approx(loss, rel=1e-4)
    # the same probabilities through a linear output, told explicitly
    probs = tf.nn.softmax(features).numpy()
    told = evaluate(logits_model, _ds(probs, labels), from_logits=False)
    assert told.loss == pytest.approx(loss, rel=1e-4)
    assert told.accuracy == from_probs.accuracy == evaluate(logits_model, _ds(features, labels)).accuracy


def test_dense_softmax_layer_counts_as_probabilities():
    inputs = keras.Input((3,))
    assert not outputs_logits(keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(inputs)))
    assert not outputs_logits(keras.Model(inputs, keras.layers.Softmax()(inputs)))
    assert outputs_logits(keras.Model(inputs, keras.layers.Dense(4)(inputs)))


def test_multi_output_model_uses_the_primary_output():
    features, labels = _data(2)
    single = evaluate(_identity_model(), _ds(features, labels))
    multi = evaluate(_identity_model(aux=True), _ds(features, labels))
    np.testing.assert_array_equal(multi.confusion_matrix, single.confusion_matrix)
    assert multi.loss == pytest.approx(single.loss)


def test_label_shapes_and_one_hot_agree():
    features, labels = _data(3)
    reference = evaluate(_identity_model(), _ds(features, labels))
    column = evaluate(_identity_model(), _ds(features, labels[:, None].astype("int32")))
    one_hot = evaluate(_identity_model(), _ds(features, np.eye(CLASSES, dtype="float32")[labels]))
    arrays = evaluate(_identity_model(), (features, labels), batch_size=7)  # numpy arrays, batched for us
    for other in (column, one_hot, arrays):
        np.testing.assert_array_equal(other.confusion_matrix, reference.confusion_matrix)
        assert other.loss == pytest.approx(reference.loss)


def test_fewer_than_five_classes_has_no_top5_and_absent_class_is_nan():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Activation("linear", name="predictions")(inputs))
    features = np.array([[3, 0, 0], [0, 3, 0], [3, 0, 0]], dtype="float32")
    labels = np.array([0, 1, 1])  # class 2 never appears
    result = evaluate(model, _ds(features, labels), class_names=["a", "b", "c"])
    assert result.top5_accuracy is None
    assert result.accuracy == pytest.approx(2 / 3)
    assert result.per_class_accuracy[:2] == (1.0, 0.5) and math.isnan(result.per_class_accuracy[2])
    np.testing.assert_array_equal(result.confusion_matrix, [[1, 0, 0], [1, 1, 0], [0, 0, 0]])

    data = json.loads(json.dumps(result.to_dict()))  # strict JSON: no NaN
    assert data["per_class_accuracy"] == [1.0, 0.5, None] and data["class_names"] == ["a", "b", "c"]
    back = EvalResult.from_dict(data)
    np.testing.assert_array_equal(back.confusion_matrix, result.confusion_matrix)
    assert back.accuracy == result.accuracy and back.top5_accuracy is None
    assert "accuracy 66.67%" in result.summary()


def test_result_is_frozen():
    features, labels = _data()
    result = evaluate(_identity_model(), _ds(features, labels))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.accuracy = 1.0
    with pytest.raises(ValueError):
        result.confusion_matrix[0, 0] = 99  # read-only array


def test_errors_say_what_was_received():
    features, labels = _data()
    model = _identity_model()
    with pytest.raises(ValueError, match=r"class_names has 2 names but the model has 6 classes"):
        evaluate(model, _ds(features, labels), class_names=["a", "b"])
    with pytest.raises(ValueError, match="unbatched"):
        evaluate(model, tf.data.Dataset.from_tensor_slices((features, labels)))
    with pytest.raises(ValueError, match=r"label 7 is outside \[0, 6\)"):
        evaluate(model, _ds(features, np.full(50, 7)))
    with pytest.raises(ValueError, match=r"the dataset has labels of shape \(None, 4\) for a 6-class model; "
                                         r"accepted: class ids"):
        evaluate(model, _ds(features, np.eye(4, dtype="float32")[labels % 4]))
    pixels = np.zeros((4, 4, 4, 1), "uint8")
    inputs = keras.Input((4, 4, 1))
    plain = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)), name="plain")
    with pytest.raises(ValueError, match=r"the dataset has uint8 images \(raw pixels\?\) and model 'plain' scales "
                                         r"nothing"):  # chance accuracy, silently, before
        evaluate(plain, _ds(pixels, np.zeros(4, "int64")))
    scaled = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))))
    assert evaluate(scaled, _ds(pixels, np.zeros(4, "int64"))).num_examples == 4
    with pytest.raises(ValueError, match="no examples"):
        evaluate(model, _ds(features[:0], labels[:0]))
    with pytest.raises(ValueError, match=r"\(images, labels\) pairs"):
        evaluate(model, tf.data.Dataset.from_tensor_slices(features).batch(4))
    inputs = keras.Input((4, 4, 1))
    images = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    rgb = tf.data.Dataset.from_tensor_slices((np.zeros((2, 4, 4, 3), "float32"), np.zeros(2, "int64"))).batch(2)
    with pytest.raises(ValueError, match=r"the model takes images of shape \(4, 4, 1\); the dataset has images of "
                                         r"shape \(4, 4, 3\)\. Accepted: "):  # it was an AutoGraph traceback
        evaluate(images, rgb)


def test_a_subclassed_model_is_judged_as_its_functional_twin():
    class Identity(keras.Model):  # its output shape is known only once it has run
        def call(self, x, training=False):
            return tf.identity(x)

    features, labels = _data()
    expected = evaluate(_identity_model(), _ds(features, labels))
    got = evaluate(Identity(), _ds(features, labels))
    np.testing.assert_array_equal(got.confusion_matrix, expected.confusion_matrix)
    assert got.loss == pytest.approx(expected.loss)
    with pytest.raises(ValueError, match="yielded no examples"):
        evaluate(Identity(), _ds(features, labels).take(0))


def test_raw_pixels_as_floats_are_refused_for_a_zoo_model():
    import zoo

    model = zoo.create_model("resnet20", weights="fashion_mnist")
    images, labels = zoo.sample_images("fashion_mnist")
    with pytest.raises(ValueError, match=r"float images with values up to 255 \(raw pixels\?\) and 'resnet20' takes "
                                         r"normalized images"):
        evaluate(model, (images.astype("float32"), labels))
    normalized = zoo.get_weights_info("resnet20").input.normalize(images)
    assert evaluate(model, (normalized, labels)).accuracy > 0.8
    # An image model of other origins may take any range (keras.applications' caffe-style inputs reach 150), even
    # under a zoo name (keras.applications' resnet50); a dataset is not read ahead (a stream would lose a batch).
    inputs = keras.Input((4, 4, 1))
    mine = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)), name="resnet50")
    assert evaluate(mine, (np.full((3, 4, 4, 1), 200.0, "float32"), np.zeros(3, int))).num_examples == 3
    stream = iter([(images[:50].astype("float32"), labels[:50]), (images[50:].astype("float32"), labels[50:])])
    spec = (tf.TensorSpec([None, 28, 28, 1], tf.float32), tf.TensorSpec([None], tf.int64))
    assert evaluate(model, tf.data.Dataset.from_generator(lambda: stream, output_signature=spec)).num_examples == 100
