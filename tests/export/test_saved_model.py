"""SavedModel export: raw-image serving signatures, metadata, atomic replacement."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import _data
from export import saved_model


def test_serving_signatures_take_raw_pixels_and_match_keras(tmp_path):
    model = _data.trained_model(epochs=1)
    names = ["top-left", "top-right", "bottom-left", "bottom-right"]
    path = saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN, std=_data.STD, class_names=names,
                                          metadata={"weights": "tiny.test", "sha256": "0" * 64})
    images, _ = _data.pixels(16)
    expected = tf.nn.softmax(model.predict(_data.normalized(images), verbose=0)).numpy()
    served = tf.saved_model.load(str(path))
    for name, dtype in (("serving_default", tf.uint8), ("serving_float", tf.float32)):
        out = served.signatures[name](images=tf.constant(images, dtype))
        np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
        np.testing.assert_array_equal(out["class_ids"].numpy(), expected.argmax(-1))
    assert [n.decode() for n in served.class_names.numpy()] == names
    about = saved_model.read_metadata(path)
    assert about["class_names"] == names and about["weights"] == "tiny.test"
    assert about["input"]["mean"] == list(_data.MEAN) and about["input"]["shape"] == list(_data.SHAPE)


@pytest.mark.parametrize("ending", ["softmax_layer", "softmax_activation"])
def test_a_model_that_outputs_probabilities_is_served_them_as_they_are(tmp_path, ending):
    trained = _data.trained_model(epochs=1)
    if ending == "softmax_layer":
        probs = tf_keras.layers.Softmax()(trained.output)
    else:  # as classifier_activation="softmax" builds it: the classifier's own activation
        head = trained.layers[-1]
        probs = tf_keras.layers.Dense(head.units, activation="softmax", name="probs")(head.input)
    model = tf_keras.Model(trained.input, probs)
    if ending == "softmax_activation":
        model.get_layer("probs").set_weights(head.get_weights())
    path = saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN, std=_data.STD)
    images, _ = _data.pixels(16)
    expected = model.predict(_data.normalized(images), verbose=0)
    assert expected.max(-1).mean() > 0.5  # sharp: a second softmax would flatten them towards 1/4
    out = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(images, tf.uint8))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["class_ids"].numpy(), expected.argmax(-1))


def test_a_subclassed_model_is_served_once_called_and_refused_before(tmp_path):
    import tf_keras as keras

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.flatten, self.dense = keras.layers.Flatten(), keras.layers.Dense(_data.CLASSES)

        def call(self, inputs):
            return self.dense(self.flatten(inputs))

    model = Subclassed()
    with pytest.raises(ValueError, match=r"export_saved_model needs a model with a known input shape .* received an "
                                         r"unbuilt Subclassed"):
        saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN, std=_data.STD)
    images, _ = _data.pixels(4)
    expected = tf.nn.softmax(model(_data.normalized(images))).numpy()  # called once: it has a shape now
    served = tf.saved_model.load(str(saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN,
                                                                     std=_data.STD)))
    out = served.signatures["serving_default"](images=tf.constant(images, tf.uint8))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert saved_model.read_metadata(tmp_path / "sm")["class_names"] == ["0", "1", "2", "3"]


def test_export_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    model = _data.model()
    for _ in range(2):
        saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN, std=_data.STD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]
    assert json.loads((tmp_path / "sm" / saved_model.METADATA_FILE).read_text())["class_names"] == ["0", "1", "2", "3"]


def test_bad_metadata_is_refused(tmp_path):
    model = _data.model()
    with pytest.raises(ValueError, match=r"class_names must have one entry per class \(4\); received 2"):
        saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN, std=_data.STD, class_names=["a", "b"])
    with pytest.raises(ValueError, match="one value per input channel"):
        saved_model.export_saved_model(model, tmp_path / "sm", mean=(0.1, 0.2), std=(1.0, 1.0))
    with pytest.raises(ValueError, match=r"one value per input channel \(1\) or one for all, std > 0; received "
                                         r"mean=0.5, std=0.25"):
        saved_model.export_saved_model(model, tmp_path / "sm", mean=0.5, std=0.25)  # scalars: not a TypeError
    for scale in (0, -1 / 255, float("nan"), "1/255"):
        with pytest.raises(ValueError, match=r"scale maps pixels .* a finite number > 0; received scale="):
            saved_model.export_saved_model(model, tmp_path / "sm", mean=_data.MEAN, std=_data.STD, scale=scale)
    assert not (tmp_path / "sm").exists()
    with pytest.raises(FileNotFoundError, match="not a zoo SavedModel export"):
        saved_model.read_metadata(tmp_path)
