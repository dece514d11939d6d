"""zoo.Predictor: raw images in, the float model's predictions out, on the fast paths."""

import numpy as np
import pytest

import zoo
from zoo._weights import sample_images


@pytest.fixture(scope="module")
def samples():
    return sample_images("fashion_mnist")


@pytest.mark.parametrize("backend", ["tflite", "function"])
def test_predictor_matches_the_keras_model_on_raw_images(samples, backend):
    images, labels = samples
    meta = zoo.get_weights_info("resnet20.fashion_mnist")
    model = zoo.create_model("resnet20", weights="fashion_mnist")
    expected = model.predict(meta.input.normalize(images), verbose=0)
    predictor = zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend=backend)
    np.testing.assert_allclose(predictor.logits(images), expected, atol=1e-4)
    result = predictor(images[:5])
    np.testing.assert_array_equal(result.class_ids, expected[:5].argmax(-1))
    assert result.labels == tuple(meta.head.class_names[i] for i in result.class_ids)
    np.testing.assert_allclose(result.probabilities.sum(-1), 1.0, rtol=1e-5)
    assert predictor(images[0]).class_ids.shape == (1,)  # one [28, 28] image


def test_predictor_errors_name_what_is_accepted(samples):
    images, _ = samples
    with pytest.raises(ValueError, match="unknown backend 'onnx'; accepted: tflite, function"):
        zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend="onnx")
    predictor = zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend="function")
    with pytest.raises(ValueError, match=r"images must be \[N, 28, 28, 1\].*received shape \(2, 32, 32\)"):
        predictor(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"raw pixels .*received floats in \[0, 1\]\. Accepted: images \* 255"):
        predictor(images / 255.0)  # chance-level predictions, silently, before
    for wrong, received in ((images - 128.0, r"float64 values in \[-128, \d+\]"),  # normalized: all predicted
                            (images.astype(np.uint16) * 257, r"uint16 values in \[0, 65535\]"),
                            (images * 4.0, r"float64 values in \[0, 1020\]"),
                            (np.where(images > 200, np.nan, images), "float64 NaN or infinite values")):
        with pytest.raises(ValueError, match=rf"images must be pixels in \[0, 255\] \(scale=0.00392157\); received "
                                             rf"{received}\. Accepted: uint8 pixels or floats in \[0, 255\]"):
            predictor(wrong)
    assert len(predictor(images * 1.02 - 3.0).labels) == len(images)  # a resize's overshoot: [-3, 257.1]
    unit = zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend="function", scale=1.0)
    with pytest.raises(ValueError, match=r"images must be pixels in \[0, 1\] \(scale=1\); received uint8 values in "
                                         r"\[0, 255\]\. Accepted: floats in \[0, 1\] \(raw 0-255 pixels take the "
                                         r"default scale, 1/255\)"):
        unit(images)  # at chance accuracy, silently, before
    pixel_units = zoo.create_model("resnet20", input_shape=(28, 28, 1), num_classes=10)  # keras.applications' kind
    assert len(zoo.Predictor(pixel_units, mean=(127.5,), std=(127.5,), scale=1.0, backend="function")(images).labels)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1; received 0"):
        predictor(images, batch_size=0)
    for nothing in (images[:0], []):
        empty = predictor(nothing)
        assert empty.probabilities.shape == (0, 10) and empty.class_ids.shape == (0,) and empty.labels == ()
    with pytest.raises(TypeError, match=r"received str; for shipped weights: Predictor.from_pretrained\('resnet20'\)"):
        zoo.Predictor("resnet20", mean=(0.5,), std=(0.5,))
    features = zoo.create_model("resnet20", input_shape=(28, 28, 1), include_top=False)  # "probabilities" of pixels
    with pytest.raises(ValueError, match=r"needs a classifier, whose output is \[N, classes\]; model 'resnet20' "
                                         r"outputs \(None, 7, 7, 64\)\. Accepted: a model built with include_top=True"):
        zoo.Predictor(features, mean=(0.5,), std=(0.5,))
    pooled = zoo.create_model("resnet20", input_shape=(28, 28, 1), include_top=False, pooling="avg")  # 64 "classes"
    with pytest.raises(ValueError, match=r"model 'resnet20' outputs its pooled features \(None, 64\)"):
        zoo.Predictor(pooled, mean=(0.5,), std=(0.5,))


