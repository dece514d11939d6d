"""Conversion to TFLite, the LiteRT interpreter wrapper, parity checks and the TF Select report."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import _data
from export import tflite


@pytest.fixture(scope="module")
def trained():
    return tflite.with_preprocessing(_data.trained_model(), mean=_data.MEAN, std=_data.STD)


@pytest.fixture(scope="module")
def test_set():
    return _data.pixels(256, seed=7)


def test_with_preprocessing_equals_normalizing_outside(trained):
    images, _ = _data.pixels(8)
    inner = trained.layers[-1]
    np.testing.assert_allclose(trained.predict(images, verbose=0),
                               inner.predict(_data.normalized(images), verbose=0), atol=1e-5)


def test_with_preprocessing_refuses_what_it_cannot_wrap():
    import tf_keras as keras

    class Unbuilt(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match=r"needs a model with a known input shape .* received an unbuilt Unbuilt"):
        tflite.with_preprocessing(Unbuilt(), mean=(0.5,), std=(0.25,))
    called = Unbuilt()
    called(np.zeros((1, 4, 4, 2), np.float32))  # a subclassed model called once has a shape to wrap
    wrapped = tflite.with_preprocessing(called, mean=(0.5, 0.5), std=(0.25, 0.25))
    np.testing.assert_allclose(wrapped(np.full((1, 4, 4, 2), 255.0, np.float32)), 2.0)  # (1 - 0.5) / 0.25
    # ... and so does the converter, given the subclassed model itself
    pixels = np.full((2, 4, 4, 2), 0.75, np.float32)
    for quantize, calibration in (("none", None), ("int8", pixels)):
        flat = tflite.convert(called, quantize=quantize, representative_images=calibration)
        np.testing.assert_allclose(tflite.predictions(tflite.TFLiteModel(flat), pixels), pixels, atol=0.01)
    with pytest.raises(ValueError, match=r"scale .* must be a finite number > 0; received scale=0"):
        tflite.with_preprocessing(_data.model(), mean=_data.MEAN, std=_data.STD, scale=0)


@pytest.mark.parametrize("quantize,max_diff", [("none", 1e-4), ("fp16", 0.1), ("dynamic", 1.0), ("int8", 3.0)])
def test_every_quantization_converts_and_agrees_with_the_float_model(trained, test_set, quantize, max_diff, capfd):
    images, labels = test_set
    calibration = images[:64] if quantize == "int8" else None
    capfd.readouterr()
    flat = tflite.convert(trained, quantize=quantize, representative_images=calibration)
    assert "fully_quantize" not in capfd.readouterr().err  # the quantizer's line, on every int8 conversion
    model = tflite.TFLiteModel(flat)
    report = tflite.check_parity(model, trained, images, labels, max_accuracy_drop=2.0, min_top1_agreement=0.97,
                                 max_abs_diff=max_diff)
    assert report.float_accuracy > 0.9  # a model that learned, so agreement means something
    assert report.examples == 256
    if quantize in ("dynamic", "int8"):
        assert len(flat) < 0.4 * len(tflite.convert(trained))


def test_int8_with_integer_io_takes_uint8_pixels(trained, test_set):
    images, labels = test_set
    model = tflite.TFLiteModel(tflite.convert(trained, quantize="int8", representative_images=images[:64],
                                              integer_io=True))
    assert model.input_dtype == np.uint8
    report = tflite.check_parity(model, trained, images.astype(np.uint8), labels, min_top1_agreement=0.97)
    assert report.accuracy > 0.9


def test_integer_io_takes_raw_pixels_whatever_range_the_calibration_images_span(trained, test_set):
    from ai_edge_litert.interpreter import Interpreter

    images, labels = test_set
    narrow = np.clip(images[:64], 20, 180)  # calibration images that happen not to span [0, 255]
    flat = tflite.convert(trained, quantize="int8", representative_images=narrow, integer_io=True)
    assert Interpreter(model_content=flat).get_input_details()[0]["quantization"] == (1.0, 0)  # uint8 p is pixel p
    raw = tflite.TFLiteModel(flat).predict(images.astype(np.uint8))
    tflite.check_parity(raw, trained, images, labels, min_top1_agreement=0.97, max_accuracy_drop=1.0)


def test_int8_calibration_images_must_be_inputs_of_the_model(trained):
    for images in (np.zeros((0, *_data.SHAPE)), np.zeros((4, 12, 12)), np.zeros((4, 16, 16, 1))):
        message = f"representative_images must be N >= 1 inputs of the model, shape (N, 12, 12, 1); received shape " \
                  f"{images.shape}"
        with pytest.raises(ValueError, match=re.escape(message)):
            tflite.convert(trained, quantize="int8", representative_images=images)
    with pytest.raises(ValueError, match="representative_images calibrate int8 activations; received quantize='fp16'"):
        tflite.convert(trained, quantize="fp16", representative_images=np.zeros((4, *_data.SHAPE)))
    # A dimension the model leaves open takes any size.
    import tf_keras as keras

    inputs = keras.Input((None, None, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    any_size = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    assert tflite.convert(any_size, quantize="int8", representative_images=np.random.rand(4, 12, 12, 1) * 255)


def test_parity_check_fails_on_nan_or_infinite_outputs():
    reference = np.eye(3, dtype=np.float32) * 2
    nan = reference.copy()
    nan[0, 0] = nan[1, 1] = np.nan  # NaN where the class is predicted: argmax and accuracy are unchanged
    labels, images = np.arange(3), np.zeros((3, 1))
    with pytest.raises(tflite.ParityError, match="converted outputs hold 2 NaN or infinite values"):
        tflite.check_parity(nan, reference, images, labels, max_accuracy_drop=None)
    infinite = reference.copy()
    infinite[2, 0] = np.inf
    with pytest.raises(tflite.ParityError, match=r"reference outputs hold 1 NaN .*max \|logit diff\| inf > 1.0"):
        tflite.check_parity(reference, infinite, images, labels, max_abs_diff=1.0, max_accuracy_drop=None)


def test_a_drop_of_exactly_the_tolerance_passes():
    labels = np.zeros(200, dtype=np.int64)
    reference = np.tile(np.float32([1, 0]), (200, 1))
    reference[:13] = [0, 1]  # float: 187 of 200 right, 93.5%
    converted = reference.copy()
    converted[13] = [0, 1]  # one more wrong: 93.0%, 0.93 - 0.935 = -0.5000000000000004 points in floats
    report = tflite.check_parity(converted, reference, np.zeros((200, 1)), labels, max_accuracy_drop=0.5,
                                 min_top1_agreement=None)
    assert report.accuracy_change == -0.5
    with pytest.raises(tflite.ParityError, match=r"accuracy fell 0.50 pt \(allowed 0.49\)"):
        tflite.check_parity(converted, reference, np.zeros((200, 1)), labels, max_accuracy_drop=0.49,
                            min_top1_agreement=None)


def test_a_tflite_file_is_read_and_closed(trained, tmp_path):
    import gc
    import warnings

    path = tmp_path / "m.tflite"
    path.write_bytes(tflite.convert(trained))
    with warnings.catch_warnings(record=True) as caught:  # an unclosed file warns when it is collected
        warnings.simplefilter("always", ResourceWarning)
        assert tflite.TFLiteModel(str(path)).input_shape == _data.SHAPE
        assert tflite.op_counts(str(path))["FULLY_CONNECTED"] == 1
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_parity_check_fails_loudly_past_tolerance(trained, test_set):
    images, labels = test_set
    other = tflite.TFLiteModel(tflite.convert(tflite.with_preprocessing(_data.model(), mean=_data.MEAN, std=_data.STD)))
    with pytest.raises(tflite.ParityError, match=r"accuracy fell .* top-1 agreement"):
        tflite.check_parity(other, trained, images, labels, max_accuracy_drop=0.5)
    # outputs computed once can be compared again without running either model
    out, ref = tflite.predictions(other, images), tflite.predictions(trained, images)
    report = tflite.check_parity(out, ref, images, labels, max_accuracy_drop=None)
    assert report == tflite.check_parity(other, trained, images, labels, max_accuracy_drop=None)
    with pytest.raises(ValueError, match=r"outputs of shapes .* \(reference\) and .* \(converted\) for"):
        tflite.check_parity(out[:-1], ref, images, labels, max_accuracy_drop=None)


def test_int8_without_representative_data_is_refused(trained):
    with pytest.raises(ValueError, match="representative_images"):
        tflite.convert(trained, quantize="int8")
    with pytest.raises(ValueError, match="unknown quantization 'int4'.*none, fp16, dynamic, int8"):
        tflite.convert(trained, quantize="int4")


def _det_model():
    inputs = keras.Input((4, 4, 1))
    return keras.Model(inputs, keras.layers.Lambda(lambda t: tf.linalg.det(t[..., 0]))(inputs))


def test_ops_needing_tf_select_are_named_before_conversion():
    assert tflite.select_ops(_data.model()) == []
    assert tflite.select_ops(_det_model()) == ["MatrixDeterminant"]
    with pytest.raises(ValueError, match="MatrixDeterminant.*allow_select_ops"):
        tflite.convert(_det_model())
    assert len(tflite.convert(_det_model(), allow_select_ops=True)) > 0


def test_interpreter_resizes_batches_and_measures_latency(trained):
    model = tflite.TFLiteModel(tflite.convert(trained))
    images, _ = _data.pixels(70)
    assert model.predict(images, batch_size=32).shape == (70, _data.CLASSES)
    assert model.latency(images[:1], runs=3, warmup=1) > 0
    with pytest.raises(ValueError, match="no images"):
        model.predict(images[:0])
