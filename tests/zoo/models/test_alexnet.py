"""AlexNet: published counts, the grouped (two-tower) layout, LRN, and adaptive pooling at other sizes."""

import zoo  # noqa: I001  (first: it selects tf_keras before TensorFlow loads)

import math

import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import AdaptiveAveragePooling2D


def _symbolic(name, **kwargs):
    """Builds in a scratch graph, where the 61M parameters are not allocated."""
    with tf.Graph().as_default():
        return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize(
    "name, params",
    [
        ("alexnet", 61_100_840),  # torchvision.models.alexnet, weights meta num_params
        ("alexnet_2012", 60_965_224),  # Caffe bvlc_alexnet (paper: "60 million")
    ],
)
def test_published_trainable_params(name, params):
    assert zoo.model_info(name).trainable_params == params
    assert zoo.model_info(name, input_shape=(227, 227, 3)).trainable_params == params


def test_bvlc_alexnet_count_by_hand():
    # conv (k, in / groups, out) and fc (in, out) shapes of bvlc_alexnet's deploy.prototxt.
    convs = [(11, 3, 96), (5, 48, 256), (3, 256, 384), (3, 192, 384), (3, 192, 256)]
    fcs = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    total = sum(k * k * cin * cout + cout for k, cin, cout in convs) + sum(i * o + o for i, o in fcs)
    assert total == 60_965_224


def test_two_towers_are_grouped_convolutions():
    model = zoo.create_model("alexnet_2012", input_shape=(32, 32, 3), num_classes=10)
    groups = {n: model.get_layer(n).groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert tuple(model.get_layer("conv4").kernel.shape) == (3, 3, 192, 384)


def test_local_response_norm_placement():
    names = lambda m: [layer.name for layer in m.layers]  # noqa: E731
    paper = names(zoo.create_model("alexnet_2012", input_shape=(32, 32, 3)))
    assert paper.index("conv1_relu") < paper.index("conv1_lrn") < paper.index("pool1")
    assert "conv2_lrn" in paper and "conv3_lrn" not in paper
    assert not any(n.endswith("_lrn") for n in names(zoo.create_model("alexnet", input_shape=(32, 32, 3))))
    assert "conv1_lrn" in names(zoo.create_model("alexnet", input_shape=(32, 32, 3), local_response_norm=True))
    assert "conv1_lrn" not in names(
        zoo.create_model("alexnet_2012", input_shape=(32, 32, 3), local_response_norm=False)
    )


def test_dropout_placement_follows_each_reference():
    tv = [layer.name for layer in zoo.create_model("alexnet", input_shape=(32, 32, 3)).layers]
    paper = [layer.name for layer in zoo.create_model("alexnet_2012", input_shape=(32, 32, 3)).layers]
    assert [n for n in tv if n.endswith("_dropout")] == ["pool5_dropout", "fc6_dropout"]  # torchvision
    assert [n for n in paper if n.endswith("_dropout")] == ["fc6_dropout", "fc7_dropout"]  # Caffe drop6/7


@pytest.mark.parametrize("shape", [(100, 100, 3), (300, 200, 3), (63, 63, 3)])
def test_adaptive_pool_keeps_fc6_at_9216_inputs(shape):
    model = _symbolic("alexnet", input_shape=shape, stem="imagenet")
    assert model.get_layer("adaptive_pool").output_shape == (None, 6, 6, 256)
    assert tuple(model.get_layer("fc6").kernel.shape) == (9216, 4096)


@pytest.mark.parametrize("shape", [(224, 224, 3), (227, 227, 3)])
def test_no_adaptive_pool_where_pool5_is_6x6(shape):
    model = _symbolic("alexnet_2012", input_shape=shape)
    assert model.get_layer("pool5").output_shape == (None, 6, 6, 256)
    assert not any(isinstance(layer, AdaptiveAveragePooling2D) for layer in model.layers)


def test_small_stem():
    model = zoo.create_model("alexnet_2012", input_shape=(28, 28, 1), num_classes=10)
    assert model.get_layer("conv1").strides == (1, 1)
    assert model.get_layer("pool5").output_shape == (None, 4, 4, 256)
    assert tuple(model.get_layer("fc6").kernel.shape) == (4096, 1024)


def test_option_errors():
    with pytest.raises(ValueError, match="at least 63x63"):
        zoo.create_model("alexnet", input_shape=(62, 62, 3), stem="imagenet")
    with pytest.raises(ValueError, match="dropout"):
        zoo.create_model("alexnet", input_shape=(32, 32, 3), dropout=1.0)
    with pytest.raises(TypeError, match="layout"):
        zoo.create_model("alexnet", layout="caffe")


def _torch_adaptive_avg_pool(x, out):
    """PyTorch's AdaptiveAvgPool2d, written out: bin i spans floor(i*n/out) .. ceil((i+1)*n/out)."""
    n, h, w, c = x.shape
    y = np.zeros((n, out, out, c), x.dtype)
    for i in range(out):
        for j in range(out):
            h0, h1 = math.floor(i * h / out), math.ceil((i + 1) * h / out)
            w0, w1 = math.floor(j * w / out), math.ceil((j + 1) * w / out)
            y[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return y


# The pooling AlexNet and VGG insert at other sizes (GoogLeNet's layer): down- and up-sampling cases.
@pytest.mark.parametrize("size", [(13, 13), (3, 3), (1, 1), (7, 10), (5, 17)])
def test_adaptive_average_pooling_matches_pytorch_bins(size):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype("float32")
    got = AdaptiveAveragePooling2D(6)(x).numpy()
    np.testing.assert_allclose(got, _torch_adaptive_avg_pool(x, 6), rtol=1e-5, atol=1e-6)