def test_predictor_takes_a_built_subclassed_model(samples):
    import tf_keras as keras

    class Net(keras.Model):  # "AttributeError: The layer has never been called and thus has no defined output shape"
        def __init__(self):
            super().__init__(name="net")
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(10)

        def call(self, x):
            return self.head(self.pool(self.conv(x)))

    images, _ = samples
    net = Net()
    net.build((None, 28, 28, 1))
    expected = net((images / 255.0 - 0.5) / 0.5).numpy()
    predictor = zoo.Predictor(net, mean=(0.5,), std=(0.5,))
    assert predictor.input_shape == (28, 28, 1) and len(predictor.class_names) == 10
    np.testing.assert_allclose(predictor.logits(images), expected, atol=1e-4)


def test_predictor_takes_softmax_models_and_images_in_0_1_with_scale_1(samples):
    images, _ = samples
    meta = zoo.get_weights_info("resnet20.fashion_mnist")
    expected = zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend="function")(images)
    softmax = zoo.create_model("resnet20", weights="fashion_mnist", classifier_activation="softmax")
    unit = zoo.Predictor(softmax, mean=meta.input.mean, std=meta.input.std, scale=1.0, backend="function")
    got = unit(images / 255.0)  # softmax was applied twice: top probabilities of about 0.23
    np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-5)
    np.testing.assert_array_equal(got.class_ids, expected.class_ids)
    shipped = zoo.predict("resnet20.fashion_mnist", images / 255.0, backend="function", scale=1.0)
    np.testing.assert_allclose(shipped.probabilities, expected.probabilities, atol=1e-5)


def test_resize_takes_photos_of_any_size_and_color(samples):
    images, labels = samples
    exact = zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend="function")
    resizing = zoo.Predictor.from_pretrained("resnet20.fashion_mnist", backend="function", resize=True)
    np.testing.assert_allclose(resizing(images).probabilities, exact(images).probabilities, atol=1e-6)
    rgb = np.repeat(np.repeat(np.repeat(images, 2, axis=1), 2, axis=2), 3, axis=-1)  # 56x56 RGB, gray content
    got = zoo.predict("resnet20.fashion_mnist", rgb, backend="function", resize=True)
    assert np.mean(got.class_ids == exact(images).class_ids) >= 0.95 and np.mean(got.class_ids == labels) >= 0.85
    rgba = np.concatenate([rgb[0], np.full((56, 56, 1), 255, np.uint8)], axis=-1)
    mixed = resizing([rgba, images[1, :, :, 0], rgb[2, :40]])  # one RGBA, one [H, W], one cropped: a list
    assert mixed.probabilities.shape == (3, 10) and mixed.class_ids[0] == got.class_ids[0]
    assert resizing(rgb[0]).class_ids[0] == got.class_ids[0]  # one image
    with pytest.raises(ValueError, match=r"images must be pixels in \[0, 255\] .*received uint16 values in "
                                         r"\[65535, 65535\]"):  # not the float32 it was resized to
        resizing(np.full((40, 40, 3), 65535, np.uint16))
    with pytest.raises(ValueError, match=r"images must be pixels, integers or floats; received bool"):
        resizing(np.ones((427, 640), bool))  # a mask was predicted as near-black pixels
    dark = np.zeros((280, 280, 3), np.uint8)
    dark[140, 140] = 60  # downscaled: floats under 1, which were refused as [0, 1] images
    assert len(resizing(dark).labels) == 1
    with pytest.raises(ValueError, match=r"with resize=True, images must be \[H, W\], or \[H, W, C\] with C in 1, 3, 4 "
                                         r".*received an image of shape \(5, 5, 2\)"):
        resizing([np.zeros((5, 5, 2))])
    with pytest.raises(ValueError, match=r"images must be \[N, 28, 28, 1\]"):
        exact(rgb)  # without resize, the model's shape only
