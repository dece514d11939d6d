"""Network In Network: the zoo's own counts (the paper publishes none), the GAP classifier, ceil-mode pooling."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import math

import numpy as np
import pytest
import tf_keras as keras

from zoo.models._common import pool_ceil_mode


def _mlpconv_params(cin, kernel, widths):
    total = 0
    for i, cout in enumerate(widths):
        k = kernel if i == 0 else 1
        total += k * k * cin * cout + cout
        cin = cout
    return total


def test_nin_imagenet_count():
    # Not published: counted from the Caffe Model Zoo's nin_imagenet prototxt (conv1..cccp8).
    expected = (
        _mlpconv_params(3, 11, (96, 96, 96))
        + _mlpconv_params(96, 5, (256, 256, 256))
        + _mlpconv_params(256, 3, (384, 384, 384))
        + _mlpconv_params(384, 3, (1024, 1024, 1000))
    )
    assert expected == 7_595_176
    assert zoo.model_info("nin").trainable_params == expected


def test_nin_cifar_count():
    # Not published (the paper gives no count): counted from its CIFAR-10 Caffe definition.
    expected = (
        _mlpconv_params(3, 5, (192, 160, 96))
        + _mlpconv_params(96, 5, (192, 192, 192))
        + _mlpconv_params(192, 3, (192, 192, 10))
    )
    assert expected == 966_986
    assert zoo.model_info("nin_cifar").trainable_params == expected


def test_caffe_geometry():
    model = zoo.create_model("nin", include_top=False)
    assert [model.get_layer(f"block{b}_pool").output_shape[1] for b in (1, 2, 3)] == [27, 13, 6]
    assert model.output_shape == (None, 6, 6, 1024)
    cifar = zoo.create_model("nin_cifar", include_top=False)
    assert cifar.get_layer("block2_pool").output_shape == (None, 8, 8, 192)
    assert isinstance(cifar.get_layer("block2_pool"), keras.layers.AveragePooling2D)


def test_classifier_is_class_maps_and_global_pool():
    model = zoo.create_model("nin_cifar", classifier_activation="softmax")
    names = [layer.name for layer in model.layers]
    assert names[-4:] == ["head_conv", "head_relu", "avg_pool", "predictions"]
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    probs = model(np.random.rand(2, 32, 32, 3).astype("float32")).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    logits = zoo.create_model("nin_cifar", input_shape=(28, 28, 1))(np.random.rand(2, 28, 28, 1).astype("float32"))
    assert np.all(logits.numpy() >= 0)  # the ReLU on the class maps comes before the pool, as in Caffe


def test_features_stop_before_the_class_maps():
    model = zoo.create_model("nin_cifar", include_top=False, pooling="avg")
    assert model.layers[-2].name == "block3_cccp1_relu"
    assert model.output_shape == (None, 192)


def test_batch_norm_option():
    model = zoo.create_model("nin_cifar", batch_norm=True)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == len(convs) - 1  # all but head_conv
    assert [c.name for c in convs if c.use_bias] == ["head_conv"]


def test_stems():
    small = zoo.create_model("nin", input_shape=(32, 32, 3), num_classes=10)
    assert small.get_layer("block1_conv").kernel_size == (5, 5)
    assert small.get_layer("block4_cccp1_relu").output_shape == (None, 4, 4, 1024)
    large = zoo.create_model("nin_cifar", input_shape=(96, 96, 3), num_classes=10)
    assert large.get_layer("block1_conv").kernel_size == (11, 11)
    with pytest.raises(ValueError, match="at least 11x11"):
        zoo.create_model("nin", input_shape=(10, 10, 3), stem="imagenet")
    with pytest.raises(ValueError, match="dropout"):
        zoo.create_model("nin_cifar", dropout=1.0)


def _caffe_pool(x, k, s, kind):
    """Caffe's unpadded pooling: ceil output size, windows clipped to the map (averages over the inside)."""
    n, h, w, c = x.shape
    oh, ow = math.ceil((h - k) / s) + 1, math.ceil((w - k) / s) + 1
    y = np.zeros((n, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            win = x[:, i * s:min(i * s + k, h), j * s:min(j * s + k, w)]
            y[:, i, j] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y


# Average-pooling a map of mixed parity (8x7) zero-pads, which only max-pooling ReLU outputs ignores.
_CASES = [(kind, size) for kind in ("max", "avg") for size in ((16, 16), (13, 13), (54, 54), (8, 7))][:-1]


@pytest.mark.parametrize("kind, size", _CASES)
def test_pool_ceil_mode_matches_caffe(kind, size):
    x = np.random.default_rng(0).uniform(size=(2, *size, 3)).astype("float32")  # non-negative, like ReLU
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, pool_ceil_mode(inputs, 3, 2, kind=kind, name="pool"))
    np.testing.assert_allclose(model(x).numpy(), _caffe_pool(x, 3, 2, kind), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", range(1, 12))
def test_pool_ceil_mode_never_collapses(size):
    out = pool_ceil_mode(keras.Input((size, size, 1)), 3, 2, kind="max", name="pool")
    assert out.shape[1] == max(1, math.ceil((size - 3) / 2) + 1)
